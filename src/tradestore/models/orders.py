"""Orders, their append-only history of states, and their fills."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tradestore.models.base import Base, Key


class OrderModel(Base):
    """One order; ``client_order_id`` is the bot's id, unique per exchange.

    ``filled_quantity``, ``filled_value`` (Σ price * quantity, exact), ``average_fill_price`` and
    ``fee_total`` are kept by ``OrderRepository.record_fill`` in the fill's transaction.
    """

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("exchange", "client_order_id"),
        Index(None, "status", "exchange"),
        Index(None, "trade_id"),
        Index(None, "bot_id", "status"),
    )

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    client_order_id: Mapped[str]
    exchange: Mapped[str]
    symbol: Mapped[str]
    side: Mapped[str]
    order_type: Mapped[str]
    quantity: Mapped[Decimal]
    price: Mapped[Decimal | None]
    stop_price: Mapped[Decimal | None]
    status: Mapped[str]
    exchange_order_id: Mapped[str | None]
    trade_id: Mapped[int | None] = mapped_column(Key, ForeignKey("trades.id"))
    bot_id: Mapped[str | None]
    mode: Mapped[str]
    time_in_force: Mapped[str | None]
    reduce_only: Mapped[bool]
    reason: Mapped[str | None]
    # ``metadata`` is taken by the declarative base; the column keeps the name bots use.
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    filled_quantity: Mapped[Decimal]
    filled_value: Mapped[Decimal]
    average_fill_price: Mapped[Decimal | None]
    fee_total: Mapped[Decimal]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class OrderHistoryModel(Base):
    """Append-only: one row per state an order entered, with when and why. Never updated."""

    __tablename__ = "order_history"
    __table_args__ = (Index(None, "order_id", "id"),)

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    order_id: Mapped[int] = mapped_column(Key, ForeignKey("orders.id"))
    status: Mapped[str]
    reason: Mapped[str | None]
    at: Mapped[datetime]


class FillModel(Base):
    """One execution; unique per (exchange, client_order_id, exchange_trade_id)."""

    __tablename__ = "fills"
    __table_args__ = (
        UniqueConstraint("exchange", "client_order_id", "exchange_trade_id"),
        Index(None, "order_id", "timestamp"),
    )

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    order_id: Mapped[int] = mapped_column(Key, ForeignKey("orders.id"))
    exchange: Mapped[str]
    client_order_id: Mapped[str]
    exchange_trade_id: Mapped[str]
    symbol: Mapped[str]
    side: Mapped[str]
    price: Mapped[Decimal]
    quantity: Mapped[Decimal]
    fee: Mapped[Decimal]
    fee_currency: Mapped[str | None]
    liquidity: Mapped[str | None]
    timestamp: Mapped[datetime]
    created_at: Mapped[datetime]
