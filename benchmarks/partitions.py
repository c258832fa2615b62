"""``python -m benchmarks.partitions``: is monthly partitioning of the candle table worth it on PostgreSQL?

Builds the same bars twice in a database made for the run — tradestore's layout (one table
keyed by series and time) and the same table declaratively partitioned by month on ``time`` —
then measures, side by side: size, ``get_latest(limit=1000)`` and a one-day ``get_range`` of one
series (the statements tradestore runs, medians of many calls), and retention (removing the
oldest month: ``DELETE`` against ``DETACH`` + ``DROP`` of its partition).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from benchmarks.run import DEFAULT_PG_URL, drop_pg_database, pg_database

T0 = datetime(2022, 1, 1, tzinfo=UTC)
COLUMNS = """
    time TIMESTAMPTZ NOT NULL, trades_count BIGINT, series_id INTEGER NOT NULL,
    open NUMERIC NOT NULL, high NUMERIC NOT NULL, low NUMERIC NOT NULL, close NUMERIC NOT NULL,
    volume NUMERIC NOT NULL, quote_volume NUMERIC, PRIMARY KEY (series_id, time)"""
FILL = """
INSERT INTO {table} (time, trades_count, series_id, open, high, low, close, volume, quote_volume)
SELECT to_timestamp($1 + i * $2), i % 5000, $3, p, p + 5, p - 5, p + 1, v, round(v * p, 4)
FROM (SELECT i, round(40000 + (i * 7919 % 4001) / 4.0, 2) AS p, round((i * 31 % 1000) / 8.0, 4) AS v
      FROM generate_series(0, $4 - 1) AS i) AS s
"""


def month(n: int) -> datetime:
    return T0.replace(year=T0.year + n // 12, month=n % 12 + 1)


async def median_ms(calls: int, action: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(3):
        await action()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


async def measure(conn: asyncpg.Connection, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    bars = args.months * 30 * 86_400 // args.step
    await conn.execute(f"CREATE TABLE flat ({COLUMNS})")
    await conn.execute(f"CREATE TABLE parted ({COLUMNS}) PARTITION BY RANGE (time)")
    for n in range(args.months + 1):
        await conn.execute(
            f"CREATE TABLE parted_{n:03d} PARTITION OF parted FOR VALUES FROM ('{month(n).isoformat()}') "
            f"TO ('{month(n + 1).isoformat()}')"
        )
    for table in ("flat", "parted"):
        for series in range(args.series):
            await conn.execute(FILL.format(table=table), int(T0.timestamp()), args.step, series, bars)
    await conn.execute("VACUUM ANALYZE")
    rows: list[tuple[str, str, str]] = []
    size = (
        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relname LIKE $1 AND c.relkind IN ('r', 'p')"
    )
    flat_size = await conn.fetchval(size, "flat")
    parted_size = await conn.fetchval(size, "parted%")
    total = bars * args.series
    rows.append((f"bytes per bar ({total:,} bars)", f"{flat_size / total:.1f}", f"{parted_size / total:.1f}"))
    middle = T0 + timedelta(seconds=bars // 2 * args.step)
    for label, sql, params in (
        ("`get_latest(limit=1000)`", "SELECT * FROM {t} WHERE series_id = $1 ORDER BY time DESC LIMIT 1000", (3,)),
        (
            "`get_range`, 1 day",
            "SELECT * FROM {t} WHERE series_id = $1 AND time >= $2 AND time <= $3 ORDER BY time",
            (3, middle, middle + timedelta(days=1)),
        ),
        ("`get_latest` of a series stored in the first month only", "SELECT * FROM {t} WHERE series_id = $1 "
         "ORDER BY time DESC LIMIT 1000", (10_000,)),
    ):  # fmt: skip
        if params[0] == 10_000:
            for table in ("flat", "parted"):
                await conn.execute(FILL.format(table=table), int(T0.timestamp()), args.step, 10_000, 2_000)
        times = []
        for table in ("flat", "parted"):
            statement = await conn.prepare(sql.format(t=table))
            times.append(await median_ms(args.calls, lambda s=statement, p=params: s.fetch(*p)))
        rows.append((f"{label}, median of {args.calls}", f"{times[0]:.2f} ms", f"{times[1]:.2f} ms"))
    plan = await conn.fetch(
        "EXPLAIN (COSTS OFF) SELECT * FROM parted WHERE series_id = 3 ORDER BY time DESC LIMIT 1000"
    )
    partitions_probed = sum("Index Scan" in r[0] for r in plan)
    rows.append(("partitions a `get_latest` probes (plan)", "1 index", f"{partitions_probed} indexes"))
    started = time.perf_counter()
    async with conn.transaction():
        deleted = await conn.execute("DELETE FROM flat WHERE time < $1", month(1))
    delete_s = time.perf_counter() - started
    started = time.perf_counter()
    async with conn.transaction():
        await conn.execute("ALTER TABLE parted DETACH PARTITION parted_000")
        await conn.execute("DROP TABLE parted_000")
    drop_s = time.perf_counter() - started
    removed = int(deleted.split()[-1])
    rows.append(
        (f"retention: remove the oldest month ({removed:,} bars)", f"{delete_s * 1000:,.0f} ms (DELETE)",
         f"{drop_s * 1000:,.0f} ms (DETACH + DROP)")
    )  # fmt: skip
    return rows


async def amain(args: argparse.Namespace) -> int:
    url = await pg_database(args.pg_url)
    if url is None:
        return 1
    try:
        dsn = url.replace("postgresql+asyncpg", "postgresql")
        conn = await asyncpg.connect(dsn, server_settings={"timezone": "UTC"})
        try:
            rows = await measure(conn, args)
        finally:
            await conn.close()
    finally:
        await drop_pg_database(args.pg_url, url)
    print(f"command: python -m benchmarks.partitions --months {args.months} --series {args.series} --step {args.step}")
    print()
    print("| measure | one table (tradestore) | monthly partitions |")
    print("|---|---:|---:|")
    for row in rows:
        print(f"| {' | '.join(row)} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.partitions", description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=24, help="months of bars (one partition each)")
    parser.add_argument("--series", type=int, default=10, help="series stored")
    parser.add_argument("--step", type=int, default=300, help="seconds between bars (default 300: 5m bars)")
    parser.add_argument("--calls", type=int, default=50, help="calls per latency median")
    parser.add_argument("--pg-url", default=os.environ.get("TRADESTORE_BENCH_PG_URL", DEFAULT_PG_URL))
    return asyncio.run(amain(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
