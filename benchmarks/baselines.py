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
from tradestore.models import OHLCVModel, TradeModel

COLUMNS = (
    "exchange", "symbol", "timeframe", "timestamp", "open", "high", "low", "close",
    "volume", "quote_volume", "trades_count", "created_at",
)  # fmt: skip
_KEY = "exchange, symbol, timeframe, timestamp"
_SET = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[4:11])
_READ = (
    "id, exchange, symbol, timeframe, timestamp, open, high, low, close, volume, quote_volume, trades_count, created_at"
)


@dataclass
class RawBar:
    """A plain dataclass with the same fields as ``OHLCVBar``, and no validation."""

    id: int
    exchange: str
    symbol: str
    timeframe: str
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal | None
    trades_count: int | None
    created_at: datetime


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
    """aiosqlite alone, on a connection set up like tradestore's (WAL, synchronous=NORMAL, 64 MiB cache)."""

    name = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: aiosqlite.Connection | None = None

    async def open(self) -> None:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000", "cache_size=-65536"):
            await conn.execute(f"PRAGMA {pragma}")
        self.conn = conn

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    @property
    def _c(self) -> aiosqlite.Connection:
        assert self.conn is not None
        return self.conn

    async def upsert(self, bars: Sequence[OHLCVBar]) -> None:
        """``executemany`` of one prepared ``INSERT … ON CONFLICT DO UPDATE``, conversion included."""
        sql = f"INSERT INTO ohlcv ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
        sql += f"ON CONFLICT ({_KEY}) DO UPDATE SET {_SET}"
        created = datetime.now(UTC).isoformat(" ", "microseconds")
        await self._c.execute("BEGIN IMMEDIATE")
        rows = [
            (
                b.exchange, b.symbol, b.timeframe, b.timestamp.isoformat(" ", "microseconds"),
                str(b.open), str(b.high), str(b.low), str(b.close), str(b.volume),
                None if b.quote_volume is None else str(b.quote_volume), b.trades_count, created,
            )
            for b in bars
        ]  # fmt: skip
        await self._c.executemany(sql, rows)
        await self._c.execute("COMMIT")

    def upserts(self, bars: Sequence[OHLCVBar]) -> dict[str, Callable[[], Awaitable[None]]]:
        """The bulk upserts to try; the best counts as the raw driver's figure."""
        return {"executemany upsert": lambda: self.upsert(bars)}

    async def _bars(self, sql: str, params: tuple[Any, ...]) -> list[RawBar]:
        rows = await self._c.execute_fetchall(sql, params)
        dec, ts = Decimal, datetime.fromisoformat
        with _Paused():
            return [
                RawBar(
                    r[0], r[1], r[2], r[3], ts(r[4]), dec(r[5]), dec(r[6]), dec(r[7]), dec(r[8]), dec(r[9]),
                    None if r[10] is None else dec(r[10]), r[11], ts(r[12]),
                )
                for r in rows
            ]  # fmt: skip

    async def get_range(self, symbol: str, start: datetime, end: datetime) -> list[RawBar]:
        sql = f"SELECT {_READ} FROM ohlcv WHERE exchange = 'binance' AND symbol = ? AND timeframe = '1m' "
        sql += "AND timestamp >= ? AND timestamp <= ? ORDER BY timestamp"
        return await self._bars(sql, (symbol, start.isoformat(" ", "microseconds"), end.isoformat(" ", "microseconds")))

    async def get_latest(self, symbol: str, limit: int) -> list[RawBar]:
        sql = f"SELECT {_READ} FROM ohlcv WHERE exchange = 'binance' AND symbol = ? AND timeframe = '1m' "
        sql += "ORDER BY timestamp DESC LIMIT ?"
        bars = await self._bars(sql, (symbol, limit))
        bars.reverse()
        return bars

    async def get_gaps(self, symbol: str) -> list[tuple[datetime, datetime]]:
        """Fetch every timestamp of the series and scan them in Python."""
        sql = "SELECT timestamp FROM ohlcv WHERE exchange = 'binance' AND symbol = ? AND timeframe = '1m' "
        sql += "ORDER BY timestamp"
        rows = await self._c.execute_fetchall(sql, (symbol,))
        ts = datetime.fromisoformat
        with _Paused():
            stamps = [ts(r[0]) for r in rows]
        return scan_gaps(stamps, timedelta(minutes=1))

    async def trade_summary(self, since: datetime) -> Summary:
        """Fetch (realized_pnl, fee) of the matching trades and sum them in Python."""
        sql = "SELECT realized_pnl, fee FROM trades WHERE realized_pnl IS NOT NULL AND exit_time IS NOT NULL "
        sql += "AND exit_time >= ? AND exchange = 'binance' AND mode = 'live'"
        rows = await self._c.execute_fetchall(sql, (since.isoformat(" ", "microseconds"),))
        dec = Decimal
        return summarise([(dec(pnl), dec(fee)) for pnl, fee in rows])


class RawPostgres:
    """asyncpg alone, on its own connection (session time zone UTC, like tradestore's)."""

    name = "postgresql"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: asyncpg.Connection | None = None

    async def open(self) -> None:
        self.conn = await asyncpg.connect(self.dsn, server_settings={"timezone": "UTC"})

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    @property
    def _c(self) -> asyncpg.Connection:
        assert self.conn is not None
        return self.conn

    @staticmethod
    def _rows(bars: Sequence[OHLCVBar]) -> list[tuple[Any, ...]]:
        created = datetime.now(UTC)
        return [
            (
                b.exchange, b.symbol, b.timeframe, b.timestamp, b.open, b.high, b.low, b.close,
                b.volume, b.quote_volume, b.trades_count, created,
            )
            for b in bars
        ]  # fmt: skip

    async def _upsert(self, bars: Sequence[OHLCVBar], *, text: bool) -> None:
        columns = ", ".join(COLUMNS)
        async with self._c.transaction():
            await self._c.execute(
                f"CREATE TEMP TABLE incoming ON COMMIT DROP AS SELECT {columns} FROM ohlcv WITH NO DATA"
            )
            rows = self._rows(bars)
            if text:  # str() of every value; no string in these bars needs escaping
                data = ("\n".join("\t".join(map(str, r)) for r in rows) + "\n").encode()
                await self._c.copy_to_table("incoming", source=io.BytesIO(data), columns=COLUMNS, null="None")
            else:
                await self._c.copy_records_to_table("incoming", records=rows, columns=COLUMNS)
            await self._c.execute(
                f"INSERT INTO ohlcv ({columns}) SELECT {columns} FROM incoming "
                f"ON CONFLICT ({_KEY}) DO UPDATE SET {_SET}"
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
            await self._c.copy_records_to_table("ohlcv", records=self._rows(bars), columns=COLUMNS)

    def upserts(self, bars: Sequence[OHLCVBar]) -> dict[str, Callable[[], Awaitable[None]]]:
        """The bulk upserts to try; the best counts as the raw driver's figure."""
        return {
            "binary COPY + ON CONFLICT": lambda: self.upsert_binary(bars),
            "text COPY + ON CONFLICT": lambda: self.upsert_text(bars),
        }

    async def _bars(self, sql: str, *params: Any) -> list[RawBar]:
        rows = await self._c.fetch(sql, *params)
        with _Paused():
            return [RawBar(*r) for r in rows]

    async def get_range(self, symbol: str, start: datetime, end: datetime) -> list[RawBar]:
        sql = f"SELECT {_READ} FROM ohlcv WHERE exchange = 'binance' AND symbol = $1 AND timeframe = '1m' "
        sql += "AND timestamp >= $2 AND timestamp <= $3 ORDER BY timestamp"
        return await self._bars(sql, symbol, start, end)

    async def get_latest(self, symbol: str, limit: int) -> list[RawBar]:
        sql = f"SELECT {_READ} FROM ohlcv WHERE exchange = 'binance' AND symbol = $1 AND timeframe = '1m' "
        sql += "ORDER BY timestamp DESC LIMIT $2"
        bars = await self._bars(sql, symbol, limit)
        bars.reverse()
        return bars

    async def get_gaps(self, symbol: str) -> list[tuple[datetime, datetime]]:
        """Fetch every timestamp of the series and scan them in Python."""
        sql = "SELECT timestamp FROM ohlcv WHERE exchange = 'binance' AND symbol = $1 AND timeframe = '1m' "
        sql += "ORDER BY timestamp"
        rows = await self._c.fetch(sql, symbol)
        return scan_gaps([r[0] for r in rows], timedelta(minutes=1))

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
        created = datetime.now(UTC)
        async with self.db.get_session() as session:
            session.add_all(
                OHLCVModel(
                    exchange=b.exchange, symbol=b.symbol, timeframe=b.timeframe, timestamp=b.timestamp,
                    open=b.open, high=b.high, low=b.low, close=b.close, volume=b.volume,
                    quote_volume=b.quote_volume, trades_count=b.trades_count, created_at=created,
                )
                for b in bars
            )  # fmt: skip

    async def get_range(self, symbol: str, start: datetime, end: datetime) -> list[OHLCVModel]:
        m = OHLCVModel
        statement = (
            select(m)
            .where(m.exchange == "binance", m.symbol == symbol, m.timeframe == "1m")
            .where(m.timestamp >= start, m.timestamp <= end)
            .order_by(m.timestamp)
        )
        async with self.db.get_session() as session:
            return list((await session.scalars(statement)).all())

    async def get_latest(self, session: AsyncSession, symbol: str, limit: int) -> list[OHLCVModel]:
        """In an open session, like ``OHLCVRepository.get_latest`` is measured."""
        m = OHLCVModel
        statement = (
            select(m)
            .where(m.exchange == "binance", m.symbol == symbol, m.timeframe == "1m")
            .order_by(m.timestamp.desc())
            .limit(limit)
        )
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
