"""``tradestore.admin.history.import_records`` through its Python API, on both backends."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tradestore import DatabaseManager, DecisionRepository, EquityRepository, SystemEventRepository, TradeRepository
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


async def test_equity_snapshots_exact_once_and_kept_not_replaced(db: DatabaseManager) -> None:
    rng = random.Random(12)
    start = datetime(2025, 3, 10, tzinfo=UTC)
    records: list[dict[str, Any]] = []
    for n in range(40):  # times in the three ways files write them; money with up to 8 places
        at = start + timedelta(minutes=5 * n)
        stamp = [at.isoformat(), int(at.timestamp()), int(at.timestamp() * 1000)][n % 3]
        equity = Decimal(rng.randrange(0, 10**14)).scaleb(-8)
        records.append({"bot_id": "b", "timestamp": stamp, "equity": str(equity), "balance": float(n),
                        "sharpe_ratio": None if n == 0 else rng.random(), "win_rate": n % 7})  # fmt: skip
    text = "\n".join(json.dumps(r) for r in records) + "\n"
    twice = text + json.dumps(records[0] | {"equity": "1"}) + "\n"  # a key again in the same file: the first wins
    for written in (40, 0):
        async with db.get_session() as session:
            report = await import_records(session, "equity", read_records(io.StringIO(twice), "q"), "q")
        assert (report.records, report.written, report.already_stored) == (41, written, 41 - written)
        assert report.kept_in_metadata == ["sharpe_ratio", "win_rate"]
    changed = json.dumps(records[5] | {"equity": "0", "mode": "live"}) + "\n"
    async with db.get_session() as session:
        report = await import_records(session, "equity", read_records(io.StringIO(changed), "c"), "c")
        assert (report.written, report.already_stored) == (0, 1)  # kept as stored, not replaced
        curve = await EquityRepository(session).get_curve("b", mode="live")
    assert [s.timestamp for s in curve] == [start + timedelta(minutes=5 * n) for n in range(40)]
    assert [s.equity for s in curve] == [Decimal(r["equity"]) for r in records]
    assert [s.balance for s in curve] == [Decimal(n) for n in range(40)]
    assert curve[3].metadata == {"sharpe_ratio": str(Decimal(repr(records[3]["sharpe_ratio"]))), "win_rate": 3}


async def test_a_bad_snapshot_raises_and_writes_nothing(db: DatabaseManager) -> None:
    text = '{"bot_id": "b", "timestamp": "2025-01-01", "equity": 5}\n' \
           '{"bot_id": "b", "timestamp": "yesterday", "equity": 6}\n'  # fmt: skip
    with pytest.raises(RowError, match=r"s line 2: timestamp: cannot read 'yesterday'"):
        async with db.get_session() as session:
            await import_records(session, "equity", read_records(io.StringIO(text), "s"), "s")
    async with db.get_session() as session:
        assert await EquityRepository(session).get_curve("b") == []
