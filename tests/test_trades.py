"""TradeRepository on SQLite and PostgreSQL, statistics checked against a hand computation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy.exc import IntegrityError

from factories import trade
from tradestore import DatabaseManager, Trade, TradeRepository, TradeStatistics
from tradestore.errors import NotFoundError, ValidationError


async def test_insert_and_read_back_exactly(db: DatabaseManager) -> None:
    original = trade(
        1,
        pnl="123456789012.12345678",
        fee="0.00000001",
        leverage="5",
        signal_score="0.85",
        realized_pnl_pct="-0.5",
        strategy="breakout",
        bot_id="bot-1",
        mode="paper",
        metadata={"order": "abc", "price": Decimal("1.5")},
    )
    async with db.get_session() as session:
        trade_id = await TradeRepository(session).insert(original)
    async with db.get_session() as session:
        got = await TradeRepository(session).get_by_id(trade_id)
    assert got is not None and got.id == trade_id
    for name in (
        "trade_id",
        "symbol",
        "side",
        "action",
        "entry_price",
        "quantity",
        "entry_time",
        "leverage",
        "exit_time",
        "realized_pnl",
        "realized_pnl_pct",
        "fee",
        "signal_score",
        "strategy",
        "bot_id",
        "mode",
    ):
        assert getattr(got, name) == getattr(original, name), name
    assert got.metadata == {"order": "abc", "price": "1.5"}
    assert got.entry_time.tzinfo is UTC and got.created_at is not None and got.updated_at is not None


async def test_trade_id_is_unique_per_exchange(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        await repo.insert(trade(1))
        await repo.insert(trade(1, exchange="bybit"))
        with pytest.raises(IntegrityError):
            await repo.insert(trade(1))
        assert len(await repo.get_recent()) == 2  # the session survived the failed insert


async def test_update_changes_fields_and_moves_updated_at(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        trade_id = await repo.insert(trade(1))
        before = await repo.get_by_id(trade_id)
        await repo.update(
            trade_id,
            exit_price=Decimal("51000"),
            realized_pnl="50",
            action="close",
            exit_time=datetime(2024, 1, 2, 3, 4, 5),
        )
        after = await repo.get_by_id(trade_id)
    assert before is not None and after is not None
    assert (after.exit_price, after.realized_pnl, after.action) == (Decimal("51000"), Decimal("50"), "close")
    assert after.exit_time == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert after.updated_at is not None and before.updated_at is not None and after.updated_at > before.updated_at
    assert after.created_at == before.created_at


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"colour": "red"}, "colour"),
        ({"id": 5}, "id"),
        ({"created_at": datetime.now(UTC)}, "created_at"),
        ({"side": "sideways"}, "side"),
        ({"exit_price": "NaN"}, "exit_price"),
        ({"fee": float("inf")}, "fee"),
    ],
)
async def test_update_rejects_bad_fields_and_writes_nothing(
    db: DatabaseManager, fields: dict[str, object], named: str
) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        trade_id = await repo.insert(trade(1, realized_pnl="5", exit_time=datetime.now(UTC)))
        before = await repo.get_by_id(trade_id)
        with pytest.raises(ValidationError, match=named):
            await repo.update(trade_id, realized_pnl="7", **fields)
        assert await repo.get_by_id(trade_id) == before


async def test_update_or_get_a_missing_trade(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        with pytest.raises(NotFoundError):
            await repo.update(999, fee="1")
        assert await repo.get_by_id(999) is None


async def test_recent_and_by_symbol_are_newest_first(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        for n in range(5):
            await repo.insert(trade(n, entry_time=datetime(2024, 1, 1 + n, tzinfo=UTC)))
        await repo.insert(trade(9, symbol="ETHUSDT", entry_time=datetime(2024, 2, 1, tzinfo=UTC)))
        await repo.insert(trade(8, exchange="bybit", entry_time=datetime(2024, 3, 1, tzinfo=UTC)))
        recent = await repo.get_recent(limit=3)
        btc = await repo.get_by_symbol("BTCUSDT", limit=10)
    assert [t.trade_id for t in recent] == ["T8", "T9", "T4"]
    assert [t.trade_id for t in btc] == ["T4", "T3", "T2", "T1", "T0"]


def reference_statistics(trades: list[Trade]) -> TradeStatistics:
    """The statistics as a careful person computes them, one trade at a time."""
    nets = [t.realized_pnl - t.fee for t in trades if t.realized_pnl is not None]
    wins = [n for n in nets if n > 0]
    losses = [-n for n in nets if n < 0]
    q = lambda x: x.quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP)  # noqa: E731
    gross_profit, gross_loss = sum(wins, Decimal(0)), sum(losses, Decimal(0))
    return TradeStatistics(
        total_trades=len(nets),
        winning_trades=len(wins),
        losing_trades=len(losses),
        win_rate=q(Decimal(len(wins) * 100) / len(nets)) if nets else Decimal(0),
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        net_pnl=gross_profit - gross_loss,
        total_fees=sum((t.fee for t in trades if t.realized_pnl is not None), Decimal(0)),
        avg_win=q(gross_profit / len(wins)) if wins else Decimal(0),
        avg_loss=q(gross_loss / len(losses)) if losses else Decimal(0),
        largest_win=max(wins, default=Decimal(0)),
        largest_loss=max(losses, default=Decimal(0)),
        profit_factor=q(gross_profit / gross_loss) if gross_loss else None,
    )


async def test_statistics_match_a_hand_computation(db: DatabaseManager) -> None:
    closed = [
        trade(1, pnl="10", fee="1"),
        trade(2, pnl="9", fee="0.5"),
        trade(3, pnl="-5", fee="0.1"),
        trade(4, pnl="0.5", fee="0.5"),
        trade(5, pnl="123456789012.12345678", fee="0.00000001"),
        trade(6, pnl="-0.00000001"),
        trade(7, pnl="2", fee="3"),
    ]
    async with db.get_session() as session:
        repo = TradeRepository(session)
        for t in [*closed, trade(8)]:  # T8 is still open
            await repo.insert(t)
        stats = await repo.get_statistics()
    assert stats == reference_statistics(closed)
    assert stats.total_trades == 7 and stats.winning_trades == 3 and stats.losing_trades == 3
    assert stats.largest_win == Decimal("123456789012.12345677")
    assert stats.largest_loss == Decimal("5.1")  # 5.1 > 1 > 0.00000001: compared as numbers, not text


async def test_statistics_filters(db: DatabaseManager) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    async with db.get_session() as session:
        repo = TradeRepository(session)
        await repo.insert(trade(1, pnl="10"))
        await repo.insert(trade(2, pnl="-4", exit_time=old, entry_time=old - timedelta(hours=1)))
        await repo.insert(trade(3, pnl="7", mode="paper"))
        await repo.insert(trade(4, pnl="3", exchange="bybit"))
        await repo.insert(trade(5, pnl="1", symbol="ETHUSDT", strategy="s1", bot_id="b1"))
        assert (await repo.get_statistics()).total_trades == 2
        assert (await repo.get_statistics(days=None)).gross_loss == Decimal("4")
        assert (await repo.get_statistics(mode="paper")).net_pnl == Decimal("7")
        assert (await repo.get_statistics(exchange="bybit")).net_pnl == Decimal("3")
        assert (await repo.get_statistics(exchange=None, mode=None)).total_trades == 4
        assert (await repo.get_statistics(symbol="ETHUSDT", strategy="s1", bot_id="b1")).net_pnl == Decimal("1")
        assert (await repo.get_statistics(bot_id="nobody")).total_trades == 0


async def test_statistics_without_trades_or_losses(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        empty = await repo.get_statistics()
        await repo.insert(trade(1, pnl="10", fee="1"))
        only_wins = await repo.get_statistics()
    assert empty == TradeStatistics(0, 0, 0, *[Decimal(0)] * 9, profit_factor=None)
    assert only_wins.profit_factor is None and only_wins.avg_loss == 0 and only_wins.win_rate == 100


def test_trade_validation_names_the_field() -> None:
    with pytest.raises(ValidationError, match="side"):
        trade(1, side="up")
    with pytest.raises(ValidationError, match="mode"):
        trade(1, mode="demo")
    with pytest.raises(ValidationError, match="action"):
        trade(1, action="hold")
    with pytest.raises(ValidationError, match="quantity"):
        trade(1, quantity="0")
    with pytest.raises(ValidationError, match="metadata"):
        trade(1, metadata={"bad": object()})
    assert trade(1, leverage=3, fee=0.1).fee == Decimal("0.1")


async def test_insert_many_stores_every_trade_exactly(db: DatabaseManager) -> None:
    batch = [trade(n, pnl=f"{n}.12345678", fee="0.1", metadata={"n": n}) for n in range(1_500)]
    async with db.get_session() as session:
        repo = TradeRepository(session)
        assert await repo.insert_many(iter(batch)) == 1_500
        assert await repo.insert_many([]) == 0
    async with db.get_session() as session:
        stored = await TradeRepository(session).get_recent(limit=2_000)
    assert len(stored) == 1_500
    by_id = {t.trade_id: t for t in stored}
    for n in (0, 777, 1_499):
        got, want = by_id[f"T{n}"], batch[n]
        assert got.realized_pnl == want.realized_pnl == Decimal(f"{n}.12345678")
        assert (got.entry_time, got.exit_time, got.fee, got.metadata) == (
            want.entry_time,
            want.exit_time,
            want.fee,
            {"n": n},
        )
        assert got.id is not None and got.created_at is not None and got.created_at.tzinfo is UTC


async def test_insert_many_is_all_or_nothing(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        await repo.insert(trade(5))
        with pytest.raises(IntegrityError):
            await repo.insert_many([trade(1), trade(2), trade(5)])  # T5 is already stored
        with pytest.raises(IntegrityError):
            await repo.insert_many([trade(3), trade(3)])  # repeated in the batch
        with pytest.raises(ValidationError, match=r"trades\[1\]: expected a Trade"):
            await repo.insert_many([trade(4), None])  # type: ignore[list-item]
        # The session is still usable and nothing of the failed calls was kept.
        assert [t.trade_id for t in await repo.get_recent()] == ["T5"]
