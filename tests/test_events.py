"""SystemEventRepository on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradestore import DatabaseManager, SystemEventRepository
from tradestore.errors import ValidationError


async def test_log_and_read_events_newest_first(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = SystemEventRepository(session)
        first = await repo.log_event("start", "info", "bot started")
        await repo.log_event(
            "order_failed", "error", "rejected", details={"code": 429}, symbol="BTCUSDT", trade_id="T1"
        )
        await repo.log_event("tick", "debug", "tick")
        events = await repo.get_recent_events()
        errors = await repo.get_recent_events(severity="error")
        two = await repo.get_recent_events(limit=2)
    assert isinstance(first, int)
    assert [e.event_type for e in events] == ["tick", "order_failed", "start"]
    assert [(e.message, e.details, e.symbol, e.trade_id) for e in errors] == [
        ("rejected", {"code": 429}, "BTCUSDT", "T1")
    ]
    assert len(two) == 2 and all(e.created_at is not None and e.created_at.tzinfo is UTC for e in events)


async def test_decimal_and_datetime_details_are_stored_as_strings(db: DatabaseManager) -> None:
    when = datetime(2024, 1, 1, 12, tzinfo=UTC)
    async with db.get_session() as session:
        repo = SystemEventRepository(session)
        await repo.log_event(
            "fill", "info", "filled", details={"price": Decimal("50000.10"), "at": when, "n": [1, 2.5]}
        )
        (event,) = await repo.get_recent_events()
    assert event.details == {"price": "50000.10", "at": "2024-01-01T12:00:00+00:00", "n": [1, 2.5]}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("x", "loud", "m"), "severity"),
        (("", "info", "m"), "event_type"),
        (("x", "info", "m", {"bad": {1, 2}}), "details"),
        (("x", "info", "m", ["not", "an", "object"]), "details"),
        (("x", "info", "m", {"nan": float("nan")}), "details"),
    ],
)
async def test_bad_events_are_rejected(db: DatabaseManager, args: tuple[object, ...], named: str) -> None:
    async with db.get_session() as session:
        repo = SystemEventRepository(session)
        with pytest.raises(ValidationError, match=named):
            await repo.log_event(*args)  # type: ignore[arg-type]
        assert await repo.get_recent_events() == []
