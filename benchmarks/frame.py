"""``python -m benchmarks.frame``: where a PostgreSQL unit of work's time goes, layer by layer.

One unit of work (insert one system event in its own transaction) five ways, in one process,
alternating, medians of many units: through tradestore (``get_session()`` +
``SystemEventRepository.log_event``); a plain ``AsyncSession`` running the same statement on the
driver connection of its transaction; a Core ``AsyncConnection`` doing the same; a connection
checked out of the same pool with no SQLAlchemy connection object around it; and asyncpg alone
(``connection.transaction()``). Each layer's cost is the difference between neighbouring rows.
Every variant makes the same three round trips (``BEGIN``, the ``INSERT``, ``COMMIT``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.util import greenlet_spawn

from benchmarks.run import DEFAULT_PG_URL, drop_pg_database, pg_database
from tradestore import DatabaseManager, SystemEventRepository

INSERT = (
    "INSERT INTO system_events (event_type, severity, message, details, symbol, trade_id, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
)
EVENT = ("order_filled", "info", "filled 0.015 BTCUSDT at 50123.45")


async def measure(url: str, units: int, rounds: int) -> list[tuple[str, float, float]]:
    """(variant, median wall µs, median CPU µs of the event loop's thread) per variant."""
    db = DatabaseManager(url)
    await db.connect()
    await db.create_all()
    _, sessions = db._require()
    pool = db.engine.sync_engine.pool
    raw = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))

    async def tradestore() -> None:
        async with db.get_session() as session:
            await SystemEventRepository(session).log_event(*EVENT)

    async def plain_session() -> None:
        session = sessions()
        try:
            conn = await session.connection()
            assert conn.sync_connection is not None
            driver: Any = conn.sync_connection.connection.driver_connection
            await driver.fetchval(INSERT, *EVENT, None, None, None, datetime.now(UTC))
            await session.commit()
        finally:
            await session.close()

    async def core() -> None:
        conn = await db.engine.connect()
        try:
            await conn.begin()
            driver: Any = (await conn.get_raw_connection()).driver_connection
            await driver.fetchval(INSERT, *EVENT, None, None, None, datetime.now(UTC))
            await conn.commit()
        finally:
            await conn.close()

    async def pooled() -> None:
        fairy: Any = await greenlet_spawn(pool.connect)  # the checkout begins the transaction
        try:
            await fairy.driver_connection.fetchval(INSERT, *EVENT, None, None, None, datetime.now(UTC))
            await greenlet_spawn(fairy.dbapi_connection.commit)
        finally:
            await greenlet_spawn(fairy.close)

    async def driver_alone() -> None:
        async with raw.transaction():
            await raw.fetchval(INSERT, *EVENT, None, None, None, datetime.now(UTC))

    variants: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("tradestore: get_session() + log_event", tradestore),
        ("AsyncSession, the statement on its driver connection", plain_session),
        ("Core AsyncConnection, the same", core),
        ("a connection of the same pool, no SQLAlchemy connection", pooled),
        ("asyncpg alone", driver_alone),
    ]
    wall: dict[str, list[float]] = {name: [] for name, _ in variants}
    cpu: dict[str, list[float]] = {name: [] for name, _ in variants}
    try:
        for _name, unit in variants:  # warm every path
            for _ in range(20):
                await unit()
        for n in range(rounds):
            for name, unit in variants[n % len(variants) :] + variants[: n % len(variants)]:
                for _ in range(units // rounds):
                    started, thread = time.perf_counter(), time.thread_time()
                    await unit()
                    wall[name].append(time.perf_counter() - started)
                    cpu[name].append(time.thread_time() - thread)
    finally:
        await raw.close()
        await db.disconnect()
    return [(name, statistics.median(wall[name]) * 1e6, statistics.median(cpu[name]) * 1e6) for name, _ in variants]


async def amain(args: argparse.Namespace) -> int:
    url = await pg_database(args.pg_url)
    if url is None:
        return 1
    try:
        found = await measure(url.replace("postgresql://", "postgresql+asyncpg://"), args.units, args.rounds)
    finally:
        await drop_pg_database(args.pg_url, url)
    floor = found[-1][1]
    print(
        f"one unit of work, medians of {args.units:,} per variant in {args.rounds} alternating rounds; "
        f"load average at the end {os.getloadavg()[0]:.1f}\n"
    )
    print("| variant | wall | / asyncpg alone | CPU of the event loop's thread |")
    print("|---|---:|---:|---:|")
    for name, wall, cpu in found:
        print(f"| {name} | {wall:,.0f} µs | {wall / floor:.2f}x | {cpu:,.0f} µs |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.frame", description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=3000, help="timed units per variant (default 3,000)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds they are split into")
    parser.add_argument("--pg-url", default=os.environ.get("TRADESTORE_BENCH_PG_URL", DEFAULT_PG_URL))
    return asyncio.run(amain(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
