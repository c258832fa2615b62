"""The candle tables: the series ledger, the bars, and the ranges fetched from exchanges.

A bar row holds only what differs from bar to bar: its series (a small integer naming the
exchange, symbol and timeframe once, in ``ohlcv_series``), its start and its numbers. The
primary key (series, start) is the only index, and on SQLite the table itself
(``WITHOUT ROWID``): no surrogate id, no second copy of the key.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Integer, PrimaryKeyConstraint, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tradestore.models.base import Base
from tradestore.types import BarTime


class SeriesModel(Base):
    """One candle series and its ledger, kept up to date in the transaction of every write.

    ``first_bar``/``last_bar``/``bar_count`` describe the stored bars (``NULL``/0 when none
    are stored: a series known only from fetched ranges); ``updated_at`` is the last write.
    """

    __tablename__ = "ohlcv_series"
    __table_args__ = (UniqueConstraint("exchange", "symbol", "timeframe"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exchange: Mapped[str]
    symbol: Mapped[str]
    timeframe: Mapped[str]
    first_bar: Mapped[datetime | None] = mapped_column(BarTime)
    last_bar: Mapped[datetime | None] = mapped_column(BarTime)
    bar_count: Mapped[int]
    updated_at: Mapped[datetime]


class OHLCVModel(Base):
    """One candle: unique per series and bar start (the primary key)."""

    __tablename__ = "ohlcv"
    # SQLite: the table is the primary key's B-tree (no rowid, no second index).
    __table_args__ = (PrimaryKeyConstraint("series_id", "time"), {"sqlite_with_rowid": False})

    # Column order is PostgreSQL's tuple layout: the 8-byte columns first, no alignment padding.
    time: Mapped[datetime] = mapped_column(BarTime)
    trades_count: Mapped[int | None]
    series_id: Mapped[int] = mapped_column(Integer)
    open: Mapped[Decimal]
    high: Mapped[Decimal]
    low: Mapped[Decimal]
    close: Mapped[Decimal]
    volume: Mapped[Decimal]
    quote_volume: Mapped[Decimal | None]


class FetchedRangeModel(Base):
    """Bars from ``first_bar`` to ``last_bar`` (inclusive) were asked of the exchange: stored or known empty."""

    __tablename__ = "ohlcv_fetched"
    __table_args__ = (PrimaryKeyConstraint("series_id", "first_bar"), {"sqlite_with_rowid": False})

    series_id: Mapped[int] = mapped_column(Integer)
    first_bar: Mapped[datetime] = mapped_column(BarTime)
    last_bar: Mapped[datetime] = mapped_column(BarTime)
