"""The candle table."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tradestore.models.base import Base, Key


class OHLCVModel(Base):
    """One candle; unique per exchange, symbol, timeframe and bar start."""

    __tablename__ = "ohlcv"
    __table_args__ = (UniqueConstraint("exchange", "symbol", "timeframe", "timestamp"),)

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    exchange: Mapped[str]
    symbol: Mapped[str]
    timeframe: Mapped[str]
    timestamp: Mapped[datetime]
    open: Mapped[Decimal]
    high: Mapped[Decimal]
    low: Mapped[Decimal]
    close: Mapped[Decimal]
    volume: Mapped[Decimal]
    quote_volume: Mapped[Decimal | None]
    trades_count: Mapped[int | None]
    created_at: Mapped[datetime]
