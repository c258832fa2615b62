"""``SystemEventRepository``: what happened to the bot, newest first."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select

from tradestore.dialects import backend
from tradestore.domain import SEVERITIES, SystemEvent
from tradestore.models import SystemEventModel
from tradestore.repositories.base import Repository, all_of
from tradestore.values import to_count, to_text

TABLE = cast(Table, SystemEventModel.__table__)
_FIELDS = tuple(f.name for f in dataclasses.fields(SystemEvent))
_WRITTEN = tuple(name for name in _FIELDS if name not in ("id", "created_at"))
_INSERT = insert(TABLE).returning(TABLE.c.id)


def _row_values(event: SystemEvent, now: datetime) -> dict[str, Any]:
    return {name: getattr(event, name) for name in _WRITTEN} | {"created_at": now}


class SystemEventRepository(Repository):
    """System events of one session."""

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
        return int(await self._scalar(_INSERT, _row_values(event, datetime.now(UTC))))

    async def log_events(self, events: Iterable[SystemEvent]) -> int:
        """Record many events in one round trip per chunk; all of them or, on any error, none.

        Each event is a :class:`SystemEvent` (validated when built); its ``id`` and
        ``created_at`` are ignored: every event of the call gets the same ``created_at``, now.

        Returns:
            The number of events recorded (0 for empty input).

        Raises:
            ValidationError: an item is not a ``SystemEvent``.
        """
        items = all_of(SystemEvent, events, "events")
        if not items:
            return 0
        now = datetime.now(UTC)
        conn = await self.session.connection()
        await backend(conn.dialect).write_rows(conn, TABLE, [_row_values(e, now) for e in items])
        return len(items)

    async def get_recent_events(self, severity: str | None = None, limit: int = 100) -> list[SystemEvent]:
        """The ``limit`` newest events, of one ``severity`` if given, newest first."""
        e = SystemEventModel
        statement = select(e).order_by(e.created_at.desc(), e.id.desc()).limit(to_count("limit", limit))
        if severity is not None:
            statement = statement.where(e.severity == to_text("severity", severity, choices=SEVERITIES))
        rows = (await self.session.scalars(statement)).all()
        return [SystemEvent(**{name: getattr(row, name) for name in _FIELDS}) for row in rows]
