"""What tradestore is measured against: the raw drivers (the limit) and the SQLAlchemy ORM (the usual way).

The raw baselines are what a careful programmer writes by hand with the driver alone: one
prepared statement, tuples, one conversion per value into the storage format tradestore uses
(on SQLite: ``str(decimal)`` and fixed-width ISO-8601 text), plain dataclasses on the way out
built with the collector paused, and no validation. They run on their own driver connection
to the same database. The ORM baselines use tradestore's own models and sessions.
"""

from __future__ import annotations

import gc
import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiosqlite
import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tradestore import DatabaseManager, OHLCVBar
from tradestore.models import OHLCVModel, SeriesModel, TradeModel

#: The raw SQLite baseline's own table, as the issue defines it: names in every row, a unique
#: key on (exchange, symbol, timeframe, time), integer epoch-millisecond times, decimal text.
RAW_TABLE = """
CREATE TABLE raw_ohlcv (
    id INTEGER PRIMARY KEY, exchange TEXT NOT NULL, symbol TEXT NOT NULL, timeframe TEXT NOT NULL,
    time INTEGER NOT NULL, open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL,
    volume TEXT NOT NULL, quote_volume TEXT, trades_count INTEGER,
    UNIQUE (exchange, symbol, timeframe, time)
)"""
RAW_COLUMNS = (
    "exchange", "symbol", "timeframe", "time", "open", "high", "low", "close", "volume", "quote_volume", "trades_count",
)  # fmt: skip
#: tradestore's candle table, written and read by hand (PostgreSQL raw writes, both backends' raw reads).
COLUMNS = ("series_id", "time", "open", "high", "low", "close", "volume", "quote_volume", "trades_count")
NUMBERS = ("open", "high", "low", "close", "volume", "quote_volume", "trades_count")
_SET = ", ".join(f"{c} = excluded.{c}" for c in NUMBERS)
_READ = "time, open, high, low, close, volume, quote_volume, trades_count"
_SERIES = "(SELECT id FROM ohlcv_series WHERE exchange = 'binance' AND symbol = {} AND timeframe = '1m')"


@dataclass
class RawBar:
    """A plain dataclass with the bar fields of ``OHLCVBar``, and no validation."""

    symbol: str
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal | None
    trades_count: int | None
    exchange: str = "binance"
    timeframe: str = "1m"


@dataclass(frozen=True)
class Summary:
    """The exact parts of ``TradeStatistics`` every approach must agree on."""

    total: int
    wins: int
    losses: int
    gross_profit: Decimal
    gross_loss: Decimal
    total_fees: Decimal
    largest_win: Decimal
    largest_loss: Decimal


def summarise(pairs: Sequence[tuple[Decimal, Decimal]]) -> Summary:
    """Trade statistics in plain Python from (realized_pnl, fee) pairs."""
    wins = losses = 0
    profit = loss = fees = largest_win = largest_loss = Decimal(0)
    for pnl, fee in pairs:
        net = pnl - fee
        fees += fee
        if net > 0:
            wins += 1
            profit += net
            largest_win = max(largest_win, net)
        elif net < 0:
            losses += 1
            loss -= net
            largest_loss = max(largest_loss, -net)
    return Summary(len(pairs), wins, losses, profit, loss, fees, largest_win, largest_loss)


def scan_gaps(stamps: Sequence[datetime], step: timedelta) -> list[tuple[datetime, datetime]]:
    """Gaps between consecutive timestamps, as (first missing, last missing)."""
    gaps = []
    prev = None
    for ts in stamps:
        if prev is not None and ts - prev > step:
            gaps.append((prev + step, ts - step))
        prev = ts
    return gaps


class _Paused:
    """Pause the cyclic garbage collector while many small objects are built."""

    def __enter__(self) -> None:
        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.was_enabled:
            gc.enable()


class RawSQLite:
    """aiosqlite alone, on a connection set up like tradestore's (WAL, synchronous=NORMAL, 64 MiB cache).

    Writes go to its own plain table (:data:`RAW_TABLE`, emptied on every ``open()``); reads
    read tradestore's tables by hand.
    """

    name = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: aiosqlite.Connection | None = None

    async def open(self) -> None:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000", "cache_size=-65536"):
            await conn.execute(f"PRAGMA {pragma}")
        await conn.execute("DROP TABLE IF EXISTS raw_ohlcv")
        await conn.execute(RAW_TABLE)
        self.conn = conn

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    @property
    def _c(self) -> aiosqlite.Connection:
        assert self.conn is not None
        return self.conn

    async def upsert(self, bars: Sequence[OHLCVBar]) -> None:
        """``executemany`` of one prepared ``INSERT … ON CONFLICT DO UPDATE``, conversion included."""
        sql = f"INSERT INTO raw_ohlcv ({', '.join(RAW_COLUMNS)}) VALUES ({', '.join('?' * len(RAW_COLUMNS))}) "
        sql += f"ON CONFLICT (exchange, symbol, timeframe, time) DO UPDATE SET {_SET}"
        await self._c.execute("BEGIN IMMEDIATE")
        rows = [
            (
                b.exchange, b.symbol, b.timeframe, int(b.timestamp.timestamp()) * 1000,
                str(b.open), str(b.high), str(b.low), str(b.close), str(b.volume),
                None if b.quote_volume is None else str(b.quote_volume), b.trades_count,
            )
            for b in bars
        ]  # fmt: skip
        await self._c.executemany(sql, rows)
        await self._c.execute("COMMIT")

    def upserts(self, bars: Sequence[OHLCVBar]) -> dict[str, Callable[[], Awaitable[None]]]:
        """The bulk upserts to try; the best counts as the raw driver's figure."""
        return {"executemany upsert": lambda: self.upsert(bars)}

    async def written(self, symbol: str, start: datetime, end: datetime) -> list[RawBar]:
        """What :meth:`upsert` stored, read back from its own table."""
        sql = f"SELECT {_READ} FROM raw_ohlcv WHERE exchange = 'binance' AND symbol = ? AND timeframe = '1m' "
        sql += "AND time >= ? AND time <= ? ORDER BY time"
        low, high = int(start.timestamp()) * 1000, int(end.timestamp()) * 1000
        rows = await self._c.execute_fetchall(sql, (symbol, low, high))
        return self._make(symbol, [(r[0] // 1000, *r[1:]) for r in rows])

    @staticmethod
    def _make(symbol: str, rows: Sequence[Sequence[Any]]) -> list[RawBar]:
        dec, ts = Decimal, datetime.fromtimestamp
        with _Paused():
            return [
                RawBar(
                    symbol, ts(r[0], UTC), dec(r[1]), dec(r[2]), dec(r[3]), dec(r[4]), dec(r[5]),
                    None if r[6] is None else dec(r[6]), r[7],
                )
                for r in rows
            ]  # fmt: skip

    async def get_range(self, symbol: str, start: datetime, end: datetime) -> list[RawBar]:
        sql = f"SELECT {_READ} FROM ohlcv WHERE series_id = {_SERIES.format('?')} AND time >= ? AND time <= ? "
        sql += "ORDER BY time"
        rows = await self._c.execute_fetchall(sql, (symbol, int(start.timestamp()), int(end.timestamp())))
        return self._make(symbol, list(rows))

    async def get_latest(self, symbol: str, limit: int) -> list[RawBar]:
        sql = f"SELECT {_READ} FROM ohlcv WHERE series_id = {_SERIES.format('?')} ORDER BY time DESC LIMIT ?"
        bars = self._make(symbol, list(await self._c.execute_fetchall(sql, (symbol, limit))))
        bars.reverse()
        return bars

    async def get_gaps(self, symbol: str) -> list[tuple[datetime, datetime]]:
        """Fetch every timestamp of the series and scan them in Python."""
        sql = f"SELECT time FROM ohlcv WHERE series_id = {_SERIES.format('?')} ORDER BY time"
        rows = await self._c.execute_fetchall(sql, (symbol,))
        ts = datetime.fromtimestamp
        with _Paused():
            stamps = [ts(r[0], UTC) for r in rows]
        return scan_gaps(stamps, timedelta(minutes=1))

    async def list_series(self) -> list[tuple[Any, ...]]:
        """The series ledger as plain tuples, times converted."""
        rows = await self._c.execute_fetchall(
            "SELECT exchange, symbol, timeframe, first_bar, last_bar, bar_count FROM ohlcv_series "
            "WHERE bar_count > 0 ORDER BY exchange, symbol, timeframe"
        )
        ts = datetime.fromtimestamp
        return [(e, s, t, ts(f, UTC), ts(la, UTC), n) for e, s, t, f, la, n in rows]

    async def scan_series(self) -> int:
        """What ``list_series`` did before the ledger: group every stored bar."""
        rows = await self._c.execute_fetchall("SELECT series_id, min(time), max(time), count(*) FROM ohlcv GROUP BY 1")
        return len(list(rows))

    async def trade_summary(self, since: datetime) -> Summary:
        """Fetch (realized_pnl, fee) of the matching trades and sum them in Python."""
        sql = "SELECT realized_pnl, fee FROM trades WHERE realized_pnl IS NOT NULL AND exit_time IS NOT NULL "
        sql += "AND exit_time >= ? AND exchange = 'binance' AND mode = 'live'"
        rows = await self._c.execute_fetchall(sql, (since.isoformat(" ", "microseconds"),))
        dec = Decimal
        return summarise([(dec(pnl), dec(fee)) for pnl, fee in rows])


class RawPostgres:
    """asyncpg alone, on its own connection (session time zone UTC, like tradestore's), on tradestore's tables."""

    name = "postgresql"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: asyncpg.Connection | None = None

    async def open(self) -> None:
        self.conn = await asyncpg.connect(self.dsn, server_settings={"timezone": "UTC"})

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    @property
    def _c(self) -> asyncpg.Connection:
        assert self.conn is not None
        return self.conn

    async def _series_id(self, bars: Sequence[OHLCVBar]) -> int:
        b = bars[0]
        await self._c.execute(
            "INSERT INTO ohlcv_series (exchange, symbol, timeframe, bar_count, updated_at) "
            "VALUES ($1, $2, $3, 0, now()) ON CONFLICT DO NOTHING",
            b.exchange, b.symbol, b.timeframe,
        )  # fmt: skip
        found = await self._c.fetchval(
            "SELECT id FROM ohlcv_series WHERE exchange = $1 AND symbol = $2 AND timeframe = $3",
            b.exchange, b.symbol, b.timeframe,
        )  # fmt: skip
        return int(found)

    @staticmethod
    def _rows(series_id: int, bars: Sequence[OHLCVBar]) -> list[tuple[Any, ...]]:
        return [
            (series_id, b.timestamp, b.open, b.high, b.low, b.close, b.volume, b.quote_volume, b.trades_count)
            for b in bars
        ]

    async def _upsert(self, bars: Sequence[OHLCVBar], *, text: bool) -> None:
        columns = ", ".join(COLUMNS)
        async with self._c.transaction():
            rows = self._rows(await self._series_id(bars), bars)
            await self._c.execute(
                f"CREATE TEMP TABLE incoming ON COMMIT DROP AS SELECT {columns} FROM ohlcv WITH NO DATA"
            )
            if text:  # str() of every value; no string in these bars needs escaping
                data = ("\n".join("\t".join(map(str, r)) for r in rows) + "\n").encode()
                await self._c.copy_to_table("incoming", source=io.BytesIO(data), columns=COLUMNS, null="None")
            else:
                await self._c.copy_records_to_table("incoming", records=rows, columns=COLUMNS)
            await self._c.execute(
                f"INSERT INTO ohlcv ({columns}) SELECT {columns} FROM incoming "
                f"ON CONFLICT (series_id, time) DO UPDATE SET {_SET}"
            )

    async def upsert_binary(self, bars: Sequence[OHLCVBar]) -> None:
        """Binary COPY into a temporary table, then one ``INSERT … SELECT … ON CONFLICT DO UPDATE``."""
        await self._upsert(bars, text=False)

    async def upsert_text(self, bars: Sequence[OHLCVBar]) -> None:
        """The same with COPY's text format: ``str()`` of each value, far cheaper than binary ``Decimal``s."""
        await self._upsert(bars, text=True)

    async def copy_into_table(self, bars: Sequence[OHLCVBar]) -> None:
        """Binary COPY straight into the table: a plain insert (fails on any stored key)."""
        async with self._c.transaction():
            rows = self._rows(await self._series_id(bars), bars)
            await self._c.copy_records_to_table("ohlcv", records=rows, columns=COLUMNS)

    def upserts(self, bars: Sequence[OHLCVBar]) -> dict[str, Callable[[], Awaitable[None]]]:
        """The bulk upserts to try; the best counts as the raw driver's figure."""
        return {
            "binary COPY + ON CONFLICT": lambda: self.upsert_binary(bars),
            "text COPY + ON CONFLICT": lambda: self.upsert_text(bars),
        }

    async def _bars(self, symbol: str, sql: str, *params: Any) -> list[RawBar]:
        rows = await self._c.fetch(sql, *params)
        with _Paused():
            return [RawBar(symbol, *r) for r in rows]

    async def written(self, symbol: str, start: datetime, end: datetime) -> list[RawBar]:
        """What the raw writes stored (into tradestore's own table)."""
        return await self.get_range(symbol, start, end)

    async def get_range(self, symbol: str, start: datetime, end: datetime) -> list[RawBar]:
        sql = f"SELECT {_READ} FROM ohlcv WHERE series_id = {_SERIES.format('$1')} AND time >= $2 AND time <= $3 "
        sql += "ORDER BY time"
        return await self._bars(symbol, sql, symbol, start, end)

    async def get_latest(self, symbol: str, limit: int) -> list[RawBar]:
        sql = f"SELECT {_READ} FROM ohlcv WHERE series_id = {_SERIES.format('$1')} ORDER BY time DESC LIMIT $2"
        bars = await self._bars(symbol, sql, symbol, limit)
        bars.reverse()
        return bars

    async def get_gaps(self, symbol: str) -> list[tuple[datetime, datetime]]:
        """Fetch every timestamp of the series and scan them in Python."""
        sql = f"SELECT time FROM ohlcv WHERE series_id = {_SERIES.format('$1')} ORDER BY time"
        rows = await self._c.fetch(sql, symbol)
        return scan_gaps([r[0] for r in rows], timedelta(minutes=1))

    async def list_series(self) -> list[tuple[Any, ...]]:
        """The series ledger as plain tuples."""
        rows = await self._c.fetch(
            "SELECT exchange, symbol, timeframe, first_bar, last_bar, bar_count FROM ohlcv_series "
            "WHERE bar_count > 0 ORDER BY exchange, symbol, timeframe"
        )
        return [tuple(r) for r in rows]

    async def scan_series(self) -> int:
        """What ``list_series`` did before the ledger: group every stored bar."""
        rows = await self._c.fetch("SELECT series_id, min(time), max(time), count(*) FROM ohlcv GROUP BY 1")
        return len(rows)

    async def trade_summary(self, since: datetime) -> Summary:
        """Fetch (realized_pnl, fee) of the matching trades and sum them in Python."""
        sql = "SELECT realized_pnl, fee FROM trades WHERE realized_pnl IS NOT NULL AND exit_time IS NOT NULL "
        sql += "AND exit_time >= $1 AND exchange = 'binance' AND mode = 'live'"
        rows = await self._c.fetch(sql, since)
        return summarise([(r[0], r[1]) for r in rows])


Raw = RawSQLite | RawPostgres


class Orm:
    """The usual SQLAlchemy ORM code, on tradestore's own models and sessions."""

    def __init__(self, db: DatabaseManager) -> None:
        self.db = db

    async def add_all(self, bars: Sequence[OHLCVBar]) -> None:
        async with self.db.get_session() as session:
            b = bars[0]
            series = SeriesModel(
                exchange=b.exchange, symbol=b.symbol, timeframe=b.timeframe, bar_count=0, updated_at=datetime.now(UTC)
            )
            session.add(series)
            await session.flush()
            session.add_all(
                OHLCVModel(
                    series_id=series.id, time=b.timestamp, open=b.open, high=b.high, low=b.low, close=b.close,
                    volume=b.volume, quote_volume=b.quote_volume, trades_count=b.trades_count,
                )
                for b in bars
            )  # fmt: skip

    @staticmethod
    def _of(symbol: str) -> Any:
        return OHLCVModel.series_id == (
            select(SeriesModel.id)
            .where(SeriesModel.exchange == "binance", SeriesModel.symbol == symbol, SeriesModel.timeframe == "1m")
            .scalar_subquery()
        )

    async def get_range(self, symbol: str, start: datetime, end: datetime) -> list[OHLCVModel]:
        m = OHLCVModel
        statement = select(m).where(self._of(symbol), m.time >= start, m.time <= end).order_by(m.time)
        async with self.db.get_session() as session:
            return list((await session.scalars(statement)).all())

    async def get_latest(self, session: AsyncSession, symbol: str, limit: int) -> list[OHLCVModel]:
        """In an open session, like ``OHLCVRepository.get_latest`` is measured."""
        m = OHLCVModel
        statement = select(m).where(self._of(symbol)).order_by(m.time.desc()).limit(limit)
        rows = list((await session.scalars(statement)).all())
        rows.reverse()
        return rows

    async def trade_summary(self, since: datetime) -> Summary:
        """Load the matching trades as ORM objects and sum them in Python."""
        t = TradeModel
        statement = select(t).where(
            t.realized_pnl.is_not(None),
            t.exit_time.is_not(None),
            t.exit_time >= since,
            t.exchange == "binance",
            t.mode == "live",
        )
        async with self.db.get_session() as session:
            trades = (await session.scalars(statement)).all()
            return summarise([(tr.realized_pnl or Decimal(0), tr.fee) for tr in trades])
