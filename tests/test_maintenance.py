"""``tradestore.admin.maintenance`` through its Python API, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update

from factories import T0, bars, position, trade
from tradestore import (
    Bot,
    BotRepository,
    DatabaseManager,
    Decision,
    DecisionRepository,
    EquityRepository,
    EquitySnapshot,
    Fill,
    OHLCVRepository,
    Order,
    OrderRepository,
    PositionRepository,
    Proposal,
    ProposalRepository,
    SystemEventRepository,
    TradeRepository,
)
from tradestore.admin.maintenance import RetentionPolicy, optimize, prune, prune_bars, prune_events
from tradestore.errors import ValidationError
from tradestore.models import (
    BotModel,
    DecisionModel,
    EquitySnapshotModel,
    FillModel,
    OHLCVModel,
    OrderHistoryModel,
    OrderModel,
    PerformanceReportModel,
    PositionModel,
    ProposalModel,
    SystemEventModel,
    TradeModel,
)


async def counts(db: DatabaseManager) -> tuple[int, int]:
    async with db.get_session() as session:
        events = await session.scalar(select(func.count()).select_from(SystemEventModel))
        candles = await session.scalar(select(func.count()).select_from(OHLCVModel))
    return int(events or 0), int(candles or 0)


async def test_prune_counts_on_a_dry_run_then_removes(db: DatabaseManager) -> None:
    now = datetime.now(UTC)
    async with db.get_session() as session:
        for age in (40, 40, 5):
            await session.execute(
                insert(SystemEventModel).values(
                    event_type="x", severity="info", message="m", created_at=now - timedelta(days=age)
                )
            )
        await OHLCVRepository(session).upsert_many(bars(10))  # 1m bars from T0
    cutoff = T0 + timedelta(minutes=4)
    async with db.get_session() as session:
        dry = [await prune_events(session, now - timedelta(days=30), dry_run=True),
               await prune_bars(session, "1m", cutoff, dry_run=True)]  # fmt: skip
    assert [(p.table, p.rows, p.removed) for p in dry] == [("system_events", 2, False), ("ohlcv", 4, False)]
    assert await counts(db) == (3, 10)
    async with db.get_session() as session:
        done = await prune_bars(session, "1m", cutoff)
        assert (done.rows, done.removed, done.cutoff) == (4, True, cutoff)
        assert (await prune_bars(session, "1h", cutoff)).rows == 0  # other timeframes are kept
    assert await counts(db) == (3, 6)
    async with db.get_session() as session:
        with pytest.raises(ValidationError, match="timeframe"):
            await prune_bars(session, "7m", cutoff)


async def test_optimize_runs_the_backends_statements(db: DatabaseManager, backend: str) -> None:
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(5))
    ran = await optimize(db.engine)
    assert ran == (["VACUUM", "ANALYZE", "PRAGMA optimize", "PRAGMA wal_checkpoint(TRUNCATE)"] if backend == "sqlite"
                   else ["ANALYZE"])  # fmt: skip
    assert await counts(db) == (0, 5)


# --- one policy per table (issue 11) ---------------------------------------------------

NOW = datetime.now(UTC).replace(microsecond=0)
OLD = datetime.combine((NOW - timedelta(days=100)).date(), datetime.min.time(), UTC)  # a midnight
TABLES = {
    "bots": BotModel,
    "fills": FillModel,
    "order_history": OrderHistoryModel,
    "orders": OrderModel,
    "equity_snapshots": EquitySnapshotModel,
    "performance_reports": PerformanceReportModel,
    "positions": PositionModel,
    "system_events": SystemEventModel,
    "trades": TradeModel,
    "decisions": DecisionModel,
    "proposals": ProposalModel,
}


async def table_counts(db: DatabaseManager) -> dict[str, int]:
    async with db.get_session() as session:
        return {
            name: int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for name, model in TABLES.items()
        }


async def old_and_new(db: DatabaseManager) -> None:
    """Two of everything: one old, one recent; plus rows retention must never touch."""
    async with db.get_session() as session:
        trades = TradeRepository(session)
        await trades.insert(trade(1, pnl="1", exit_time=OLD))  # closed long ago: goes
        await trades.insert(trade(2, pnl="1", exit_time=NOW))  # closed now: stays
        await trades.insert(trade(3, entry_time=OLD - timedelta(days=1)))  # open since long ago: stays
        cancelled = await trades.insert(trade(4, entry_time=OLD))
        await trades.cancel(cancelled, "never filled")  # cancelled long ago: goes
        await session.execute(update(TradeModel).where(TradeModel.id == cancelled).values(updated_at=OLD))
        held = await trades.insert(trade(5, pnl="1", exit_time=OLD))  # closed long ago, its order open: stays
        freed = await trades.insert(trade(6, pnl="1", exit_time=OLD))  # closed long ago, its order final: goes
        positions = PositionRepository(session)
        gone = await positions.update_position(position(symbol="OLD"))
        await positions.close_position(gone)
        await session.execute(update(PositionModel).where(PositionModel.id == gone).values(closed_at=OLD))
        await positions.update_position(position(symbol="OPEN", entry_time=OLD))  # open: stays
        events = SystemEventRepository(session)
        await events.log_event("x", "info", "new")
        old_event = await events.log_event("x", "info", "old")
        await session.execute(update(SystemEventModel).where(SystemEventModel.id == old_event).values(created_at=OLD))
        equity = EquityRepository(session)
        # 100 days ago, every 6 hours for 3 days (12 snapshots, 3 daily closes), and one now
        await equity.record_many(
            [EquitySnapshot("alpha", OLD + timedelta(hours=6 * i), 100 + i) for i in range(12)]
            + [EquitySnapshot("alpha", NOW, 200)]
        )
        report = await equity.performance("alpha")
        await equity.store_report(report)
        await equity.store_report(report.__class__(**{**vars(report), "calculated_at": OLD}))
        orders = OrderRepository(session)
        filled = await orders.create(
            Order("o-filled", "BTC/USDT", "binance", "buy", "limit", "1", price="100", trade_id=freed)
        )
        await orders.transition(filled, "submitted")
        await orders.record_fill(Fill("binance", "BTC/USDT", "o-filled", "x-1", "buy", "100", "1", OLD, fee="0.1"))
        await orders.create(Order("o-open", "BTC/USDT", "binance", "buy", "limit", "1", price="90", trade_id=held))
        await session.execute(update(OrderModel).values(updated_at=OLD))  # both old: only the final one goes
        bots = BotRepository(session)
        for name in ("stopped-old", "running-old", "stopped-new"):
            await bots.register(Bot(name))
        await bots.set_status("stopped-old", "stopped")
        await bots.set_status("stopped-new", "stopped")
        await session.execute(
            update(BotModel).where(BotModel.bot_id.in_(["stopped-old", "running-old"])).values(updated_at=OLD)
        )
        decisions = DecisionRepository(session)
        await decisions.record(Decision("alpha", "BTCUSDT", "hold", OLD))  # goes
        await decisions.record(Decision("alpha", "BTCUSDT", "hold", NOW))  # stays
        awaited = await decisions.record(Decision("alpha", "BTCUSDT", "buy", OLD + timedelta(hours=1)))  # stays
        proposals = ProposalRepository(session)
        await proposals.create(Proposal("alpha", "BTCUSDT", "buy", "1", decision_id=awaited))  # pending: stays
        decided = await proposals.create(Proposal("alpha", "BTCUSDT", "sell", "1"))
        await proposals.reject(decided, reason="too big")  # decided long ago: goes
        await session.execute(update(ProposalModel).values(updated_at=OLD))


async def test_each_policy_removes_only_its_old_rows(db: DatabaseManager) -> None:
    await old_and_new(db)
    start = await table_counts(db)
    ninety = timedelta(days=90)
    policy = RetentionPolicy(
        events=ninety,
        trades=ninety,
        orders=ninety,
        positions=ninety,
        equity=ninety,
        reports=ninety,
        bots=ninety,
        decisions=ninety,
        proposals=ninety,
    )
    async with db.get_session() as session:
        dry = await prune(session, policy, dry_run=True)
    expected = {
        "fills": 1,
        "order_history": 3,  # new, submitted, filled
        "orders": 1,
        "system_events": 1,
        "trades": 3,  # closed, cancelled, and the one whose order goes first
        "positions": 1,
        "equity_snapshots": 12,
        "performance_reports": 1,
        "bots": 1,
        "decisions": 1,
        "proposals": 1,
    }
    assert {p.table: p.rows for p in dry} == expected and not any(p.removed for p in dry)
    assert await table_counts(db) == start  # a dry run removes nothing
    async with db.get_session() as session:
        done = await prune(session, policy)
    assert {p.table: p.rows for p in done} == expected and all(p.removed for p in done)
    after = await table_counts(db)
    assert after == {name: start[name] - expected[name] for name in start}
    async with db.get_session() as session:
        assert sorted(t.trade_id for t in await TradeRepository(session).get_recent()) == ["T2", "T3", "T5"]
        assert [d.timestamp for d in await DecisionRepository(session).find(bot_id="alpha")] == [
            NOW,
            OLD + timedelta(hours=1),
        ]
        assert [p.side for p in await ProposalRepository(session).get_pending()] == ["buy"]
        assert [p.symbol for p in await PositionRepository(session).get_open_positions()] == ["OPEN"]
        assert [b.bot_id for b in await BotRepository(session).list_bots()] == ["running-old", "stopped-new"]


async def test_equity_can_keep_one_snapshot_per_day(db: DatabaseManager) -> None:
    await old_and_new(db)
    policy = RetentionPolicy(equity=timedelta(days=90), equity_keep_daily=True)
    async with db.get_session() as session:
        before = await EquityRepository(session).performance("alpha")
        (dry,) = await prune(session, policy, dry_run=True)
        assert dry.rows == 9
    async with db.get_session() as session:
        (done,) = await prune(session, policy)
        assert done.rows == 9
        curve = await EquityRepository(session).get_curve("alpha")
        # each old day's last snapshot (18:00) and the recent one
        assert [s.timestamp for s in curve] == [OLD + timedelta(hours=18 + 24 * d) for d in range(3)] + [NOW]
        after = await EquityRepository(session).performance("alpha")
        # the daily returns do not change: they read only the daily closes ...
        assert (after.sharpe, after.volatility, after.periods) == (before.sharpe, before.volatility, before.periods)
        # ... but the first snapshot of the thinned curve is the first day's close
        assert after.starting_equity == 103


def test_policy_validation() -> None:
    with pytest.raises(ValidationError, match="events"):
        RetentionPolicy(events=30)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="timeframe"):
        RetentionPolicy(bars=timedelta(days=1))
    assert RetentionPolicy().empty and not RetentionPolicy(reports=timedelta(0)).empty


async def test_a_trade_stays_while_an_order_points_to_it(db: DatabaseManager) -> None:
    await old_and_new(db)
    async with db.get_session() as session:
        (dry,) = await prune(session, RetentionPolicy(trades=timedelta(days=90)), dry_run=True)
        (done,) = await prune(session, RetentionPolicy(trades=timedelta(days=90)))
        assert dry.rows == done.rows == 2  # closed T1 and cancelled T4; T5 and T6 have orders that stay
        left = sorted(t.trade_id for t in await TradeRepository(session).get_recent())
        assert left == ["T2", "T3", "T5", "T6"]
