"""``tradestore copy SOURCE TARGET``: every table, verified; SQLite → PostgreSQL and back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cli_runner import fails, ok, seed
from factories import bars, position, trade
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
    schema,
)
from tradestore.admin import transfer

pytestmark = pytest.mark.filterwarnings("ignore:.*expression-based index")
PAIRS = [
    pytest.param("sqlite", "postgres", id="sqlite-to-postgres", marks=pytest.mark.postgres),
    pytest.param("postgres", "sqlite", id="postgres-to-sqlite", marks=pytest.mark.postgres),
    pytest.param("sqlite", "sqlite", id="sqlite-to-sqlite", marks=pytest.mark.sqlite),
]


async def fill(url: str) -> None:
    """A bot's worth of every kind of row, with exact decimals and JSON."""
    async with DatabaseManager(url, auto_migrate=True) as db, db.get_session() as session:
        candles = bars(50, skip=range(10, 13), close="100.12345678901234567890", high="123456789012.5")
        await OHLCVRepository(session).upsert_many(candles)
        trades = TradeRepository(session)
        trade_id = await trades.insert(
            trade(1, pnl="10.5", fee="0.00000001", metadata={"why": "breakout", "score": 0.7})
        )
        await trades.insert(trade(2))
        orders = OrderRepository(session)
        order_id = await orders.create(Order("o-1", "BTC/USDT", "binance", "buy", "market", "0.5", trade_id=trade_id))
        await orders.transition(order_id, "submitted")
        await orders.record_fill(
            Fill("binance", "BTC/USDT", "o-1", "t-1", "buy", "50000.123456789", "0.2", datetime(2024, 1, 1, tzinfo=UTC))
        )
        decision = Decision("bot", "BTCUSDT", "buy", datetime(2024, 1, 1, tzinfo=UTC), price="50000.10",
                            signals={"rsi": {"signal": "BUY", "confidence": 0.9}}, trade_id=trade_id)  # fmt: skip
        decision_id = await DecisionRepository(session).record(decision)
        await ProposalRepository(session).create(Proposal("bot", "BTCUSDT", "buy", "0.01", decision_id=decision_id))
        await PositionRepository(session).update_position(position(margin="100.10"))
        await SystemEventRepository(session).log_event("start", "info", "bot started", {"at": Decimal("1.50")})
        await BotRepository(session).register(Bot("grid-1", config={"pairs": ["BTC/USDT"]}, balance="1000.000000001"))
        equity = EquityRepository(session)
        t0 = datetime(2024, 1, 1, tzinfo=UTC)
        await equity.record_many(
            EquitySnapshot("grid-1", t0 + timedelta(hours=h), Decimal("1000.123456789") + h, metadata={"h": h})
            for h in range(3)
        )
        await equity.store_report(await equity.performance("grid-1"))


async def contents(url: str) -> dict[str, Any]:
    """Everything stored, through the repositories, ids left out."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    async with DatabaseManager(url) as db, db.get_session() as session:
        candles = await OHLCVRepository(session).get_range("BTCUSDT", "1m", t0, t0 + timedelta(days=1))
        trades = await TradeRepository(session).get_recent()
        positions = await PositionRepository(session).get_open_positions()
        events = await SystemEventRepository(session).get_recent_events()
        bots = await BotRepository(session).list_bots()
        curve = await EquityRepository(session).get_curve("grid-1")
        reports = await EquityRepository(session).get_reports("grid-1")
        orders = OrderRepository(session)
        order = await orders.get_by_client_id("o-1", "binance")
        assert order is not None and order.trade_id is not None
        trade_of_order = await TradeRepository(session).get_by_id(order.trade_id)
        fills = await orders.get_fills(order.id or 0)
        history = await orders.get_history(order.id or 0)
        decisions = await DecisionRepository(session).find()
        linked = [d.trade_id and await TradeRepository(session).get_by_id(d.trade_id) for d in decisions]
        proposals = await ProposalRepository(session).find()
    strip = ("id", "created_at", "updated_at")
    unlinked = (*strip, "trade_id", "decision_id")  # ids differ between databases: compared through what they link
    return {
        "ohlcv": [(b.timestamp, b.open, b.close, b.volume) for b in candles],
        # Compared as values: asyncpg reads NUMERIC 50000 back as Decimal('5E+4'), equal to Decimal('50000').
        "trades": sorted(({k: v for k, v in vars(t).items() if k not in strip} for t in trades), key=str),
        "positions": [{k: v for k, v in vars(p).items() if k not in strip} for p in positions],
        "events": [(e.event_type, e.message, e.details) for e in events],
        "bots": [(b.bot_id, b.status, b.config, b.balance, b.started_at) for b in bots],
        "equity": [{k: v for k, v in vars(s).items() if k != "id"} for s in curve],
        "reports": [{k: v for k, v in vars(r).items() if k != "id"} for r in reports],
        "order": (
            order.status,
            order.filled_quantity,
            order.average_fill_price,
            trade_of_order and trade_of_order.trade_id,
        ),
        "fills": [(f.exchange_trade_id, f.price, f.quantity, f.timestamp) for f in fills],
        "history": [h.status for h in history],
        "decisions": [
            ({k: v for k, v in vars(d).items() if k not in unlinked}, t and t.trade_id)
            for d, t in zip(decisions, linked, strict=True)
        ],
        "proposals": [
            ({k: v for k, v in vars(p).items() if k not in unlinked}, p.decision_id is not None) for p in proposals
        ],
    }


@pytest.mark.parametrize(("source_kind", "target_kind"), PAIRS)
def test_copy_moves_every_table_and_verifies_it(
    new_database: Callable[[str], str], source_kind: str, target_kind: str
) -> None:
    source, target = new_database(source_kind), new_database(target_kind)
    asyncio.run(fill(source))
    result = ok("copy", source, target, "--json").json
    assert result["verified"] and result["created_schema"]
    assert result["copied"] == sum(t["source_rows"] for t in result["tables"]) == 66
    assert {t["table"]: (t["source_rows"], t["target_rows"]) for t in result["tables"]} == {
        "bots": (1, 1),
        "equity_snapshots": (3, 3),
        "fills": (1, 1),
        "decisions": (1, 1),
        "proposals": (1, 1),
        "ohlcv": (47, 47),
        "ohlcv_fetched": (2, 2),  # the two runs of bars around the hole, marked fetched by upsert_many
        "order_history": (3, 3),
        "orders": (1, 1),
        "performance_reports": (1, 1),
        "positions": (1, 1),
        "system_events": (2, 2),
        "trades": (2, 2),
    }
    assert asyncio.run(contents(target)) == asyncio.run(contents(source))
    assert ok("db", "current", "--url", target, "--json").json["status"] == "current"

    async def new_rows_get_new_ids() -> None:  # PostgreSQL's sequences follow the copied ids
        async with DatabaseManager(target) as db, db.get_session() as session:
            await TradeRepository(session).insert(trade(3))

    asyncio.run(new_rows_get_new_ids())


def test_copy_prints_a_table_and_the_verdict(new_database: Callable[[str], str], tmp_path: Path) -> None:
    source, target = new_database("sqlite"), new_database("sqlite")
    seed(source, tmp_path, [0, 1, 2])
    lines = ok("copy", source, target).out.splitlines()
    assert lines[0].split() == ["table", "source", "rows", "copied", "target", "rows", "checksum", "verified"]
    (ohlcv,) = [line.split() for line in lines[2:] if line.startswith("ohlcv ")]
    assert ohlcv[:4] == ["ohlcv", "3", "3", "3"] and ohlcv[-1] == "yes"
    assert "verified: row counts and checksums match" in lines[-1]


def test_a_non_empty_target_is_refused_unless_appending(fresh_url: str, tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    seed(source, tmp_path, [0, 1, 2])
    seed(fresh_url, tmp_path, [2, 3])  # overlaps at minute 2
    line = fails("copy", source, fresh_url)
    assert "is not empty (ohlcv: 2 rows, " in line and "): pass --append" in line
    line = fails("copy", source, fresh_url, "--append")
    assert "conflicts with one already in the target" in line and "nothing was written" in line
    assert ok("stats", "--url", fresh_url, "--json").json["rows"]["ohlcv"] == 2
    seed(source, tmp_path, [0, 1, 2], symbol="ETHUSDT")
    other = f"sqlite:///{tmp_path / 'other.db'}"
    seed(other, tmp_path, [7, 8], symbol="SOLUSDT")
    result = ok("copy", other, fresh_url, "--append", "--json").json
    tables = {t["table"]: t for t in result["tables"]}
    assert result["verified"] and tables["ohlcv"]["target_rows"] == 4


def test_the_source_must_be_current_and_the_target_not_newer(
    new_database: Callable[[str], str], tmp_path: Path
) -> None:
    source, target = new_database("sqlite"), new_database("sqlite")
    assert "has no tradestore schema" in fails("copy", source, target)
    seed(source, tmp_path, [0])
    ok("db", "upgrade", "--url", target)

    async def from_the_future(url: str) -> None:
        async with DatabaseManager(url) as db, db.engine.begin() as conn:
            await conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00d'")

    asyncio.run(from_the_future(target))
    assert "target: " in fails("copy", source, target) and "newer tradestore" in fails("copy", source, target)
    assert "same database" in fails("copy", source, source)
    assert "in-memory" in fails("copy", source, "sqlite:///:memory:")


def test_a_failed_verification_writes_nothing(
    new_database: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = new_database("sqlite"), tmp_path / "target.db"
    seed(source, tmp_path, [0, 1, 2])
    monkeypatch.setattr(transfer.Tally, "plus", lambda self, other: transfer.Tally(self.rows + other.rows, 42))
    line = fails("copy", source, f"sqlite:///{target}")
    assert "verification failed for bots" in line and "nothing was written" in line  # the first table
    assert not target.exists()  # a target file the copy created is removed again


def test_copy_with_the_source_from_url_and_a_password_never_shown(
    new_database: Callable[[str], str], tmp_path: Path
) -> None:
    source = new_database("sqlite")
    seed(source, tmp_path, [0])
    line = fails("copy", "postgresql://bot:s3cr3t-pw@127.0.0.1:1/nowhere", "--url", source)
    assert "cannot connect" in line and "s3cr3t-pw" not in line
    assert schema.head_revision()


@pytest.mark.parametrize(("source_kind", "target_kind"), PAIRS)
def test_appended_rows_keep_their_links(new_database: Callable[[str], str], source_kind: str, target_kind: str) -> None:
    """With --append rows get new ids in the target; decisions and proposals still point at their trades."""
    source, target = new_database(source_kind), new_database(target_kind)
    asyncio.run(fill(source))

    async def occupy() -> None:  # ids 1-2 of trades and decisions are taken in the target
        async with DatabaseManager(target, auto_migrate=True) as db, db.get_session() as session:
            other = [await TradeRepository(session).insert(trade(n, exchange="kraken")) for n in (7, 8)]
            for n, trade_id in enumerate(other):
                await DecisionRepository(session).record(
                    Decision("other", "ETHUSDT", "sell", datetime(2023, 1, 1, n, tzinfo=UTC), trade_id=trade_id)
                )

    asyncio.run(occupy())
    assert ok("copy", source, target, "--append", "--json").json["verified"]

    async def links() -> tuple[Any, ...]:
        async with DatabaseManager(target) as db, db.get_session() as session:
            (decision,) = await DecisionRepository(session).find(bot_id="bot")
            (proposal,) = await ProposalRepository(session).find(bot_id="bot")
            assert decision.trade_id is not None
            linked = await TradeRepository(session).get_by_id(decision.trade_id)
            return decision.id, proposal.decision_id, linked.exchange if linked else None, linked and linked.trade_id

    decision_id, proposal_decision, exchange, trade_id = asyncio.run(links())
    assert (proposal_decision, exchange, trade_id) == (decision_id, "binance", "T1")

    async def order_links() -> tuple[Any, ...]:
        async with DatabaseManager(target) as db, db.get_session() as session:
            orders = OrderRepository(session)
            order = await orders.get_by_client_id("o-1", "binance")
            assert order is not None and order.id is not None and order.trade_id is not None
            linked = await TradeRepository(session).get_by_id(order.trade_id)
            fills = await orders.get_fills(order.id)
            history = await orders.get_history(order.id)
            return linked and (linked.exchange, linked.trade_id), [f.exchange_trade_id for f in fills], len(history)

    assert asyncio.run(order_links()) == (("binance", "T1"), ["t-1"], 3)


def test_copy_refuses_the_same_file_spelt_otherwise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    seed("sqlite:///bot.db", tmp_path, [0, 1, 2])
    for other in ("sqlite:///./bot.db", f"sqlite:///{tmp_path / 'bot.db'}"):
        assert "same database" in fails("copy", "sqlite:///bot.db", other, "--append")
    assert ok("stats", "--url", "sqlite:///bot.db", "--json").json["rows"]["ohlcv"] == 3
