"""Bot instances."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tradestore.models.base import Base, Key


class BotModel(Base):
    """One bot instance; ``bot_id`` is the caller's id, unique.

    Other tables name a bot by value (their ``bot_id`` column, indexed), without a foreign key:
    a bot's trades or equity may be imported before the bot is registered.
    """

    __tablename__ = "bots"
    __table_args__ = (UniqueConstraint("bot_id"), Index(None, "status", "last_heartbeat"))

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    bot_id: Mapped[str]
    mode: Mapped[str]
    status: Mapped[str]
    strategy: Mapped[str | None]
    version: Mapped[str | None]
    config: Mapped[dict[str, Any] | None]
    balance: Mapped[Decimal | None]
    started_at: Mapped[datetime | None]
    last_heartbeat: Mapped[datetime | None]
    # ``metadata`` is taken by the declarative base; the column keeps the seed's name.
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
