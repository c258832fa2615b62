"""DecisionRepository on SQLite and PostgreSQL: the journal, attribution and strategy performance."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from factories import trade
from tradestore import DatabaseManager, Decision, DecisionRepository, TradeRepository
from tradestore.errors import DuplicateError, NotFoundError, ValidationError

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def decision(minute: int = 0, **fields: Any) -> Decision:
    """A BUY of BTCUSD by bot ``sentinel`` ``minute`` minutes after T0."""
    values: dict[str, Any] = {"bot_id": "sentinel", "symbol": "BTCUSD", "action": "buy", "timestamp": T0}
    values.update(fields)
    values["timestamp"] = values["timestamp"] + timedelta(minutes=minute)
    return Decision(**values)


async def test_record_and_read_back_exactly(db: DatabaseManager) -> None:
    signals = {"sentiment": {"signal": "BUY", "confidence": 0.9}, "technical": {"signal": "BUY", "confidence": "0.8"}}
    wanted = decision(
        price="50000.00",
        confidence=Decimal("0.85"),
        strategy="ensemble",
        strategy_version="9f2c1e",
        bot_version="1.0.0",
        aggregation="weighted_average",
        signals=signals,
        indicators={"rsi": Decimal("61.25"), "at": T0},
        rationale="x" * 20_000,
        model="x-ai/grok-4",
        metadata={"source": "signals.json"},
    )
    async with db.get_session() as session:
        repo = DecisionRepository(session)
        decision_id = await repo.record(wanted)
        got = await repo.get(decision_id)
        assert await repo.get(decision_id + 1000) is None
    assert got is not None and got.id == decision_id and got.created_at is not None
    assert got.exchange == "binance"  # the manager's default exchange
    assert got.price == Decimal("50000.00") and str(got.price) == "50000.00" and got.confidence == Decimal("0.85")
    assert got.signals == signals and got.indicators == {"rsi": "61.25", "at": "2024-03-01T00:00:00+00:00"}
    assert got.rationale == "x" * 20_000 and got.timestamp == T0 and got.timestamp.tzinfo is UTC
    assert (got.strategy, got.strategy_version, got.bot_version, got.aggregation, got.model) == (
        "ensemble", "9f2c1e", "1.0.0", "weighted_average", "x-ai/grok-4",
    )  # fmt: skip


async def test_the_default_exchange_is_the_managers(db_on_kraken: DatabaseManager) -> None:
    db = db_on_kraken
    async with db.get_session() as session:
        repo = DecisionRepository(session)
        got = await repo.get(await repo.record(decision()))
    assert got is not None and got.exchange == "kraken"


async def test_hold_decisions_and_actions_in_any_case(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = DecisionRepository(session)
        await repo.record(decision(0, action="HOLD", rationale="waiting for confirmation", price="3200"))
        await repo.record(decision(1, action="Sell"))
        found = await repo.find(action="HOLD")
    assert [(d.action, d.rationale) for d in found] == [("hold", "waiting for confirmation")]


async def test_recording_the_same_decision_twice_is_a_duplicate(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        await DecisionRepository(session).record(decision(signals={"a": 1, "b": 2}))
    with pytest.raises(DuplicateError, match="already recorded"):
        async with db.get_session() as session:
            # same content, keys in another order: the same decision
            await DecisionRepository(session).record(decision(signals={"b": 2, "a": 1}))
    async with db.get_session() as session:
        repo = DecisionRepository(session)
        await repo.record(decision(signals={"a": 1, "b": 3}))  # other content: another decision
        assert len(await repo.find()) == 2


async def test_record_many_is_all_or_nothing(db: DatabaseManager) -> None:
    batch = [decision(m, strategy="s1" if m % 2 else "s2", price=f"{50000 + m}.5") for m in range(300)]
    async with db.get_session() as session:
        assert await DecisionRepository(session).record_many(batch) == 300
        assert await DecisionRepository(session).record_many([]) == 0
    async with db.get_session() as session:
        stored = await DecisionRepository(session).find(limit=1000)
    assert len(stored) == 300 and stored[0].price == Decimal("50299.5") and stored[0].exchange == "binance"
    with pytest.raises(DuplicateError, match=r"decisions\[2\]: the same decision as decisions\[0\]"):
        async with db.get_session() as session:
            await DecisionRepository(session).record_many([decision(1000), decision(1001), decision(1000)])
    with pytest.raises(DuplicateError):
        async with db.get_session() as session:
            await DecisionRepository(session).record_many([decision(2000), decision(5, strategy="s1", price="50005.5")])
    with pytest.raises(NotFoundError, match=r"decisions\[1\]\.trade_id: no trade with id 999999$"):
        async with db.get_session() as session:
            await DecisionRepository(session).record_many([decision(3000), decision(3001, trade_id=999_999)])
    with pytest.raises(ValidationError, match="decision"):
        async with db.get_session() as session:
            await DecisionRepository(session).record_many([decision(4000), "not a decision"])  # type: ignore[list-item]
    async with db.get_session() as session:
        assert len(await DecisionRepository(session).find(limit=1000)) == 300


async def test_link_trade_and_attribution(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        trade_id = await TradeRepository(session).insert(trade(1))
        repo = DecisionRepository(session)
        first = await repo.record(decision(0, action="hold"))
        second = await repo.record(decision(5, trade_id=trade_id))
        await repo.link_trade(first, trade_id)
        await repo.record(decision(9))
        chain = await repo.get_decisions_of_trade(trade_id)
        with pytest.raises(NotFoundError, match="decision_id"):
            await repo.link_trade(10_000, trade_id)
        with pytest.raises(NotFoundError, match="trade_id"):
            await repo.link_trade(first, 10_000)
    assert [d.id for d in chain] == [first, second]  # oldest first
    with pytest.raises(NotFoundError, match="trade_id: no trade with id 10000 for decision of sentinel on BTCUSD"):
        async with db.get_session() as session:
            await DecisionRepository(session).record(decision(20, trade_id=10_000))


async def test_find_filters_newest_first(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = DecisionRepository(session)
        await repo.record_many(
            [
                decision(0, strategy="rsi"),
                decision(1, strategy="macd", action="sell"),
                decision(2, strategy="rsi", mode="paper"),
                decision(3, strategy="rsi", bot_id="other"),
                decision(4, strategy="rsi", symbol="ETHUSD", action="hold"),
            ]
        )
        everything = await repo.find()
        assert [d.timestamp.minute for d in everything] == [4, 3, 2, 1, 0]
        assert [d.timestamp.minute for d in await repo.find(bot_id="sentinel", mode="live")] == [4, 1, 0]
        assert [d.timestamp.minute for d in await repo.find(symbol="ETHUSD")] == [4]
        assert [d.timestamp.minute for d in await repo.find(action="sell")] == [1]
        assert [d.timestamp.minute for d in await repo.find(strategy="rsi", limit=2)] == [4, 3]
        window = await repo.find(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
        assert [d.timestamp.minute for d in window] == [3, 2, 1]
        with pytest.raises(ValidationError, match="mode"):
            await repo.find(mode="production")
        with pytest.raises(ValidationError, match="limit"):
            await repo.find(limit=-1)


def test_decision_validation_names_the_field() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"action": "maybe"}, "action"),
        ({"confidence": "1.5"}, "confidence"),
        ({"confidence": -0.1}, "confidence"),
        ({"signals": ["buy"]}, "signals"),
        ({"indicators": {"rsi": float("nan")}}, "indicators"),
        ({"mode": "prod"}, "mode"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"trade_id": "T1"}, "trade_id"),
        ({"rationale": "a\x00b"}, "rationale"),
    ]
    for fields, named in cases:
        values: dict[str, Any] = {"bot_id": "b", "symbol": "BTCUSD", "action": "buy", "timestamp": T0, **fields}
        with pytest.raises(ValidationError, match=named):
            Decision(**values)


def _reference(decisions: list[Decision], trades: dict[int, tuple[Decimal | None, Decimal, bool]]) -> dict[Any, Any]:
    """strategy_performance computed by hand, in plain Python."""
    out: dict[Any, Any] = {}
    for d in decisions:
        entry = out.setdefault(d.strategy, {"decisions": 0, "by_action": {}, "with_trade": 0, "trades": set()})
        entry["decisions"] += 1
        entry["by_action"][d.action] = entry["by_action"].get(d.action, 0) + 1
        if d.trade_id is not None:
            entry["with_trade"] += 1
            entry["trades"].add(d.trade_id)
    for entry in out.values():
        nets = [pnl - fee for pnl, fee, closed in (trades[t] for t in entry["trades"]) if closed and pnl is not None]
        entry["closed"] = len(nets)
        entry["wins"] = sum(1 for n in nets if n > 0)
        entry["losses"] = sum(1 for n in nets if n < 0)
        entry["net"] = sum(nets, Decimal(0))
    return out


async def test_strategy_performance_matches_a_hand_computation(db: DatabaseManager) -> None:
    rng = random.Random(12)
    trades: dict[int, tuple[Decimal | None, Decimal, bool]] = {}
    async with db.get_session() as session:
        trade_repo = TradeRepository(session)
        for n in range(40):
            closed = rng.random() < 0.8
            pnl = Decimal(rng.randint(-(10**12), 10**12)) / Decimal(10**8) if closed else None
            fee = Decimal(rng.randint(0, 10**9)) / Decimal(10**8)
            pnl_text = None if pnl is None else str(pnl)
            trade_id = await trade_repo.insert(trade(n, pnl=pnl_text, fee=str(fee)))
            trades[trade_id] = (pnl, fee, closed)
        ids = list(trades)
        decisions = [
            decision(
                m,
                strategy=rng.choice(["rsi", "macd", "sentiment", None]),
                action=rng.choice(["buy", "sell", "hold", "close"]),
                trade_id=rng.choice([*ids, None, None]),
                mode=rng.choice(["live", "paper"]),
            )
            for m in range(300)
        ]
        await DecisionRepository(session).record_many(decisions)
        performance = await DecisionRepository(session).strategy_performance()
        live = await DecisionRepository(session).strategy_performance(mode="live", since=T0 + timedelta(minutes=50))
    expected = _reference(decisions, trades)
    assert {p.strategy for p in performance} == set(expected)
    for p in performance:
        e = expected[p.strategy]
        assert (p.decisions, p.with_trade, p.closed_trades, p.wins, p.losses) == (
            e["decisions"], e["with_trade"], e["closed"], e["wins"], e["losses"],
        )  # fmt: skip
        assert p.by_action == {a: e["by_action"].get(a, 0) for a in ("buy", "sell", "hold", "close")}
        assert p.net_pnl == e["net"]  # exact
        wanted_rate = (Decimal(e["wins"] * 100) / Decimal(e["closed"])).quantize(Decimal("1e-8")) if e["closed"] else 0
        assert p.win_rate == wanted_rate
    assert [p.net_pnl for p in performance] == sorted((p.net_pnl for p in performance), reverse=True)
    subset = [d for d in decisions if d.mode == "live" and d.timestamp >= T0 + timedelta(minutes=50)]
    assert {p.strategy: p.net_pnl for p in live} == {k: v["net"] for k, v in _reference(subset, trades).items()}


async def test_strategy_performance_of_nothing(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        assert await DecisionRepository(session).strategy_performance(bot_id="nobody") == []


async def test_record_checks_a_decision_changed_after_construction(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = DecisionRepository(session)
        for name, value in (("confidence", Decimal(2)), ("mode", "real"), ("timestamp", "2024-03-01")):
            changed = decision()
            setattr(changed, name, value)
            with pytest.raises(ValidationError, match=name):
                await repo.record(changed)
        assert await repo.find() == []
