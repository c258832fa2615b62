"""Decisions and proposals."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tradestore.models.base import Base, Key

#: Length of a content key: the hex SHA-256 of a row's content (see ``repositories.content``).
CONTENT_KEY_LENGTH = 64


class DecisionModel(Base):
    """One decision of a bot, holds included; ``content_key`` makes recording it twice a duplicate."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index(None, "bot_id", "mode", "timestamp"),
        Index(None, "timestamp"),
        Index(None, "strategy", "timestamp"),
        Index(None, "trade_id"),
    )

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    bot_id: Mapped[str]
    symbol: Mapped[str]
    exchange: Mapped[str]
    action: Mapped[str]
    timestamp: Mapped[datetime]
    mode: Mapped[str]
    price: Mapped[Decimal | None]
    confidence: Mapped[Decimal | None]
    strategy: Mapped[str | None]
    strategy_version: Mapped[str | None]
    bot_version: Mapped[str | None]
    aggregation: Mapped[str | None]
    signals: Mapped[dict[str, Any] | None]
    indicators: Mapped[dict[str, Any] | None]
    rationale: Mapped[str | None]
    model: Mapped[str | None]
    # A pruned trade leaves its decisions in place, unlinked.
    trade_id: Mapped[int | None] = mapped_column(Key, ForeignKey("trades.id", ondelete="SET NULL"))
    # ``metadata`` is taken by the declarative base; the column keeps the field's name.
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    content_key: Mapped[str] = mapped_column(String(CONTENT_KEY_LENGTH), unique=True)
    created_at: Mapped[datetime]


class ProposalModel(Base):
    """A proposed trade awaiting (or past) a person's review; ``status`` follows ``PROPOSAL_MOVES``."""

    __tablename__ = "proposals"
    __table_args__ = (
        Index(None, "status", "expires_at"),
        Index(None, "bot_id", "status"),
    )

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    bot_id: Mapped[str]
    symbol: Mapped[str]
    exchange: Mapped[str]
    side: Mapped[str]
    quantity: Mapped[Decimal]
    mode: Mapped[str]
    price: Mapped[Decimal | None]
    stop_loss: Mapped[Decimal | None]
    take_profit: Mapped[Decimal | None]
    leverage: Mapped[Decimal]
    confidence: Mapped[Decimal | None]
    rationale: Mapped[str | None]
    decision_id: Mapped[int | None] = mapped_column(Key, ForeignKey("decisions.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime | None]
    status: Mapped[str]
    reviewed_at: Mapped[datetime | None]
    reviewer: Mapped[str | None]
    rejection_reason: Mapped[str | None]
    execution_price: Mapped[Decimal | None]
    trade_id: Mapped[int | None] = mapped_column(Key, ForeignKey("trades.id", ondelete="SET NULL"))
    failure_reason: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
