"""System events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tradestore.models.base import Base, Key


class SystemEventModel(Base):
    """Something the bot wants remembered: an error, a restart, an order sent."""

    __tablename__ = "system_events"
    __table_args__ = (
        Index(None, "created_at"),
        Index(None, "severity", "created_at"),
        Index(None, "content_key", unique=True),
    )

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    event_type: Mapped[str]
    severity: Mapped[str]
    message: Mapped[str]
    details: Mapped[dict[str, Any] | None]
    symbol: Mapped[str | None]
    trade_id: Mapped[str | None]
    # Set by ``tradestore import events`` so a file imported twice adds nothing; NULL otherwise.
    content_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
