"""Trades and positions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Index, UniqueConstraint, func, literal_column
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import ColumnElement

from tradestore.models.base import Base, Key


class TradeModel(Base):
    """One trade; ``trade_id`` is the caller's id, unique per exchange."""

    __tablename__ = "trades"
    __table_args__ = (
        UniqueConstraint("exchange", "trade_id"),
        Index(None, "exchange", "symbol", "entry_time"),
        Index(None, "exit_time"),
        Index(None, "entry_time"),
        # What bots ask: the open trades of a bot; a bot's trades in one mode over time;
        # the trades of a symbol in one state.
        Index(None, "bot_id", "status"),
        Index(None, "bot_id", "mode", "entry_time"),
        Index(None, "symbol", "status"),
    )

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    trade_id: Mapped[str]
    symbol: Mapped[str]
    exchange: Mapped[str]
    side: Mapped[str]
    action: Mapped[str]
    entry_price: Mapped[Decimal]
    quantity: Mapped[Decimal]
    entry_time: Mapped[datetime]
    leverage: Mapped[Decimal]
    exit_price: Mapped[Decimal | None]
    exit_time: Mapped[datetime | None]
    realized_pnl: Mapped[Decimal | None]
    realized_pnl_pct: Mapped[Decimal | None]
    fee: Mapped[Decimal]
    signal_score: Mapped[Decimal | None]
    strategy: Mapped[str | None]
    bot_id: Mapped[str | None]
    mode: Mapped[str]
    # ``metadata`` is taken by the declarative base; the column keeps the seed's name.
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    status: Mapped[str] = mapped_column(server_default="open")
    stop_loss: Mapped[Decimal | None]
    take_profit: Mapped[Decimal | None]
    exit_reason: Mapped[str | None]
    timeframe: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


#: ``bot_id`` NULL counts as one bot, so the open-position key treats it as ''.
BOT_KEY: ColumnElement[str] = func.coalesce(literal_column("bot_id"), literal_column("''"))
OPEN: ColumnElement[str] = literal_column("'open'")


class PositionModel(Base):
    """A position; at most one open per exchange, symbol, bot and mode (a partial unique index)."""

    __tablename__ = "positions"

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    symbol: Mapped[str]
    exchange: Mapped[str]
    side: Mapped[str]
    entry_price: Mapped[Decimal]
    quantity: Mapped[Decimal]
    margin: Mapped[Decimal]
    entry_time: Mapped[datetime]
    current_price: Mapped[Decimal | None]
    unrealized_pnl: Mapped[Decimal | None]
    status: Mapped[str]
    leverage: Mapped[Decimal]
    liquidation_price: Mapped[Decimal | None]
    bot_id: Mapped[str | None]
    mode: Mapped[str]
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index(
            "uq_positions_open",
            "exchange",
            "symbol",
            BOT_KEY,
            "mode",
            unique=True,
            postgresql_where=literal_column("status") == OPEN,
            sqlite_where=literal_column("status") == OPEN,
        ),
        Index(None, "status", "exchange"),
    )
