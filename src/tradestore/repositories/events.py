"""``SystemEventRepository``: what happened to the bot, newest first."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tradestore.domain import SEVERITIES, SystemEvent
from tradestore.models import SystemEventModel
from tradestore.values import to_count, to_text

_FIELDS = tuple(f.name for f in dataclasses.fields(SystemEvent))


class SystemEventRepository:
    """System events of one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def __repr__(self) -> str:
        return f"<SystemEventRepository {self.session!r}>"

    async def log_event(
        self,
        event_type: str,
        severity: str,
        message: str,
        details: dict[str, Any] | None = None,
        symbol: str | None = None,
        trade_id: str | None = None,
    ) -> int:
        """Record an event and return its id.

        ``details`` is a JSON object; Decimal and datetime values inside it are stored as strings.

        Raises:
            ValidationError: an unknown severity, empty type, or details JSON cannot carry.
        """
        event = SystemEvent(event_type, severity, message, details=details, symbol=symbol, trade_id=trade_id)
        row = SystemEventModel(
            **{name: getattr(event, name) for name in _FIELDS if name not in ("id", "created_at")},
            created_at=datetime.now(UTC),
        )
        async with self.session.begin_nested():
            self.session.add(row)
        return row.id

    async def get_recent_events(self, severity: str | None = None, limit: int = 100) -> list[SystemEvent]:
        """The ``limit`` newest events, of one ``severity`` if given, newest first."""
        e = SystemEventModel
        statement = select(e).order_by(e.created_at.desc(), e.id.desc()).limit(to_count("limit", limit))
        if severity is not None:
            statement = statement.where(e.severity == to_text("severity", severity, choices=SEVERITIES))
        rows = (await self.session.scalars(statement)).all()
        return [SystemEvent(**{name: getattr(row, name) for name in _FIELDS}) for row in rows]
