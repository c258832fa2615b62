"""SystemEventRepository on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tradestore import DatabaseManager, SystemEvent, SystemEventRepository
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


async def test_details_round_trip_the_same_on_both_backends(db: DatabaseManager) -> None:
    details = {
        "path": "C:\\u0000dir",  # the six characters \u0000, not a NUL
        "big": 1e16,
        "neg0": -0.0,
        "half": 0.5,
        "price": Decimal("1E+5"),
        "nested": {"list": [1, 2.5, "x"]},
    }
    async with db.get_session() as session:
        repo = SystemEventRepository(session)
        await repo.log_event("fill", "info", "", details=details)
        (got,) = await repo.get_recent_events()
    assert got.message == ""
    assert got.details == {
        "path": "C:\\u0000dir",
        "big": 10**16,
        "neg0": 0.0,
        "half": 0.5,
        "price": "1E+5",
        "nested": {"list": [1, 2.5, "x"]},
    }
    assert type(got.details["big"]) is int


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"details": {"a": "nul \x00 inside"}}, "details"),
        ({"details": {"lone": "\udc80"}}, "details"),
        ({"message": "lone \udc80"}, "message"),
        ({"message": "nul \x00"}, "message"),
        ({"symbol": "BTC\udc80"}, "symbol"),
        ({"event_type": ""}, "event_type"),
    ],
)
async def test_what_a_backend_would_refuse_is_a_validation_error_and_nothing_is_written(
    db: DatabaseManager, fields: dict[str, Any], named: str
) -> None:
    values: dict[str, Any] = {"event_type": "x", "severity": "info", "message": "m", **fields}
    async with db.get_session() as session:
        repo = SystemEventRepository(session)
        with pytest.raises(ValidationError, match=named):
            await repo.log_event(**values)
        assert await repo.get_recent_events() == []


async def test_deeply_nested_details_are_refused(db: DatabaseManager) -> None:
    deep: dict[str, Any] = {}
    for _ in range(5_000):
        deep = {"d": deep}
    async with db.get_session() as session:
        repo = SystemEventRepository(session)
        with pytest.raises(ValidationError, match="details"):
            await repo.log_event("x", "info", "m", details=deep)
        with pytest.raises(ValidationError, match="limit"):
            await repo.get_recent_events(limit=2**63)
        assert await repo.get_recent_events() == []


async def test_log_events_writes_a_batch_exactly(db: DatabaseManager) -> None:
    events = [
        SystemEvent("fill", "info", f"filled {n}", details={"price": Decimal(f"50000.{n}"), "n": n}, symbol="BTCUSDT")
        for n in range(2_500)  # more than one chunk on every backend's bulk path
    ]
    async with db.get_session() as session:
        repo = SystemEventRepository(session)
        assert await repo.log_events(iter(events)) == 2_500
        assert await repo.log_events([]) == 0
        stored = await repo.get_recent_events(limit=3_000)
    assert len(stored) == 2_500
    by_message = {e.message: e for e in stored}
    for n in (0, 1, 1_234, 2_499):
        got = by_message[f"filled {n}"]
        assert (got.event_type, got.severity, got.symbol) == ("fill", "info", "BTCUSDT")
        assert got.details == {"price": f"50000.{n}", "n": n}
    assert len({e.created_at for e in stored}) == 1 and stored[0].created_at is not None
    assert stored[0].created_at.tzinfo is UTC


async def test_log_events_refuses_a_non_event_and_writes_nothing(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = SystemEventRepository(session)
        with pytest.raises(ValidationError, match=r"events\[1\]: expected a SystemEvent, got 'oops'"):
            await repo.log_events([SystemEvent("a", "info", "x"), "oops"])  # type: ignore[list-item]
        assert await repo.get_recent_events() == []
