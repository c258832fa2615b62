"""``python -m benchmarks.equity``: bots and equity, tradestore beside the raw driver in one run.

- ``performance()`` over 1,000,000 snapshots (goal: under a second on each backend), beside the
  raw driver fetching the same rows and computing daily closes and drawdown in Python;
- ``record_many`` throughput beside the candles' bulk path (``OHLCVRepository.upsert_many``) on
  the same number of rows, and beside the raw driver's own bulk insert;
- ``heartbeat`` and ``record``, one per transaction, beside the same statement on the raw driver.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
from sqlalchemy import delete, text
from sqlalchemy.engine import make_url

from benchmarks.data import make_bars
from benchmarks.run import DEFAULT_PG_URL, drop_pg_database, pg_database, server_version
from tradestore import (
    Bot,
    BotRepository,
    DatabaseManager,
    EquityRepository,
    EquitySnapshot,
    OHLCVRepository,
)
from tradestore.values import datetime_to_sqlite

T0 = datetime(2022, 1, 1, tzinfo=UTC)
PARTS = ("bulk", "performance", "latency")
_STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"  {time.perf_counter() - _STARTED:5.0f} s  {message}", file=sys.stderr, flush=True)


def make_snapshots(count: int, bot: str = "bench") -> list[EquitySnapshot]:
    """One snapshot a minute: a random walk of 2-decimal equity (about 694 days for a million)."""
    import random

    rnd = random.Random(7)
    equity = 10_000 * 100
    out = []
    for i in range(count):
        equity = max(100, equity + rnd.randint(-1_000, 1_010))
        out.append(
            EquitySnapshot(bot, T0 + timedelta(minutes=i), Decimal(equity).scaleb(-2), balance=Decimal("9000.5"))
        )
    return out


async def best(repeat: int, action: Callable[[], Awaitable[Any]], before: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(repeat):
        await before()
        gc.collect()
        started = time.perf_counter()
        await action()
        times.append(time.perf_counter() - started)
    return min(times)


async def median_us(calls: int, action: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(5):
        await action()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def server_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) a local PostgreSQL backend process has used so far; 0 without one."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_side(rows: list[tuple[Any, Any]]) -> tuple[int, Decimal]:
    """What a bot computes by hand from every row: daily closes and the largest drawdown."""
    closes: dict[Any, Decimal] = {}
    peak, worst = Decimal(0), Decimal(0)
    for ts, eq in rows:
        moment = ts if isinstance(ts, datetime) else datetime.fromisoformat(ts)
        value = eq if isinstance(eq, Decimal) else Decimal(eq)
        closes[moment.date()] = value
        peak = max(peak, value)
        if peak > 0:
            worst = max(worst, (peak - value) / peak)
    return len(closes), worst


class Raw:
    """The same jobs written by hand on the driver alone."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite: aiosqlite.Connection | None = None
        self.pg: asyncpg.Connection | None = None

    async def open(self) -> None:
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "sqlite":
            self.sqlite = await aiosqlite.connect(str(parsed.database))
            await self.sqlite.execute("PRAGMA journal_mode=WAL")
            await self.sqlite.execute("PRAGMA synchronous=NORMAL")
        else:
            self.pg = await asyncpg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False))

    async def close(self) -> None:
        if self.sqlite is not None:
            await self.sqlite.close()
        if self.pg is not None:
            await self.pg.close()

    async def curve(self, bot: str) -> list[tuple[Any, Any]]:
        sql = "SELECT timestamp, equity FROM equity_snapshots WHERE bot_id = {0} AND mode = 'live' ORDER BY timestamp"
        if self.sqlite is not None:
            return list(await self.sqlite.execute_fetchall(sql.format("?"), (bot,)))  # type: ignore[arg-type]
        assert self.pg is not None
        return [tuple(r) for r in await self.pg.fetch(sql.format("$1"), bot)]

    async def insert(self, snapshots: list[EquitySnapshot]) -> None:
        if self.sqlite is not None:
            rows = [
                (s.bot_id, s.mode, datetime_to_sqlite(s.timestamp), str(s.equity), str(s.balance)) for s in snapshots
            ]
            await self.sqlite.executemany(
                "INSERT INTO equity_snapshots (bot_id, mode, timestamp, equity, balance) VALUES (?, ?, ?, ?, ?)", rows
            )
            await self.sqlite.commit()
            return
        assert self.pg is not None
        records = [(s.bot_id, s.mode, s.timestamp, s.equity, s.balance) for s in snapshots]
        await self.pg.copy_records_to_table(
            "equity_snapshots", records=records, columns=["bot_id", "mode", "timestamp", "equity", "balance"]
        )

    async def heartbeat(self, at: datetime) -> None:
        if self.sqlite is not None:
            await self.sqlite.execute(
                "UPDATE bots SET last_heartbeat = ?, updated_at = ? WHERE bot_id = ?",
                (datetime_to_sqlite(at), datetime_to_sqlite(at), "raw"),
            )
            await self.sqlite.commit()
            return
        assert self.pg is not None
        await self.pg.execute("UPDATE bots SET last_heartbeat = $1, updated_at = $1 WHERE bot_id = $2", at, "raw")

    async def record(self, s: EquitySnapshot) -> None:
        sql = (
            "INSERT INTO equity_snapshots (bot_id, mode, timestamp, equity, balance) VALUES ({}) "
            "ON CONFLICT (bot_id, mode, timestamp) DO UPDATE SET equity = excluded.equity, balance = excluded.balance "
            "RETURNING id"
        )
        if self.sqlite is not None:
            params = (s.bot_id, s.mode, datetime_to_sqlite(s.timestamp), str(s.equity), str(s.balance))
            await self.sqlite.execute_fetchall(sql.format("?, ?, ?, ?, ?"), params)
            await self.sqlite.commit()
            return
        assert self.pg is not None
        await self.pg.fetchval(sql.format("$1, $2, $3, $4, $5"), s.bot_id, s.mode, s.timestamp, s.equity, s.balance)


async def one_backend(name: str, url: str, args: argparse.Namespace) -> list[str]:
    lines: list[str] = []
    db = DatabaseManager(url)
    await db.connect()
    await db.drop_all()
    await db.create_all()
    raw = Raw(url)
    await raw.open()
    try:
        # --- bulk: record_many beside the candles' bulk path and the raw driver
        if "bulk" in args.only:
            log(f"{name}: building {args.bulk:,} snapshots and bars")
            snapshots = make_snapshots(args.bulk, bot="bulk")
            bars = make_bars(args.bulk)

            async def empty_all() -> None:
                from tradestore.models import EquitySnapshotModel, OHLCVModel

                async with db.get_session() as session:
                    await session.execute(delete(EquitySnapshotModel))
                    await session.execute(delete(OHLCVModel))

            async def ts_record_many() -> None:
                async with db.get_session() as session:
                    await EquityRepository(session).record_many(snapshots)

            async def ts_candles() -> None:
                async with db.get_session() as session:
                    await OHLCVRepository(session).upsert_many(bars)

            log(f"{name}: record_many / upsert_many / raw bulk insert, best of {args.repeat}")
            t_equity = await best(args.repeat, ts_record_many, empty_all)
            t_candles = await best(args.repeat, ts_candles, empty_all)
            t_raw = await best(args.repeat, lambda: raw.insert(snapshots), empty_all)
            n = args.bulk
            lines.append(
                f"| {name} | `record_many` ({n:,} new snapshots) | {n / t_equity:,.0f} rows/s | raw driver "
                f"{n / t_raw:,.0f} rows/s (ratio {t_raw / t_equity:.2f}) | candles `upsert_many` {n / t_candles:,.0f} "
                f"rows/s (ratio {t_candles / t_equity:.2f}) |"
            )
            snapshots, bars = [], []  # free them before the million-snapshot curve
            await empty_all()

        # --- performance() over many snapshots
        if "performance" in args.only:
            log(f"{name}: writing {args.snapshots:,} snapshots for performance()")
            curve = make_snapshots(args.snapshots)
            for chunk_start in range(0, len(curve), 200_000):
                async with db.get_session() as session:
                    await EquityRepository(session).record_many(curve[chunk_start : chunk_start + 200_000])
            curve = []
            async with db.engine.connect() as conn:
                if name == "sqlite":
                    await conn.exec_driver_sql("ANALYZE")
                    await conn.commit()
                else:
                    autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await autocommit.exec_driver_sql("VACUUM ANALYZE equity_snapshots")

            async def ts_performance() -> tuple[Any, float]:
                """The report, and the CPU seconds it cost: this process (and aiosqlite's thread) + the server."""
                async with db.get_session() as session:
                    server = None
                    if name == "postgresql":
                        server = await session.scalar(text("SELECT pg_backend_pid()"))
                    before = time.process_time() + server_cpu(server)
                    report = await EquityRepository(session).performance("bench")
                    return report, time.process_time() + server_cpu(server) - before

            report, _ = await ts_performance()
            samples, cpu = [], []
            for _ in range(args.repeat):
                gc.collect()
                started = time.perf_counter()
                _, spent = await ts_performance()
                samples.append(time.perf_counter() - started)
                cpu.append(spent)
            gc.collect()
            started = time.perf_counter()
            days, worst = client_side(await raw.curve("bench"))
            t_client = time.perf_counter() - started
            assert days == report.periods + 1, (days, report.periods)
            assert worst.quantize(Decimal("1e-20")) == report.max_drawdown.quantize(Decimal("1e-20"))
            median = statistics.median(samples)
            lines.append(
                f"| {name} | `performance()` over {report.snapshots:,} snapshots ({report.periods} days) | "
                f"{median * 1000:,.0f} ms wall, {statistics.median(cpu) * 1000:,.0f} ms CPU (medians of {args.repeat};"
                f" goal < 1,000 ms: {'met' if median < 1 else 'MISSED'}) | "
                f"raw driver fetching every row + Python: {t_client * 1000:,.0f} ms wall | |"
            )

        # --- single-row calls, one per transaction
        if "latency" in args.only:
            log(f"{name}: heartbeat / record latency, median of {args.calls}")
            async with db.get_session() as session:
                await BotRepository(session).register(Bot("ts"))
                await BotRepository(session).register(Bot("raw"))
            tick = [0]

            async def ts_heartbeat() -> None:
                async with db.get_session() as session:
                    await BotRepository(session).heartbeat("ts", balance="1000.25")

            async def ts_record() -> None:
                tick[0] += 1
                async with db.get_session() as session:
                    await EquityRepository(session).record(
                        EquitySnapshot("ts", T0 + timedelta(seconds=tick[0]), Decimal("1000.25"), balance=Decimal(1000))
                    )

            async def raw_record() -> None:
                tick[0] += 1
                await raw.record(
                    EquitySnapshot("raw", T0 + timedelta(seconds=tick[0]), Decimal("1000.25"), balance=Decimal(1000))
                )

            for label, mine, theirs in (
                ("`heartbeat`", ts_heartbeat, lambda: raw.heartbeat(datetime.now(UTC))),
                ("`record`", ts_record, raw_record),
            ):
                a = await median_us(args.calls, mine)
                b = await median_us(args.calls, theirs)
                lines.append(
                    f"| {name} | {label} (one per transaction) | {a:,.0f} µs | raw driver {b:,.0f} µs "
                    f"(ratio {a / b:.2f}) | |"
                )
            # the same calls inside one open session: the statement alone, beside SQLAlchemy's floor
            async with db.get_session() as session:
                bots, equity = BotRepository(session), EquityRepository(session)

                async def in_heartbeat() -> None:
                    await bots.heartbeat("ts", balance="1000.25")

                async def in_record() -> None:
                    tick[0] += 1
                    await equity.record(EquitySnapshot("ts", T0 + timedelta(seconds=tick[0]), Decimal(1000)))

                async def floor() -> None:
                    await session.execute(text("SELECT 1"))

                base = await median_us(args.calls, floor)
                for label, action in (("`heartbeat`", in_heartbeat), ("`record`", in_record)):
                    a = await median_us(args.calls, action)
                    lines.append(
                        f"| {name} | {label} (in an open session) | {a:,.0f} µs | SQLAlchemy `SELECT 1` {base:,.0f} µs "
                        f"(ratio {a / base:.2f}) | |"
                    )
    finally:
        await raw.close()
        await db.disconnect()
    return lines


async def amain(args: argparse.Namespace) -> int:
    header = [f"SQLite {sqlite3.sqlite_version}"]
    lines: list[str] = []
    if args.backend in ("sqlite", "both"):
        folder = Path(tempfile.mkdtemp(prefix="tradestore-bench-equity-"))
        try:
            lines += await one_backend("sqlite", f"sqlite+aiosqlite:///{folder / 'bench.db'}", args)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if args.backend in ("postgresql", "both"):
        url = await pg_database(args.pg_url)
        if url is not None:
            try:
                header.append(f"PostgreSQL {await server_version(url)}")
                lines += await one_backend("postgresql", url, args)
            finally:
                await drop_pg_database(args.pg_url, url)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"tradestore equity benchmarks: {', '.join(header)}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"{os.cpu_count()} CPUs; load average at the end (1, 5, 15 min): {load}")
    print(f"command: python -m benchmarks.equity {' '.join(sys.argv[1:])}".rstrip())
    print()
    print("| backend | operation | tradestore | baseline | candles |")
    print("|---|---|---:|---|---|")
    print("\n".join(lines))
    return 0 if all("MISSED" not in line for line in lines) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.equity", description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=1_000_000, help="snapshots performance() reads")
    parser.add_argument("--bulk", type=int, default=200_000, help="rows each bulk writer writes")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per contender")
    parser.add_argument("--calls", type=int, default=300, help="single-row calls per latency median")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--only", nargs="+", choices=PARTS, default=list(PARTS), help="measure only these parts (default: all)"
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="server where a scratch database is made")
    return asyncio.run(amain(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
