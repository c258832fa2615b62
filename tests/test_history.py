"""``tradestore.admin.history.import_records`` through its Python API, on both backends."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradestore import DatabaseManager, DecisionRepository, SystemEventRepository, TradeRepository
from tradestore.admin.history import import_records
from tradestore.errors import ValidationError
from tradestore.files.ohlcv import RowError
from tradestore.files.records import read_records

EVENTS = '{"event_type": "start", "severity": "INFO", "message": "up"}\n' \
         '{"event_type": "fill", "severity": "info", "message": "filled", "details": {"px": 1.5}, ' \
         '"created_at": 1704067200000}\n'  # fmt: skip


async def test_events_without_a_time_are_still_imported_once(db: DatabaseManager) -> None:
    for written in (2, 0):
        async with db.get_session() as session:
            report = await import_records(session, "events", read_records(io.StringIO(EVENTS), "e.jsonl"), "e.jsonl")
        assert (report.records, report.written, report.already_stored) == (2, written, 2 - written)
    async with db.get_session() as session:
        events = await SystemEventRepository(session).get_recent_events()
    fill = next(e for e in events if e.event_type == "fill")
    assert fill.created_at == datetime(2024, 1, 1, tzinfo=UTC) and fill.details == {"px": "1.5"}
    assert {e.severity for e in events} == {"info"}


async def test_the_default_exchange_and_the_trade_defaults(db: DatabaseManager) -> None:
    text = json.dumps([
        {"trade_id": 7, "symbol": "BTCUSDT", "side": "BUY", "entry_price": "50000.10", "quantity": 0.5,
         "entry_time": "2024-01-01T00:00:00", "exit_time": "2024-01-02T00:00:00Z", "realized_pnl": "-1.5"},
    ])  # fmt: skip
    async with db.get_session() as session:
        report = await import_records(session, "trades", read_records(io.StringIO(text), "t"), "t", exchange="kraken")
        (trade,) = await TradeRepository(session).get_recent()
    assert report.written == 1 and report.kept_in_metadata == []
    assert (trade.trade_id, trade.exchange, trade.side, trade.action) == ("7", "kraken", "long", "close")
    assert (trade.entry_price, trade.quantity, trade.realized_pnl) == (
        Decimal("50000.10"),
        Decimal("0.5"),
        Decimal("-1.5"),
    )
    assert trade.entry_time == datetime(2024, 1, 1, tzinfo=UTC)


async def test_a_bad_record_raises_and_rejects_collect_instead(db: DatabaseManager) -> None:
    text = '{"bot_id": "b", "symbol": "X", "action": "buy", "timestamp": "2024-01-01", "price": "abc"}\n'
    with pytest.raises(RowError, match=r"d line 1: price: not a number: 'abc'"):
        async with db.get_session() as session:
            await import_records(session, "decisions", read_records(io.StringIO(text), "d"), "d")
    rejects = io.StringIO()
    async with db.get_session() as session:
        report = await import_records(session, "decisions", read_records(io.StringIO(text), "d"), "d", rejects=rejects)
        assert await DecisionRepository(session).find() == []
    assert report.rejected == 1 and json.loads(rejects.getvalue())["field"] == "price"
    with pytest.raises(ValidationError, match="kind"):
        async with db.get_session() as session:
            await import_records(session, "orders", iter([]), "o")
