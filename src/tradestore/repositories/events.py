"""``SystemEventRepository``: what happened to the bot, newest first."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select

from tradestore.domain import SEVERITIES, SystemEvent
from tradestore.models import SystemEventModel
from tradestore.repositories.base import Repository
from tradestore.values import to_count, to_text

_FIELDS = tuple(f.name for f in dataclasses.fields(SystemEvent))
_WRITTEN = tuple(name for name in _FIELDS if name not in ("id", "created_at"))
TABLE = cast(Table, SystemEventModel.__table__)
_e = TABLE.c


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
        values = {name: getattr(event, name) for name in _WRITTEN}
        values["created_at"] = datetime.now(UTC)
        found = await self._scalar(insert(TABLE).values(values).returning(_e.id))
        return int(found)

    async def get_recent_events(self, severity: str | None = None, limit: int = 100) -> list[SystemEvent]:
        """The ``limit`` newest events, of one ``severity`` if given, newest first."""
        statement = (
            select(*(_e[name] for name in _FIELDS))
            .order_by(_e.created_at.desc(), _e.id.desc())
            .limit(to_count("limit", limit))
        )
        if severity is not None:
            statement = statement.where(_e.severity == to_text("severity", severity, choices=SEVERITIES))
        return [SystemEvent(**row._mapping) for row in await self._execute(statement)]
