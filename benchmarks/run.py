"""``python -m benchmarks``: every measurement of the README's "Performance" section, in one run.

Each figure is measured side by side with its baselines in the same process, on the same
database and data: the raw driver doing the same job by hand (``baselines.RawSQLite`` /
``RawPostgres``) and, where it applies, the SQLAlchemy ORM. Timed runs are interleaved and
repeated (``--repeat``); throughput takes the best run, latency the median of many calls.
Every result is checked against its baseline's before it is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from benchmarks import data, hot_path, processes
from benchmarks.baselines import Orm, Raw, RawPostgres, RawSQLite
from benchmarks.report import Row, table
from tradestore import DatabaseManager, OHLCVBar, OHLCVRepository, TradeRepository

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
LATEST_LIMIT = 1_000
DAY = timedelta(days=1)
BAR_FIELDS = ("symbol", "exchange", "timeframe", "timestamp", "open", "high", "low", "close", "volume", "quote_volume")
BAR_FIELDS += ("trades_count",)
#: Bytes per bar the issue asks for at most: tradestore's candle tables with their indexes.
SIZE_GOAL = {"sqlite": 70, "postgresql": 150}
CANDLE_TABLES = ("ohlcv", "ohlcv_series", "ohlcv_fetched")
_PG_RAW_TABLE = """
CREATE TABLE raw_ohlcv (
    id BIGSERIAL PRIMARY KEY, exchange VARCHAR NOT NULL, symbol VARCHAR NOT NULL, timeframe VARCHAR NOT NULL,
    time TIMESTAMPTZ NOT NULL, open NUMERIC NOT NULL, high NUMERIC NOT NULL, low NUMERIC NOT NULL,
    close NUMERIC NOT NULL, volume NUMERIC NOT NULL, quote_volume NUMERIC, trades_count BIGINT,
    UNIQUE (exchange, symbol, timeframe, time)
)"""


@dataclass
class Scale:
    """Latency of the index-backed reads at one number of stored bars."""

    backend: str
    stored: int
    latest_ms: float
    day_ms: float


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    scale: list[Scale] = field(default_factory=list)
    plans: dict[str, str] = field(default_factory=dict)


# --- timing helpers ---------------------------------------------------------------------


async def timed(action: Awaitable[Any]) -> float:
    gc.collect()
    started = time.perf_counter()
    await action
    return time.perf_counter() - started


async def median_ms(calls: int, action: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(3):  # warm up: statement caches, pages
        await action()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


async def interleaved(actions: dict[str, Callable[[], Awaitable[Any]]], repeat: int) -> dict[str, list[float]]:
    """Seconds of each action over ``repeat`` rounds in a rotating order; the ORM, many times slower, runs once."""
    times: dict[str, list[float]] = {name: [] for name in actions}
    for rep in range(repeat):
        for name in rotate(list(actions), rep):
            if name != "orm" or not times[name]:
                times[name].append(await timed(actions[name]()))
    return times


def rotate(items: list[str], by: int) -> list[str]:
    """``items`` rotated, so that no contender always runs first (or last) in a repetition."""
    by %= len(items)
    return items[by:] + items[:by]


_STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"  {time.perf_counter() - _STARTED:5.0f} s  {message}", file=sys.stderr, flush=True)


# --- one backend ------------------------------------------------------------------------


class Bench:
    """Every measurement on one database."""

    def __init__(self, name: str, url: str, raw: Raw, args: argparse.Namespace) -> None:
        self.name = name
        self.url = url
        self.raw = raw
        self.args = args
        self.db = DatabaseManager(url)
        self.orm = Orm(self.db)
        self.results = Results()

    def add(self, *args: Any, **kwargs: Any) -> Row:
        row = Row(self.name, *args, **kwargs)
        self.results.rows.append(row)
        return row

    async def reset(self) -> None:
        """Empty tables; every connection opened afresh (no statement cached against dropped tables)."""
        await self.raw.close()
        await self.db.drop_all()
        await self.db.create_all()
        await self.db.engine.dispose()
        await self.raw.open()
        await self.warm()

    async def warm(self) -> None:
        async with self.db.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def analyze(self) -> None:
        """Planner statistics, and on PostgreSQL the visibility map autovacuum would set."""
        if self.name == "sqlite":
            async with self.db.engine.begin() as conn:
                await conn.exec_driver_sql("ANALYZE")
            return
        async with self.db.engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("VACUUM ANALYZE")  # VACUUM cannot run in a transaction

    async def run(self, bars: list[OHLCVBar]) -> Results:
        await self.db.connect()
        await self.raw.open()
        try:
            await self.writes(bars)
            await self.size()
            await self.listing()
            await self.reads(bars)
            await self.statistics()
            await self.series()
        finally:
            await self.raw.close()
            await self.db.disconnect()
        return self.results

    # -- writes ----------------------------------------------------------------------------

    async def _ts_write(self, method: str, bars: list[OHLCVBar]) -> None:
        async with self.db.get_session() as session:
            await getattr(OHLCVRepository(session), method)(bars)

    async def writes(self, bars: list[OHLCVBar]) -> None:
        n = len(bars)
        log(f"{self.name}: writing {n:,} bars, {self.args.repeat} repetitions")
        raw = self.raw.upserts(bars)
        contenders: dict[str, Callable[[], Awaitable[None]]] = {
            **{f"raw {name}": action for name, action in raw.items()},
            "upsert_many": lambda: self._ts_write("upsert_many", bars),
            "insert_many": lambda: self._ts_write("insert_many", bars),
        }
        if isinstance(self.raw, RawPostgres):
            plain_copy = self.raw.copy_into_table
            contenders["raw COPY into the table"] = lambda: plain_copy(bars)
        once = ("insert_many", "raw COPY into the table")  # plain inserts: only into an empty table
        empty: dict[str, list[float]] = {k: [] for k in contenders}
        existing: dict[str, list[float]] = {k: [] for k in contenders}
        for rep in range(self.args.repeat):
            for name in rotate(list(contenders), rep):
                await self.reset()
                empty[name].append(await timed(contenders[name]()))
                if rep == 0:
                    await self.check_written(bars, name)
                if name not in once:  # again, over the rows just written
                    existing[name].append(await timed(contenders[name]()))
        orm_bars = bars[: self.args.orm_bars]
        await self.reset()  # one ORM run: it is many times slower
        orm_rate = len(orm_bars) / await timed(self.orm.add_all(orm_bars))

        def best_raw(times: dict[str, list[float]]) -> tuple[float, str]:
            name = min((k for k in raw), key=lambda k: min(times[f"raw {k}"]))
            return n / min(times[f"raw {name}"]), name

        raw_empty, raw_existing = best_raw(empty), best_raw(existing)
        goal = "≥ 0.8x raw, ≥ 10x ORM"
        for method, case, (raw_rate, raw_name), times in (
            ("upsert_many", "empty table", raw_empty, empty["upsert_many"]),
            ("upsert_many", "over existing rows", raw_existing, existing["upsert_many"]),
            ("insert_many", "empty table", raw_empty, empty["insert_many"]),
        ):
            rate = n / min(times)
            notes = f"raw: {raw_name}" + (f" (of {len(raw)} tried)" if len(raw) > 1 else "")
            if method == "insert_many" and "raw COPY into the table" in empty:
                notes += f"; raw plain COPY into the table: {n / min(empty['raw COPY into the table']):,.0f} bars/s"
            self.add(
                f"`{method}` {n:,} bars, {case}",
                "bars/s",
                rate,
                raw_rate,
                orm_rate,
                goal,
                rate >= 0.8 * raw_rate and rate >= 10 * orm_rate,
                notes=notes,
            )

    async def check_written(self, bars: list[OHLCVBar], by: str) -> None:
        """The table holds exactly ``bars``, read back by the raw driver (raw writes: from their own table)."""
        read = self.raw.written if by.startswith("raw") else self.raw.get_range
        stored = await read(data.SYMBOL, bars[0].timestamp, bars[-1].timestamp)
        fields = BAR_FIELDS
        expected = [tuple(getattr(b, f) for f in fields) for b in bars]
        assert [tuple(getattr(b, f) for f in fields) for b in stored] == expected, f"{by} stored other bars"

    # -- size on disk and the series ledger ------------------------------------------------

    async def _bytes(self, tables: tuple[str, ...]) -> int:
        """Bytes of ``tables`` with their indexes (SQLite: their pages in ``dbstat``)."""
        async with self.db.engine.connect() as conn:
            if self.name == "sqlite":
                names = ", ".join(f"'{t}'" for t in tables)
                owned = f"SELECT name FROM sqlite_master WHERE tbl_name IN ({names})"
                sql = f"SELECT sum(pgsize) FROM dbstat WHERE name IN ({owned})"
            else:
                sql = f"SELECT sum(pg_total_relation_size(t)) FROM unnest(ARRAY{list(tables)}::text[]) AS t"
            return int(await conn.scalar(text(sql)) or 0)

    async def size(self) -> None:
        """Bytes per stored bar: tradestore's candle tables against the plain layout, the same bars in both."""
        total, count = self.args.size_bars, self.args.size_series
        per = total // count
        await self.reset()
        if isinstance(self.raw, RawPostgres):
            await self.raw._c.execute("DROP TABLE IF EXISTS raw_ohlcv")
            await self.raw._c.execute(_PG_RAW_TABLE)
        log(f"{self.name}: size of {per * count:,} bars over {count} series")
        for k in range(count):
            bars = data.make_bars(per, symbol=f"SIZE{k:02d}USDT", seed=100 + k)
            async with self.db.get_session() as session:
                await OHLCVRepository(session).upsert_many(bars)
            if isinstance(self.raw, RawSQLite):
                await self.raw.upsert(bars)
            else:
                await self.raw._c.copy_records_to_table(
                    "raw_ohlcv",
                    records=[
                        (b.exchange, b.symbol, b.timeframe, b.timestamp, b.open, b.high, b.low, b.close, b.volume,
                         b.quote_volume, b.trades_count)
                        for b in bars
                    ],
                    columns=("exchange", "symbol", "timeframe", "time", "open", "high", "low", "close", "volume",
                             "quote_volume", "trades_count"),
                )  # fmt: skip
            del bars
        await self.analyze()
        stored = per * count
        ours, raw = await self._bytes(CANDLE_TABLES) / stored, await self._bytes(("raw_ohlcv",)) / stored
        goal = SIZE_GOAL[self.name]
        self.add(
            f"bytes per bar, {stored:,} 1m bars over {count} series (tables and indexes)",
            "B",
            ours,
            raw,
            goal=f"≤ {goal}",
            met=ours <= goal,
            notes="raw: one plain table, names in every row, unique key on (exchange, symbol, timeframe, time)",
        )
        if isinstance(self.raw, RawPostgres):
            await self.raw._c.execute("DROP TABLE raw_ohlcv")

    async def listing(self) -> None:
        """``list_series`` over many series: it reads the ledger, so bars stored do not matter."""
        count, per = self.args.list_series, self.args.list_series_bars
        await self.reset()
        samples: list[tuple[int, float, float]] = []
        stored = 0
        for upto in (10, per):
            log(f"{self.name}: list_series over {count:,} series of {upto:,} bars")
            for k in range(count):
                async with self.db.engine.begin() as conn:
                    await data.fill_series(conn, stored, upto, 10**12, symbol=f"L{k:04d}USDT")
            stored = upto
            await self.analyze()
            async with self.db.get_session() as session:
                repo = OHLCVRepository(session)
                listed = await repo.list_series()
                assert len(listed) == count and {s.count for s in listed} == {upto}, "the ledger disagrees"
                assert [(s.symbol, s.first, s.last, s.count) for s in listed] == [
                    (r[1], r[3], r[4], r[5]) for r in await self.raw.list_series()
                ]
                ours = await median_ms(self.args.latency_calls, repo.list_series)
            raw = await median_ms(self.args.latency_calls, self.raw.list_series)
            samples.append((count * upto, ours, raw))
        scan = await timed(self.raw.scan_series())
        (few, few_ms, _), (many, many_ms, raw_ms) = samples
        self.add(
            f"`list_series` over {count:,} series, {many:,} bars (median of {self.args.latency_calls})",
            "ms",
            many_ms,
            raw_ms,
            goal="≤ 10 ms",
            met=many_ms <= 10,
            notes=(
                f"reads the ledger: {few_ms:.2f} ms at {few:,} bars; raw: the ledger by hand; "
                f"grouping every bar instead (the old way): {scan * 1000:,.0f} ms"
            ),
        )

    # -- reads -----------------------------------------------------------------------------

    async def reads(self, bars: list[OHLCVBar]) -> None:
        n = len(bars)
        await self.reset()
        async with self.db.get_session() as session:
            await OHLCVRepository(session).upsert_many(bars)
        await self.analyze()
        start, end = bars[0].timestamp, bars[-1].timestamp
        symbol = data.SYMBOL

        async def ts_range() -> list[OHLCVBar]:
            async with self.db.get_session() as session:
                return await OHLCVRepository(session).get_range(symbol, "1m", start, end)

        got, expected = await ts_range(), await self.raw.get_range(symbol, start, end)
        fields = BAR_FIELDS
        assert [tuple(getattr(b, f) for f in fields) for b in got] == [
            tuple(getattr(b, f) for f in fields) for b in expected
        ], "get_range and the raw read disagree"
        assert len(got) == n
        del got, expected

        log(f"{self.name}: reading {n:,} bars")
        actions: dict[str, Callable[[], Awaitable[Any]]] = {
            "raw": lambda: self.raw.get_range(symbol, start, end),
            "tradestore": ts_range,
            "orm": lambda: self.orm.get_range(symbol, start, end),
        }
        times = await interleaved(actions, self.args.repeat)
        self.add(
            f"`get_range` of {n:,} bars into `OHLCVBar`s",
            "bars/s",
            n / min(times["tradestore"]),
            n / min(times["raw"]),
            n / min(times["orm"]),
            "≥ 0.8x raw",
            min(times["raw"]) / min(times["tradestore"]) >= 0.8,
            notes="raw: driver fetch + plain dataclasses",
        )

        log(f"{self.name}: get_latest({LATEST_LIMIT}) latency")
        async with self.db.get_session() as session:
            repo = OHLCVRepository(session)
            latest = await repo.get_latest(symbol, "1m", limit=LATEST_LIMIT)
            raw_latest = await self.raw.get_latest(symbol, LATEST_LIMIT)
            assert [(b.timestamp, b.close) for b in latest] == [(b.timestamp, b.close) for b in raw_latest]
            samples: dict[str, list[float]] = {"raw": [], "tradestore": [], "orm": []}
            calls: dict[str, Callable[[], Awaitable[Any]]] = {
                "raw": lambda: self.raw.get_latest(symbol, LATEST_LIMIT),
                "tradestore": lambda: repo.get_latest(symbol, "1m", limit=LATEST_LIMIT),
                "orm": lambda: self.orm.get_latest(session, symbol, LATEST_LIMIT),
            }
            for name in calls:
                for _ in range(3):
                    await calls[name]()
            for i in range(self.args.latency_calls):
                for name in rotate(list(calls), i):
                    started = time.perf_counter()
                    await calls[name]()
                    samples[name].append(time.perf_counter() - started)
        ms = {k: statistics.median(v) * 1000 for k, v in samples.items()}
        self.add(
            f"`get_latest(limit={LATEST_LIMIT:,})` latency (median of {self.args.latency_calls})",
            "ms",
            ms["tradestore"],
            ms["raw"],
            ms["orm"],
            "≤ 1.3x raw",
            ms["tradestore"] <= 1.3 * ms["raw"],
            notes="inside an open session / on an open connection",
        )

    # -- statistics --------------------------------------------------------------------------

    async def statistics(self) -> None:
        count = self.args.trades
        await self.reset()
        async with self.db.engine.begin() as conn:
            await data.fill_trades(conn, count)
        await self.analyze()
        log(f"{self.name}: statistics over {count:,} trades")

        async def ts() -> Any:
            async with self.db.get_session() as session:
                return await TradeRepository(session).get_statistics(days=30)

        def since() -> datetime:
            return datetime.now(UTC) - timedelta(days=30)

        stats, expected = await ts(), await self.raw.trade_summary(since())
        assert stats.total_trades == expected.total == count, (stats, expected)
        assert (stats.winning_trades, stats.losing_trades) == (expected.wins, expected.losses), (stats, expected)
        assert (stats.gross_profit, stats.gross_loss, stats.total_fees) == (
            expected.gross_profit,
            expected.gross_loss,
            expected.total_fees,
        ), (stats, expected)
        assert (stats.largest_win, stats.largest_loss) == (expected.largest_win, expected.largest_loss)

        actions: dict[str, Callable[[], Awaitable[Any]]] = {
            "raw": lambda: self.raw.trade_summary(since()),
            "tradestore": ts,
            "orm": lambda: self.orm.trade_summary(since()),
        }
        times = await interleaved(actions, self.args.repeat)
        best = {k: min(v) for k, v in times.items()}
        self.add(
            f"`get_statistics` over {count:,} trades",
            "s",
            best["tradestore"],
            best["raw"],
            best["orm"],
            "≤ 0.5 s, ≥ 5x ORM",
            best["tradestore"] <= 0.5 and best["orm"] >= 5 * best["tradestore"],
            notes="raw and ORM: load the trades, sum in Python",
        )

    # -- the big series: gaps, growth with stored bars, memory, plans ------------------------

    async def series(self) -> None:
        args = self.args
        hole_every = args.series // 100
        sizes = sorted({s for s in (10_000, 100_000, 1_000_000, 10_000_000) if s <= args.scale_max} | {args.series})
        await self.reset()
        stored = 0
        for size in sizes:
            log(f"{self.name}: filling the series to {size:,} bars")
            for first in range(stored, size, 1_000_000):
                async with self.db.engine.begin() as conn:
                    await data.fill_series(conn, first, min(size, first + 1_000_000), hole_every)
            stored = size
            await self.analyze()
            await self.scale_point(size)
            if size == args.series:
                await self.gaps(size, hole_every)
        await self.plans(stored)
        await self.memory()
        growth_latest = self.results.scale[-1].latest_ms / self.results.scale[0].latest_ms
        growth_day = self.results.scale[-1].day_ms / self.results.scale[0].day_ms
        first, last = self.results.scale[0].stored, self.results.scale[-1].stored
        for name, growth in (
            (f"`get_latest(limit={LATEST_LIMIT:,})`", growth_latest),
            ("`get_range` of 1 day of 1m bars", growth_day),
        ):
            self.add(
                f"{name} latency at {last:,} ÷ at {first:,} stored bars",
                "x",
                growth,
                goal="≤ 2x",
                met=growth <= 2,
                notes="see the scale table",
            )

    async def scale_point(self, stored: int) -> None:
        symbol = data.SYMBOL
        middle = data.T0 + (stored // 2) * data.MINUTE
        day_start = middle.replace(hour=0, minute=0)
        async with self.db.get_session() as session:
            repo = OHLCVRepository(session)
            calls = self.args.latency_calls
            latest = await median_ms(calls, lambda: repo.get_latest(symbol, "1m", limit=LATEST_LIMIT))
            day = await median_ms(calls, lambda: repo.get_range(symbol, "1m", day_start, day_start + DAY - data.MINUTE))
        log(f"{self.name}: {stored:,} stored: get_latest {latest:.2f} ms, 1 day {day:.2f} ms")
        self.results.scale.append(Scale(self.name, stored, latest, day))

    async def gaps(self, stored: int, hole_every: int) -> None:
        symbol = data.SYMBOL
        expected = data.expected_gaps(0, stored, hole_every)

        async def ts() -> list[tuple[datetime, datetime]]:
            async with self.db.get_session() as session:
                return await OHLCVRepository(session).get_gaps(symbol, "1m")

        assert await ts() == expected, "get_gaps found other gaps than generated"
        assert await self.raw.get_gaps(symbol) == expected, "the Python scan found other gaps than generated"
        log(f"{self.name}: get_gaps over {stored:,} bars")
        times: dict[str, list[float]] = {"raw": [], "tradestore": []}
        for rep in range(self.args.repeat):
            for name in rotate(list(times), rep):
                times[name].append(await timed(ts() if name == "tradestore" else self.raw.get_gaps(symbol)))
        best = min(times["tradestore"])
        self.add(
            f"`get_gaps`, series of {stored:,} bars with {len(expected)} holes",
            "s",
            best,
            min(times["raw"]),
            goal="≤ 1 s",
            met=best <= 1,
            notes="in the database; raw: fetch every timestamp, scan in Python",
        )

    async def memory(self) -> None:
        sizes = self.args.memory_bars
        peaks = []
        for bars in sizes:
            log(f"{self.name}: peak memory of stream_range over {bars:,} bars")
            stream = await measure_memory(self.url, bars, "stream")
            assert stream["bars"] == bars - sum(1 for i in range(bars) if data.is_hole(i, self.args.series // 100))
            notes = "RSS growth, own process"
            if bars == sizes[0]:
                whole = await measure_memory(self.url, bars, "list")
                notes += f"; `get_range` holding them all: {whole['peak_mib']:.0f} MiB"
            peaks.append(stream["peak_mib"])
            # Flat: 4x the bars or more cost less than 1.5x the memory (get_range's grows with them).
            flat = None if len(peaks) == 1 else peaks[-1] <= 1.5 * peaks[0]
            self.add(
                f"`stream_range` peak memory, {bars:,} bars ({stream['seconds']:.1f} s)",
                "MiB",
                stream["peak_mib"],
                goal="flat" if len(peaks) > 1 else "",
                met=flat,
                notes=notes,
            )

    async def plans(self, stored: int) -> None:
        """The query plans of the library's own statements, captured from the driver as they run."""
        symbol = data.SYMBOL
        middle = data.T0 + (stored // 2) * data.MINUTE
        captured: list[tuple[str, tuple[Any, ...]]] = []
        async with self.db.get_session() as session:
            repo = OHLCVRepository(session)
            conn = await session.connection()
            driver: Any = (await conn.get_raw_connection()).driver_connection
            calls: dict[str, Callable[[], Awaitable[list[OHLCVBar]]]] = {
                "get_latest": lambda: repo.get_latest(symbol, "1m", limit=LATEST_LIMIT),
                "get_range (1 day)": lambda: repo.get_range(symbol, "1m", middle, middle + DAY),
            }
            for label, call in calls.items():
                captured.clear()
                if self.name == "sqlite":
                    await driver.set_trace_callback(lambda sql: captured.append((sql, ())))
                    await call()
                    await driver.set_trace_callback(None)
                    sql = next(s for s, _ in captured if s.lstrip().upper().startswith("SELECT"))
                    rows = await driver.execute_fetchall(f"EXPLAIN QUERY PLAN {sql}")
                    plan = "\n".join(f"{'  ' * _depth(rows, r)}{r[3]}" for r in rows)
                else:

                    def logger(record: Any) -> None:
                        captured.append((record.query, tuple(record.args)))

                    driver.add_query_logger(logger)
                    await call()
                    await asyncio.sleep(0)  # asyncpg calls its query loggers soon, not at once
                    driver.remove_query_logger(logger)
                    sql, params = next((s, p) for s, p in captured if s.lstrip().upper().startswith("SELECT"))
                    rows = await driver.fetch(f"EXPLAIN (COSTS OFF) {sql}", *params)
                    plan = "\n".join(r[0] for r in rows)
                self.results.plans[f"{self.name}: {label} ({stored:,} stored bars)"] = f"{sql.strip()}\n\n{plan}"


def _depth(rows: Any, row: Any) -> int:
    parents = {r[0]: r[1] for r in rows}
    depth, parent = 0, row[1]
    while parent:
        depth, parent = depth + 1, parents.get(parent, 0)
    return depth


async def measure_memory(url: str, bars: int, mode: str) -> dict[str, float]:
    """Run ``benchmarks.memory`` in a fresh process (URL through the environment, never argv)."""
    env = dict(os.environ, TRADESTORE_DATABASE_URL=url, PYTHONPATH=str(ROOT))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.memory", str(bars), mode, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"benchmarks.memory {bars} {mode} failed ({process.returncode})")
    result: dict[str, float] = json.loads(out)
    return result


NOTES = """\
- ratio: tradestore ÷ raw driver, in the row's unit (bars/s: higher is better; ms, s: lower is better).
  Throughput is the best of {repeat} interleaved runs; latency the median of many calls.
- raw driver: the same job written by hand on the driver alone (benchmarks/baselines.py); writes
  include converting the same `OHLCVBar`s, reads build plain dataclasses. Where several raw
  upserts are tried, the fastest is the figure.
- ORM: SQLAlchemy ORM on tradestore's models; writes: `add_all` of {orm_bars:,} bars into an empty
  table (no upsert), reads: `select(OHLCVModel)`, statistics: `TradeModel` rows summed in Python.
  In brackets: how many times better tradestore does.
- memory: growth of the resident set of a fresh process while it streams the bars (SQLite's
  includes its page cache, capped at 64 MiB)."""


# --- databases ------------------------------------------------------------------------


async def pg_database(admin_url: str) -> str | None:
    """Create a database for this run and return its URL (``None`` when the server is unreachable)."""
    base = make_url(admin_url).set(drivername="postgresql")
    name = f"tradestore_bench_{uuid.uuid4().hex[:12]}"
    try:
        conn = await asyncpg.connect(base.render_as_string(hide_password=False), timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL not reachable at {base.render_as_string()}: {exc}; SQLite only", file=sys.stderr)
        return None
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return base.set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(admin_url: str, url: str) -> None:
    base = make_url(admin_url).set(drivername="postgresql")
    conn = await asyncpg.connect(base.render_as_string(hide_password=False), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await conn.close()


async def server_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


# --- the command ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000, help="bars written and read back (default 100,000)")
    parser.add_argument("--series", type=int, default=1_000_000, help="bars in the get_gaps series (100 holes)")
    parser.add_argument("--scale-max", type=int, default=1_000_000, help="largest stored size of the scale test")
    parser.add_argument("--trades", type=int, default=100_000, help="trades for get_statistics")
    parser.add_argument("--size-bars", type=int, default=1_000_000, help="bars stored for the bytes-per-bar figure")
    parser.add_argument("--size-series", type=int, default=10, help="series those bars are spread over")
    parser.add_argument("--list-series", type=int, default=1_000, help="series for the list_series latency")
    parser.add_argument("--list-series-bars", type=int, default=1_000, help="bars per series for list_series")
    parser.add_argument("--orm-bars", type=int, default=10_000, help="bars the ORM add_all baseline writes")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per contender; the best counts")
    parser.add_argument("--latency-calls", type=int, default=30, help="calls per latency median")
    parser.add_argument(
        "--memory-bars", type=lambda s: [int(x) for x in s.split(",")], default=[250_000, 1_000_000],
        help="comma-separated range sizes for the stream_range memory test",
    )  # fmt: skip
    parser.add_argument(
        "--big", action="store_true", help="the long run: 10,000,000 stored bars, stream_range over 1M and 10M"
    )
    parser.add_argument(
        "--hot-path", action="store_true", help="only the hot-path table: per-tick calls vs the raw driver"
    )
    parser.add_argument("--hot-units", type=int, default=600, help="timed units of work per side and row (hot path)")
    parser.add_argument("--hot-rounds", type=int, default=12, help="alternating rounds they are split into")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("TRADESTORE_BENCH_PG_URL", DEFAULT_PG_URL),
        help="PostgreSQL server to run on (a database is created for the run and dropped after it)",
    )
    parser.add_argument("--workdir", default=None, help="folder for the SQLite database file (default: a temp dir)")
    processes.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.big:
        args.scale_max = max(args.scale_max, 10_000_000)
        args.memory_bars = [1_000_000, 10_000_000]
    args.series = max(args.series, 100 * 10)
    if max(args.memory_bars) > max(args.scale_max, args.series):
        parser.error("--memory-bars cannot exceed the stored series (--scale-max / --series)")
    return args


async def hot_path_main(args: argparse.Namespace) -> int:
    """The hot-path table alone (``--hot-path``)."""
    started = time.perf_counter()
    header = [
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    ]
    folder = Path(tempfile.mkdtemp(prefix="tradestore-hot-", dir=args.workdir))
    pg_url = await pg_database(args.pg_url) if args.backend in ("postgresql", "both") else None
    try:
        if pg_url is not None:
            header.append(f"PostgreSQL {await server_version(pg_url)}")
        sqlite_path = str(folder / "hot.db") if args.backend in ("sqlite", "both") else None
        rows = await hot_path.main(args, log, sqlite_path, pg_url)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if pg_url is not None:
            await drop_pg_database(args.pg_url, pg_url)
    print(f"tradestore hot path: {', '.join(header)}")
    print(f"command: python -m benchmarks {' '.join(sys.argv[1:])}".rstrip())
    print()
    print(hot_path.table(rows))
    print()
    print(hot_path.table(rows, cpu=True))
    print()
    print(hot_path.NOTES.format(units=args.hot_units, rounds=args.hot_rounds, warm=hot_path.WARM, goal=hot_path.GOAL))
    print(f"\ntotal time: {time.perf_counter() - started:.0f} s")
    return 0 if all(r.met for r in rows) else 1


async def amain(args: argparse.Namespace) -> int:
    if args.hot_path:
        return await hot_path_main(args)
    started = time.perf_counter()
    log(f"building {args.bars:,} validated bars")
    bars = data.make_bars(args.bars)
    rows: list[Row] = []
    scale: list[Scale] = []
    plans: dict[str, str] = {}
    header = [
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    ]
    if args.backend in ("sqlite", "both"):
        folder = Path(tempfile.mkdtemp(prefix="tradestore-bench-", dir=args.workdir))
        try:
            path = folder / "bench.db"
            bench = Bench("sqlite", f"sqlite+aiosqlite:///{path}", RawSQLite(str(path)), args)
            result = await bench.run(bars)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        rows += result.rows
        scale += result.scale
        plans.update(result.plans)
    if args.backend in ("postgresql", "both"):
        url = await pg_database(args.pg_url)
        if url is not None:
            try:
                header.append(f"PostgreSQL {await server_version(url)}")
                result = await Bench("postgresql", url, RawPostgres(url), args).run(bars)
            finally:
                await drop_pg_database(args.pg_url, url)
            rows += result.rows
            scale += result.scale
            plans.update(result.plans)
    print(f"tradestore benchmarks: {', '.join(header)}")
    print(f"command: python -m benchmarks {' '.join(sys.argv[1:])}".rstrip())
    print()
    print(table(rows))
    print()
    print(NOTES.format(orm_bars=args.orm_bars, repeat=args.repeat))
    print()
    print("Latency against stored bars (one series; median of", args.latency_calls, "calls):")
    print()
    print("| backend | stored bars | `get_latest(limit=1000)` | `get_range` (1 day, 1,440 bars) |")
    print("|---|---:|---:|---:|")
    for s in scale:
        print(f"| {s.backend} | {s.stored:,} | {s.latest_ms:.2f} ms | {s.day_ms:.2f} ms |")
    for title, plan in plans.items():
        print(f"\nQuery plan, {title}:\n\n```\n{plan}\n```")
    print(f"\ntotal time: {time.perf_counter() - started:.0f} s")
    return 0 if all(r.met is not False for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; exit status 1 when a goal is missed."""
    args = parse_args(argv)
    if args.shared_file or args.many_bots:
        return processes.run(args)
    return asyncio.run(amain(args))
