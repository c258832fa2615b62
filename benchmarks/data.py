"""Benchmark data: validated ``OHLCVBar`` lists for the write and read paths, and large series
and trade tables generated inside the database (setup only, never timed).

The generated rows use exactly the storage format tradestore writes (decimal text and
epoch-second integers on SQLite, ``NUMERIC``/``TIMESTAMPTZ`` on PostgreSQL, the series
ledger set to agree), so tradestore reads them back like its own.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

import tradestore.dialects
from tradestore import OHLCVBar
from tradestore.models import OHLCVModel, SeriesModel

SERIES = cast(Table, SeriesModel.__table__)

T0 = datetime(2020, 1, 1, tzinfo=UTC)
EPOCH_T0 = int(T0.timestamp())
SYMBOL = "BTCUSDT"
MINUTE = timedelta(minutes=1)
HOLE_BARS = 3
#: Closed trades are spread over the 29 days before ``now``, inside ``get_statistics(days=30)``.
TRADE_SPREAD_MINUTES = 29 * 24 * 60


def make_bars(count: int, *, symbol: str = SYMBOL, seed: int = 1) -> list[OHLCVBar]:
    """``count`` one-minute bars from ``T0``: a random walk with realistic decimal places."""
    rnd = random.Random(seed)
    price = 42_000.0
    bars = []
    for i in range(count):
        open_ = price
        close = max(1.0, open_ + rnd.uniform(-20, 20))
        high = max(open_, close) + rnd.uniform(0, 5)
        low = max(0.01, min(open_, close) - rnd.uniform(0, 5))
        price = close
        bars.append(
            OHLCVBar(
                symbol,
                "binance",
                "1m",
                T0 + i * MINUTE,
                open=Decimal(f"{open_:.2f}"),
                high=Decimal(f"{high:.2f}"),
                low=Decimal(f"{low:.2f}"),
                close=Decimal(f"{close:.2f}"),
                volume=Decimal(f"{rnd.uniform(0, 100):.6f}"),
                quote_volume=Decimal(f"{rnd.uniform(0, 1e6):.4f}"),
                trades_count=rnd.randint(1, 5_000),
            )
        )
    return bars


def is_hole(i: int, hole_every: int) -> bool:
    """Whether minute ``i`` of a generated series is missing (``HOLE_BARS`` bars every ``hole_every``)."""
    offset = i % hole_every
    return hole_every // 2 <= offset < hole_every // 2 + HOLE_BARS


def expected_gaps(first: int, last: int, hole_every: int) -> list[tuple[datetime, datetime]]:
    """The gaps ``fill_series(…, first, last, hole_every)`` leaves between stored bars."""
    gaps = []
    start = first - first % hole_every + hole_every // 2
    while start + HOLE_BARS < last:  # a stored bar after the hole
        if start > first:  # and one before it
            gaps.append((T0 + start * MINUTE, T0 + (start + HOLE_BARS - 1) * MINUTE))
        start += hole_every
    return gaps


_SQLITE_SERIES = """
WITH RECURSIVE seq(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < :last)
INSERT INTO ohlcv (time, trades_count, series_id, open, high, low, close, volume, quote_volume)
SELECT :t0 + i * 60, i % 5000, :sid,
       printf('%.2f', p), printf('%.2f', p + 5), printf('%.2f', p - 5), printf('%.2f', p + 1),
       printf('%.4f', v), printf('%.4f', v * p)
FROM (SELECT i, 40000 + (i * 7919 % 4001) / 4.0 AS p, (i * 31 % 1000) / 8.0 AS v FROM seq
      WHERE i % :every NOT BETWEEN :every / 2 AND :every / 2 + :hole - 1)
"""

_PG_SERIES = """
INSERT INTO ohlcv (time, trades_count, series_id, open, high, low, close, volume, quote_volume)
SELECT to_timestamp($2 + i * 60), i % 5000, $1, p, p + 5, p - 5, p + 1, v, round(v * p, 4)
FROM (SELECT i, round(40000 + (i * 7919 % 4001) / 4.0, 2) AS p, round((i * 31 % 1000) / 8.0, 4) AS v
      FROM generate_series($3::bigint, $4::bigint - 1) AS i
      WHERE i % $5 NOT BETWEEN $5 / 2 AND $5 / 2 + $6 - 1) AS s
"""


async def series_id(conn: AsyncConnection, symbol: str = SYMBOL) -> int:
    """The id of binance ``symbol`` 1m in the series ledger, made if needed."""
    values = {
        "exchange": "binance",
        "symbol": symbol,
        "timeframe": "1m",
        "bar_count": 0,
        "updated_at": datetime.now(UTC),
    }
    backend = tradestore.dialects.backend(conn.dialect)
    await conn.execute(backend.insert(SERIES).values(values).on_conflict_do_nothing())
    found = await conn.scalar(
        select(SERIES.c.id).where(SERIES.c.exchange == "binance", SERIES.c.symbol == symbol, SERIES.c.timeframe == "1m")
    )
    return int(found)


async def settle_ledger(conn: AsyncConnection, series: int) -> None:
    """Make the ledger row of a series generated in SQL agree with its bars (setup, as a write would)."""
    bars = OHLCVModel.__table__.c
    first, last, count = (
        await conn.execute(
            select(func.min(bars.time), func.max(bars.time), func.count()).where(bars.series_id == series)
        )
    ).one()
    if isinstance(first, int):  # SQLite: the stored epoch seconds, not run through the column type
        first, last = datetime.fromtimestamp(first, UTC), datetime.fromtimestamp(last, UTC)
    await conn.execute(
        update(SERIES)
        .where(SERIES.c.id == series)
        .values(first_bar=first, last_bar=last, bar_count=count, updated_at=datetime.now(UTC))
    )


async def fill_series(conn: AsyncConnection, first: int, last: int, hole_every: int, *, symbol: str = SYMBOL) -> None:
    """Store minutes ``first`` … ``last - 1`` of the generated series, leaving its holes out; the ledger follows."""
    sid = await series_id(conn, symbol)
    if conn.dialect.name == "sqlite":
        params = {"first": first, "last": last, "sid": sid, "t0": EPOCH_T0, "every": hole_every, "hole": HOLE_BARS}
        await conn.exec_driver_sql(_SQLITE_SERIES, params)
    else:
        await conn.exec_driver_sql(_PG_SERIES, (sid, EPOCH_T0, first, last, hole_every, HOLE_BARS))
    await settle_ledger(conn, sid)


_SQLITE_TRADES = """
WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < :count)
INSERT INTO trades (trade_id, symbol, exchange, side, action, entry_price, quantity, entry_time,
                    leverage, exit_price, exit_time, realized_pnl, fee, mode, created_at, updated_at)
SELECT 'B' || i, 'BTCUSDT', 'binance', 'long', 'close', '42000.5', '0.01', t, '1', '42100.25', t,
       printf('%.2f', (i * 7919 % 20001 - 10000) / 100.0), printf('%.2f', (i % 50) / 100.0),
       'live', t, t
FROM (SELECT i, strftime('%Y-%m-%d %H:%M:%S', :now - (i % :spread) * 60, 'unixepoch') || '.000000+00:00' AS t
      FROM seq)
"""

_PG_TRADES = """
INSERT INTO trades (trade_id, symbol, exchange, side, action, entry_price, quantity, entry_time,
                    leverage, exit_price, exit_time, realized_pnl, fee, mode, created_at, updated_at)
SELECT 'B' || i, 'BTCUSDT', 'binance', 'long', 'close', 42000.5, 0.01, t, 1, 42100.25, t,
       round((i * 7919 % 20001 - 10000) / 100.0, 2), round((i % 50) / 100.0, 2), 'live', t, t
FROM (SELECT i, to_timestamp($1 - (i % $2) * 60) AS t FROM generate_series(0, $3 - 1) AS i) AS s
"""


async def fill_trades(conn: AsyncConnection, count: int) -> None:
    """Store ``count`` closed live trades on binance, all inside the last 30 days.

    PnL runs from -100.00 to 100.00 (some exactly 0), fees from 0.00 to 0.49.
    """
    now = int(datetime.now(UTC).timestamp()) - 60
    if conn.dialect.name == "sqlite":
        await conn.exec_driver_sql(_SQLITE_TRADES, {"count": count, "now": now, "spread": TRADE_SPREAD_MINUTES})
    else:
        await conn.exec_driver_sql(_PG_TRADES, (now, TRADE_SPREAD_MINUTES, count))
