"""``python -m benchmarks.decisions``: ``DecisionRepository.record`` against the raw driver, same run.

One unit is what a bot does per decision: open a write transaction, insert one decision (with
its signals and indicators), commit. tradestore runs ``record()`` in ``db.get_session()``; the
baseline runs the same INSERT of the same values through aiosqlite or asyncpg by hand,
computing the same SHA-256 content key. Units alternate (tradestore, raw, tradestore, …) and
each figure is the median of ``--calls`` units. The hot-path goal is at most 1.5 times the raw driver.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.baselines import RawPostgres, RawSQLite
from benchmarks.run import DEFAULT_PG_URL, drop_pg_database, pg_database
from tradestore import DatabaseManager, Decision, DecisionRepository
from tradestore.values import datetime_to_sqlite

GOAL = 1.5
T0 = datetime(2025, 1, 1, tzinfo=UTC)
SIGNALS = {"sentiment": {"signal": "BUY", "confidence": "0.9"}, "technical": {"signal": "BUY", "confidence": "0.8"}}
INDICATORS = {"rsi_14": "61.25", "ema_20": "50110.5"}
COLUMNS = ("bot_id", "symbol", "exchange", "action", "timestamp", "mode", "price", "confidence", "strategy",
           "signals", "indicators", "content_key", "created_at")  # fmt: skip


def decision(n: int) -> Decision:
    return Decision(
        "bench", "BTCUSDT", "buy", T0 + timedelta(seconds=n), price=Decimal("50000.5") + n, confidence="0.85",
        strategy="ensemble", signals=SIGNALS, indicators=INDICATORS,
    )  # fmt: skip


def raw_values(n: int, sqlite: bool) -> list[Any]:
    """The row the raw baseline inserts for decision ``n``, computing its content key by hand."""
    when, now = T0 + timedelta(seconds=n), datetime.now(UTC)
    price = Decimal("50000.5") + n
    key_text = json.dumps(["raw", n, str(price), when.isoformat(), SIGNALS, INDICATORS], sort_keys=True)
    key = hashlib.sha256(key_text.encode()).hexdigest()
    signals, indicators = json.dumps(SIGNALS), json.dumps(INDICATORS)
    if sqlite:
        return ["bench", "BTCUSDT", "binance", "buy", datetime_to_sqlite(when), "live", str(price), "0.85",
                "ensemble", signals, indicators, key, datetime_to_sqlite(now)]  # fmt: skip
    return ["bench", "BTCUSDT", "binance", "buy", when, "live", price, Decimal("0.85"), "ensemble", signals,
            indicators, key, now]  # fmt: skip


async def measure(url: str, raw: RawSQLite | RawPostgres, calls: int) -> tuple[float, float]:
    """Median µs of one ``record()`` unit and of one raw unit, alternating."""
    sqlite = isinstance(raw, RawSQLite)
    names = ", ".join(COLUMNS)
    if sqlite:
        sql = f"INSERT INTO decisions ({names}) VALUES ({', '.join('?' for _ in COLUMNS)})"
    else:
        casts = ["", "", "", "", "", "", "", "", "", "::jsonb", "::jsonb", "", ""]
        sql = f"INSERT INTO decisions ({names}) VALUES ({', '.join(f'${i + 1}{c}' for i, c in enumerate(casts))})"

    async with DatabaseManager(url) as db:
        await db.drop_all()
        await db.create_all()
        await raw.open()
        try:

            async def ours(n: int) -> None:
                async with db.get_session() as session:
                    await DecisionRepository(session).record(decision(n))

            async def theirs(n: int) -> None:
                values = raw_values(n, sqlite)
                if isinstance(raw, RawSQLite):
                    conn = raw.conn
                    assert conn is not None
                    await conn.execute("BEGIN IMMEDIATE")
                    await conn.execute(sql, values)
                    await conn.execute("COMMIT")
                else:
                    pg = raw.conn
                    assert pg is not None
                    async with pg.transaction():
                        await pg.execute(sql, *values)

            samples: dict[str, list[float]] = {"ours": [], "theirs": []}
            units: dict[str, Callable[[int], Awaitable[None]]] = {"ours": ours, "theirs": theirs}
            for n in range(calls + 20):
                for name in ("ours", "theirs") if n % 2 else ("theirs", "ours"):
                    started = time.perf_counter()
                    await units[name](n * 2 + (name == "theirs"))
                    if n >= 20:  # the first rounds warm caches and prepared statements
                        samples[name].append(time.perf_counter() - started)
            async with db.get_session() as session:
                stored = await DecisionRepository(session).find(bot_id="bench", limit=calls * 3)
            assert len(stored) == 2 * (calls + 20) and all(d.signals == SIGNALS for d in stored)  # both wrote it all
        finally:
            await raw.close()
            await db.drop_all()
    return statistics.median(samples["ours"]) * 1e6, statistics.median(samples["theirs"]) * 1e6


async def amain(args: argparse.Namespace) -> int:
    rows = []
    if args.backend in ("sqlite", "both"):
        folder = Path(tempfile.mkdtemp(prefix="tradestore-bench-"))
        try:
            path = folder / "bench.db"
            rows.append(("sqlite", *await measure(f"sqlite+aiosqlite:///{path}", RawSQLite(str(path)), args.calls)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if args.backend in ("postgresql", "both"):
        url = await pg_database(args.pg_url)
        if url is not None:
            try:
                rows.append(("postgresql", *await measure(url, RawPostgres(url), args.calls)))
            finally:
                await drop_pg_database(args.pg_url, url)
    print(f"command: python -m benchmarks.decisions {' '.join(sys.argv[1:])}".rstrip())
    print("| backend | `DecisionRepository.record` | raw driver | ratio | goal ≤ 1.5x |")
    print("|---|---:|---:|---:|---|")
    met = True
    for backend, ours, theirs in rows:
        ratio = ours / theirs
        met &= ratio <= GOAL
        print(
            f"| {backend} | {ours:,.0f} µs | {theirs:,.0f} µs | {ratio:.1f}x | {'met' if ratio <= GOAL else 'missed'} |"
        )
    return 0 if met else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.decisions", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="timed units per contender (default 300)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default=os.environ.get("TRADESTORE_BENCH_PG_URL", DEFAULT_PG_URL))
    return asyncio.run(amain(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
