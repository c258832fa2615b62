"""``BotRepository``: registration and restarts, heartbeats, the status state machine, stale bots, recovery."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.engine import URL

from factories import position, trade
from tradestore import (
    Bot,
    BotRepository,
    DatabaseManager,
    EquityRepository,
    EquitySnapshot,
    Order,
    OrderRepository,
    PositionRepository,
    SystemEventRepository,
    TradeRepository,
)
from tradestore.domain import BOT_TRANSITIONS
from tradestore.errors import InvalidTransitionError, NotFoundError, ValidationError

T0 = datetime(2024, 1, 1, tzinfo=UTC)


async def test_register_creates_then_restarts(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        bots = BotRepository(session)
        created = await bots.register(
            Bot("alpha", mode="paper", strategy="grid", version="1.0", config={"pairs": ["BTC/USDT"]}, balance="1000.5")
        )
        assert created.status == "running" and created.started_at == created.last_heartbeat == created.created_at
        assert created.config == {"pairs": ["BTC/USDT"]} and created.balance == Decimal("1000.5")
        await bots.set_status("alpha", "stopped")
    async with db.get_session() as session:
        bots = BotRepository(session)
        restarted = await bots.register(Bot("alpha", mode="paper", strategy="grid", version="1.1", status="stopped"))
        assert restarted.status == "running" and restarted.version == "1.1"
        assert restarted.created_at == created.created_at and restarted.started_at > created.started_at  # type: ignore[operator]
        assert (await bots.register(Bot("beta", status="starting"))).status == "starting"
        events = await SystemEventRepository(session).get_recent_events()
        assert [e.event_type for e in events][:3] == ["bot_started", "bot_restarted", "bot_status"]


async def test_heartbeat_and_get(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        bots = BotRepository(session)
        await bots.register(Bot("alpha"))
        await bots.heartbeat("alpha", balance=1234.56, at=T0)
        bot = await bots.get("alpha")
        assert bot.last_heartbeat == T0 and bot.balance == Decimal("1234.56")
        await bots.heartbeat("alpha", status="running")  # repeating the status: allowed here
        await bots.heartbeat("alpha", status="error")
        assert (await bots.get("alpha")).status == "error"
        await bots.set_status("alpha", "stopped")
        with pytest.raises(InvalidTransitionError, match="'stopped' to 'running'"):
            await bots.heartbeat("alpha", status="running")
        with pytest.raises(NotFoundError, match="ghost"):
            await bots.heartbeat("ghost")
        with pytest.raises(NotFoundError, match="ghost"):
            await bots.get("ghost")
        with pytest.raises(ValidationError, match="balance"):
            await bots.heartbeat("alpha", balance="lots")
        with pytest.raises(ValidationError, match="status"):
            await bots.heartbeat("alpha", status="sleeping")


async def test_status_state_machine_every_move(db: DatabaseManager) -> None:
    statuses = ("starting", "running", "stopped", "error")
    async with db.get_session() as session:
        bots = BotRepository(session)
        for source in statuses:
            for target in statuses:
                name = f"{source}-{target}"
                await bots.register(Bot(name))
                if source != "running":
                    await bots.set_status(name, "stopped" if source == "starting" else source)
                    if source == "starting":
                        await bots.set_status(name, "starting")
                assert (await bots.get(name)).status == source
                if target in BOT_TRANSITIONS[source]:
                    assert (await bots.set_status(name, target, reason="test")).status == target
                else:
                    with pytest.raises(InvalidTransitionError, match=f"'{name}'.*'{source}' to '{target}'"):
                        await bots.set_status(name, target)
                    assert (await bots.get(name)).status == source
        with pytest.raises(NotFoundError):
            await bots.set_status("ghost", "running")
        errors = await SystemEventRepository(session).get_recent_events(severity="error")
        assert errors and all(
            e.event_type == "bot_status" and e.details and e.details["status"] == "error" for e in errors
        )


async def test_racing_status_changes_exactly_one_wins(fresh_url: str) -> None:
    async with DatabaseManager(fresh_url, auto_migrate=True) as db:
        async with db.get_session() as session:
            await BotRepository(session).register(Bot("alpha"))
            await BotRepository(session).set_status("alpha", "stopped")

        async def start() -> str:  # two supervisors restart the stopped bot at once
            try:
                async with db.get_session() as session:
                    await BotRepository(session).set_status("alpha", "starting", reason="supervisor")
                    await asyncio.sleep(0.05)  # hold the row while the other one tries
                return "won"
            except InvalidTransitionError as exc:
                assert "'starting' to 'starting'" in str(exc)
                return "lost"

        for _ in range(3):
            assert sorted(await asyncio.gather(start(), start())) == ["lost", "won"]
            async with db.get_session() as session:
                await BotRepository(session).set_status("alpha", "stopped")


async def test_list_and_stale(db: DatabaseManager) -> None:
    now = datetime.now(UTC)
    async with db.get_session() as session:
        bots = BotRepository(session)
        for name, mode in (("a", "live"), ("b", "paper"), ("c", "live"), ("d", "live")):
            await bots.register(Bot(name, mode=mode))
        await bots.heartbeat("a", at=now - timedelta(minutes=10))
        await bots.heartbeat("c", at=now - timedelta(minutes=10))
        await bots.set_status("c", "stopped")
        assert [b.bot_id for b in await bots.list_bots()] == ["a", "b", "c", "d"]
        assert [b.bot_id for b in await bots.list_bots(mode="live", status="running")] == ["a", "d"]
        assert [b.bot_id for b in await bots.stale(timedelta(minutes=5))] == ["a"]  # c is stopped
        assert await bots.stale(timedelta(hours=1)) == []
        with pytest.raises(ValidationError, match="older_than"):
            await bots.stale(5)  # type: ignore[arg-type]


async def test_recover_reads_one_consistent_snapshot(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        bots = BotRepository(session)
        await bots.register(Bot("alpha", balance="500"))
        positions = PositionRepository(session)
        await positions.update_position(position(bot_id="alpha"))
        await positions.update_position(position(bot_id="alpha", symbol="ETHUSDT", mode="paper"))
        await positions.update_position(position(bot_id="other", symbol="SOLUSDT"))
        closed = await positions.update_position(position(bot_id="alpha", symbol="XRPUSDT"))
        await positions.close_position(closed)
        trades = TradeRepository(session)
        await trades.insert(trade(1, bot_id="alpha"))
        await trades.insert(trade(2, bot_id="alpha", pnl="3"))  # closed: not recovered
        await trades.insert(trade(3, bot_id="alpha", mode="paper"))
        await trades.cancel(await trades.insert(trade(4, bot_id="alpha")), "never filled")  # not open: not recovered
        orders = OrderRepository(session)
        await orders.create(Order("o-open", "BTC/USDT", "binance", "buy", "limit", "1", price="50000", bot_id="alpha"))
        gone = await orders.create(
            Order("o-gone", "BTC/USDT", "binance", "buy", "limit", "1", price="1", bot_id="alpha")
        )
        await orders.transition(gone, "rejected", reason="test")
        await orders.create(Order("o-other", "BTC/USDT", "binance", "buy", "limit", "1", price="1", bot_id="other"))
        equity = EquityRepository(session)
        await equity.record(EquitySnapshot("alpha", T0, "510", balance="505"))
        await equity.record(EquitySnapshot("alpha", T0 + timedelta(hours=1), "520", balance="506", metadata={"k": 1}))
        await equity.record(EquitySnapshot("alpha", T0 + timedelta(hours=2), "9", mode="paper"))
    async with db.get_session() as session:
        bots = BotRepository(session)
        everything = await bots.recover("alpha")
        assert sorted(p.symbol for p in everything.positions) == ["BTCUSDT", "ETHUSDT"]
        assert [t.trade_id for t in everything.trades] == ["T3", "T1"] or {t.trade_id for t in everything.trades} == {
            "T1",
            "T3",
        }
        assert everything.equity is not None and everything.equity.mode == "paper"  # newest of any mode
        live = await bots.recover("alpha", mode="live")
        assert [p.symbol for p in live.positions] == ["BTCUSDT"] and [t.trade_id for t in live.trades] == ["T1"]
        assert live.equity is not None and live.equity.equity == Decimal(520) and live.equity.metadata == {"k": 1}
        # the heartbeat at registration is newer than the 2024 snapshot: its balance is the last known
        assert live.balance == Decimal(500) and live.bot.bot_id == "alpha"
        await bots.heartbeat("alpha", at=T0 - timedelta(days=1))
        older = await bots.recover("alpha", mode="live")
        assert (older.balance, older.balance_at) == (Decimal(506), T0 + timedelta(hours=1))
        with pytest.raises(NotFoundError, match="ghost"):
            await bots.recover("ghost")


async def test_recover_sees_all_or_nothing_of_a_concurrent_transaction(fresh_url: str | URL) -> None:
    async with DatabaseManager(fresh_url, auto_migrate=True) as db:
        async with db.get_session() as session:
            await BotRepository(session).register(Bot("alpha"))
        stop = asyncio.Event()

        async def writer() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                async with db.get_session() as session:  # a position and its snapshot, together
                    await PositionRepository(session).update_position(
                        position(bot_id="alpha", symbol=f"S{n}", quantity=n)
                    )
                    await EquityRepository(session).record(
                        EquitySnapshot("alpha", T0 + timedelta(seconds=n), n, open_positions=n)
                    )
                await asyncio.sleep(0)

        task = asyncio.create_task(writer())
        try:
            for _ in range(30):
                async with db.get_session() as session:
                    found = await BotRepository(session).recover("alpha")
                count = 0 if found.equity is None else found.equity.open_positions
                assert len(found.positions) == count
                await asyncio.sleep(0.005)
        finally:
            stop.set()
            await task


async def test_register_checks_a_bot_changed_after_construction(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        bots = BotRepository(session)
        for name, value in (("mode", "real"), ("balance", "lots"), ("config", ["not", "an", "object"])):
            changed = Bot("alpha")
            setattr(changed, name, value)
            with pytest.raises(ValidationError, match=name):
                await bots.register(changed)
        with pytest.raises(NotFoundError):
            await bots.get("alpha")
