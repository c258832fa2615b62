"""TradeRepository on SQLite and PostgreSQL, statistics checked against a hand computation."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from factories import trade
from tradestore import ALL_EXCHANGES, DatabaseManager, Trade, TradeRepository, TradeStatistics
from tradestore.errors import DuplicateError, InvalidTransitionError, NotFoundError, ValidationError
from tradestore.values import EXACT


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
        with pytest.raises(IntegrityError):  # the seed's except clause still works ...
            await repo.insert(trade(1))
        with pytest.raises(DuplicateError, match="T1"):  # ... and so does tradestore's
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
        ({"status": "closed"}, "status"),
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

    def q(x: Decimal) -> Decimal:
        return x.quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP)

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
        assert (await repo.get_statistics(mode="live")).total_trades == 2
        assert (await repo.get_statistics()).total_trades == 3  # no mode filter by default
        assert (await repo.get_statistics(days=None)).gross_loss == Decimal("4")
        assert (await repo.get_statistics(mode="paper")).net_pnl == Decimal("7")
        assert (await repo.get_statistics(exchange="bybit")).net_pnl == Decimal("3")
        assert (await repo.get_statistics(exchange=ALL_EXCHANGES)).total_trades == 4
        assert (await repo.get_statistics(symbol="ETHUSDT", strategy="s1", bot_id="b1")).net_pnl == Decimal("1")
        assert (await repo.get_statistics(bot_id="nobody")).total_trades == 0


async def test_statistics_without_trades_or_losses(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        empty = await repo.get_statistics()
        await repo.insert(trade(1, pnl="10", fee="1"))
        only_wins = await repo.get_statistics()
    zero = Decimal(0)
    assert empty == TradeStatistics(0, 0, 0, zero, zero, zero, zero, zero, zero, zero, zero, zero, None)
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


async def test_update_can_change_the_trade_id(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        first = await repo.insert(trade(1))
        await repo.insert(trade(2))
        await repo.update(first, trade_id="T-2")
        got = await repo.get_by_id(first)
        assert got is not None and got.trade_id == "T-2"
        with pytest.raises(DuplicateError, match="T2"):
            await repo.update(first, trade_id="T2")
        assert (await repo.get_by_id(first)).trade_id == "T-2"  # type: ignore[union-attr]


async def test_closing_without_an_exit_time_sets_it_to_now(db: DatabaseManager) -> None:
    """The seed's example: update(id, exit_price=..., realized_pnl=...) with no exit_time is counted."""
    async with db.get_session() as session:
        repo = TradeRepository(session)
        trade_id = await repo.insert(trade(1))
        before = datetime.now(UTC)
        await repo.update(trade_id, exit_price="51000", realized_pnl="10")
        closed = await repo.get_by_id(trade_id)
        assert closed is not None and closed.exit_time is not None and closed.exit_time >= before
        inserted = await repo.insert(trade(2, action="close", exit_price="51000"))  # closed, no exit_time
        assert (await repo.get_by_id(inserted)).exit_time is not None  # type: ignore[union-attr]
        still_open = await repo.insert(trade(3))
        assert (await repo.get_by_id(still_open)).exit_time is None  # type: ignore[union-attr]
        stats = await repo.get_statistics()
    assert stats.total_trades == 1 and stats.net_pnl == Decimal("10")


async def test_pandas_and_numpy_values_store_and_read_back(db: DatabaseManager) -> None:
    """What DataFrame.iterrows() yields: numpy numbers, pandas Timestamps, NaT for a missing time."""
    frame = pd.DataFrame(
        {
            "entry_price": [50000.5, 60000.25],
            "quantity": [0.01, 2.0],
            "entry_time": pd.to_datetime(["2024-01-01 00:00", "2024-01-02 00:00"], utc=True),
            "exit_time": pd.to_datetime([None, "2024-01-03 00:00"], utc=True),
            "realized_pnl": [None, 12.5],
            "leverage": np.array([3, 5], dtype=np.int64),
        }
    )
    async with db.get_session() as session:
        repo = TradeRepository(session)
        for i, row in frame.iterrows():
            pnl = None if pd.isna(row["realized_pnl"]) else row["realized_pnl"]
            await repo.insert(
                Trade(
                    f"P{i}",
                    "BTCUSDT",
                    "binance",
                    "long",
                    "open" if pnl is None else "close",
                    entry_price=row["entry_price"],
                    quantity=row["quantity"],
                    entry_time=row["entry_time"],
                    exit_time=row["exit_time"],
                    realized_pnl=pnl,
                    leverage=row["leverage"],
                )
            )
        got = sorted(await repo.get_recent(), key=lambda t: t.trade_id)
        stats = await repo.get_statistics(days=None)
    assert [(t.entry_price, t.quantity, t.leverage) for t in got] == [
        (Decimal("50000.5"), Decimal("0.01"), Decimal(3)),
        (Decimal("60000.25"), Decimal("2.0"), Decimal(5)),
    ]
    assert got[0].exit_time is None and got[1].exit_time == datetime(2024, 1, 3, tzinfo=UTC)
    assert stats.total_trades == 1  # the NaT row is open, not closed


async def test_nat_never_makes_the_table_unreadable(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        await repo.insert(trade(1, exit_time=pd.NaT))
        assert [t.exit_time for t in await repo.get_recent()] == [None]
        assert [t.exit_time for t in await repo.get_by_symbol("BTCUSDT")] == [None]
        assert (await repo.get_statistics(days=None)).total_trades == 0
        with pytest.raises(ValidationError, match="entry_time"):
            trade(2, entry_time=pd.NaT)


def _exact_ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal:
    """Round half-up to 8 places from the exact Fraction: the hand computation."""
    exact = Fraction(Decimal(numerator)) / Fraction(Decimal(denominator)) * 10**8
    whole, rest = divmod(exact.numerator, exact.denominator)
    if 2 * rest >= exact.denominator:
        whole += 1
    return Decimal(f"{whole}E-8")


async def test_ratios_are_rounded_once_whatever_the_digits(db: DatabaseManager) -> None:
    """avg_win of nets with more than 60 significant digits: a 60-digit division rounded twice."""
    rng = random.Random(8)
    # Decimal(...) arithmetic rounds to 28 digits: build the test data from exact text.
    losses = [Decimal(f"{rng.randrange(10**65, 10**66)}E-8") for _ in range(7)]
    target = Decimal("1" * 62 + ".000000005")  # the exact avg_win: 71 digits, ending in a half
    others = [Decimal(f"{rng.randrange(10**60, 10**61)}E-8") for _ in range(2)]
    first = EXACT.subtract(EXACT.multiply(target, 3), EXACT.add(others[0], others[1]))
    wins = [first, *others]
    async with db.get_session() as session:
        repo = TradeRepository(session)
        for n, pnl in enumerate([*wins, *(x.copy_negate() for x in losses)]):
            await repo.insert(trade(n, pnl=str(pnl)))
        assert all(w > 0 for w in wins)
        stats = await repo.get_statistics()
    gross_profit = sum((Fraction(w) for w in wins), Fraction(0))
    gross_loss = sum((Fraction(x) for x in losses), Fraction(0))
    assert Fraction(stats.gross_profit) == gross_profit and Fraction(stats.gross_loss) == gross_loss
    assert stats.avg_win == _exact_ratio(stats.gross_profit, 3)
    assert stats.avg_win == Decimal("1" * 62 + ".00000001")
    assert stats.avg_loss == _exact_ratio(stats.gross_loss, 7)
    assert stats.profit_factor == _exact_ratio(stats.gross_profit, stats.gross_loss)
    assert stats.win_rate == Decimal("30.00000000")


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda repo: repo.get_statistics(days=1_000_000), "days"),
        (lambda repo: repo.get_statistics(days=float("nan")), "days"),
        (lambda repo: repo.get_statistics(days=-1), "days"),
        (lambda repo: repo.get_recent(limit=2**63), "limit"),
        (lambda repo: repo.get_by_symbol("BTCUSDT", limit=2**63), "limit"),
        (lambda repo: repo.get_by_id(2**64), "id"),
        (lambda repo: repo.get_by_symbol("lone \udc80"), "symbol"),
        (lambda repo: repo.get_statistics(strategy="lone \udc80"), "strategy"),
    ],
)
async def test_out_of_range_arguments_are_validation_errors(
    db: DatabaseManager, call: Callable[[TradeRepository], Awaitable[object]], named: str
) -> None:
    async with db.get_session() as session:
        with pytest.raises(ValidationError, match=named):
            await call(TradeRepository(session))
        assert await TradeRepository(session).get_recent() == []  # the session is still usable


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"strategy": "lone \udc80"}, "strategy"),
        ({"metadata": {"note": "\udc80"}}, "metadata"),
        ({"fee": "1E+200000"}, "fee"),
    ],
)
def test_values_postgresql_would_refuse_are_refused_before_any_sql(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        trade(1, **fields)


async def test_decimals_read_back_identically_on_both_backends(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        trade_id = await repo.insert(trade(1, entry_price=Decimal("1E+5"), fee=Decimal("-0"), pnl="-0.00"))
        got = await repo.get_by_id(trade_id)
    assert got is not None
    assert (str(got.entry_price), str(got.fee), str(got.realized_pnl)) == ("100000", "0", "0.00")


async def test_a_nat_stored_by_an_earlier_version_leaves_the_table_readable(db: DatabaseManager, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("only SQLite's text column could hold 'NaT'")
    async with db.get_session() as session:
        repo = TradeRepository(session)
        trade_id = await repo.insert(trade(1))
        await session.execute(text("UPDATE trades SET exit_time = 'NaT' WHERE id = :id"), {"id": trade_id})
        assert [t.exit_time for t in await repo.get_recent()] == [None]
        assert [t.exit_time for t in await repo.get_by_symbol("BTCUSDT")] == [None]


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


# --- the whole lifecycle: status, close, cancel, find (issue 10) ---------------------------


async def test_new_fields_round_trip_and_every_mode_is_accepted(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        ids = [
            await repo.insert(
                trade(n, mode=mode, stop_loss="49000.5", take_profit="0.00000001", timeframe="4h", exit_reason=None)
            )
            for n, mode in enumerate(("live", "paper", "backtest", "optimization", "test"))
        ]
        got = [await repo.get_by_id(i) for i in ids]
    assert [t.mode for t in got if t is not None] == ["live", "paper", "backtest", "optimization", "test"]
    first = got[0]
    assert first is not None and first.status == "open" and first.timeframe == "4h"
    assert (first.stop_loss, first.take_profit) == (Decimal("49000.5"), Decimal("0.00000001"))
    with pytest.raises(ValidationError, match="timeframe"):
        trade(1, timeframe="7m")
    with pytest.raises(ValidationError, match="status"):
        trade(1, status="done")


@pytest.mark.parametrize(("side", "expected"), [("long", Decimal("10.00000000")), ("short", Decimal("-10.00000000"))])
async def test_close_computes_the_pnl_exactly(db: DatabaseManager, side: str, expected: Decimal) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        trade_id = await repo.insert(trade(1, side=side, entry_price="50000.00000001", quantity="0.01"))
        before = datetime.now(UTC)
        closed = await repo.close(trade_id, exit_price="51000.00000001", fee="0.2", exit_reason="take_profit")
        assert closed == await repo.get_by_id(trade_id)
    assert closed.status == "closed" and closed.action == "close" and closed.exit_reason == "take_profit"
    assert closed.realized_pnl == expected and closed.exit_price == Decimal("51000.00000001")
    assert closed.fee == Decimal("0.2") and closed.exit_time is not None and closed.exit_time >= before


async def test_close_with_given_figures_and_its_errors(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        trade_id = await repo.insert(trade(1, fee="0.1"))
        exit_time = datetime.now(UTC)
        with pytest.raises(ValidationError, match="exit_price"):
            await repo.close(trade_id, exit_price="NaN")
        with pytest.raises(ValidationError, match="exit_time"):
            await repo.close(trade_id, exit_price="1", exit_time=exit_time - timedelta(days=1))
        closed = await repo.close(trade_id, exit_price="1", exit_time=exit_time, realized_pnl="-3.5")
        assert closed.realized_pnl == Decimal("-3.5") and closed.exit_time == exit_time and closed.fee == Decimal("0.1")
        with pytest.raises(InvalidTransitionError, match=rf"trade {trade_id}.*'closed'.*'closed'"):
            await repo.close(trade_id, exit_price="2")
        with pytest.raises(InvalidTransitionError, match=r"'closed'.*'cancelled'"):
            await repo.cancel(trade_id)
        assert await repo.get_by_id(trade_id) == closed
        with pytest.raises(NotFoundError):
            await repo.close(trade_id + 100, exit_price="1")
        with pytest.raises(NotFoundError):
            await repo.cancel(trade_id + 100)


async def test_close_without_exit_time_exits_no_earlier_than_an_entry_ahead_of_the_clock(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        ahead = datetime.now(UTC) + timedelta(seconds=5)  # the exchange's clock is ahead of ours
        skewed = await repo.insert(trade(1, entry_time=ahead))
        past = await repo.insert(trade(2))
        closed = await repo.close(skewed, exit_price="50500")
        assert closed.status == "closed" and closed.exit_time == ahead  # as insert() of a closed trade has it
        assert closed.realized_pnl == Decimal("5.00")
        before = datetime.now(UTC)
        other = await repo.close(past, exit_price="50500")
        assert other.exit_time is not None and before <= other.exit_time <= datetime.now(UTC)
        assert await repo.get_by_id(skewed) == closed


async def test_cancel(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        trade_id = await repo.insert(trade(1))
        cancelled = await repo.cancel(trade_id, reason="order rejected")
        assert cancelled.status == "cancelled" and cancelled.exit_reason == "order rejected"
        assert cancelled.realized_pnl is None and cancelled.exit_time is None
        with pytest.raises(InvalidTransitionError):
            await repo.close(trade_id, exit_price="1")


async def test_two_racing_closes_one_wins(fresh_url: str) -> None:
    import asyncio

    async with DatabaseManager(fresh_url) as db:
        await db.create_all()
        async with db.get_session() as session:
            trade_id = await TradeRepository(session).insert(trade(1))

        async def close(price: str) -> str:
            try:
                async with db.get_session() as session:
                    await TradeRepository(session).close(trade_id, exit_price=price)
                return price
            except InvalidTransitionError:
                return "lost"

        results = await asyncio.gather(close("51000"), close("49000"))
        assert results.count("lost") == 1
        async with db.get_session() as session:
            stored = await TradeRepository(session).get_by_id(trade_id)
        assert stored is not None and stored.exit_price == Decimal(next(r for r in results if r != "lost"))


async def test_get_by_trade_id_uses_the_managers_exchange(db_on_kraken: DatabaseManager) -> None:
    db = db_on_kraken
    async with db.get_session() as session:
        repo = TradeRepository(session)
        await repo.insert(trade(1, exchange="kraken", quantity="1"))
        await repo.insert(trade(1, exchange="binance", quantity="2"))
        assert (await repo.get_by_trade_id("T1")).quantity == 1  # type: ignore[union-attr]
        assert (await repo.get_by_trade_id("T1", "binance")).quantity == 2  # type: ignore[union-attr]
        assert await repo.get_by_trade_id("T2") is None


async def test_find_filters_newest_first(db: DatabaseManager) -> None:
    def day(n: int) -> datetime:
        return datetime(2024, 1, n, tzinfo=UTC)

    async with db.get_session() as session:
        repo = TradeRepository(session)
        await repo.insert(trade(1, entry_time=day(1), bot_id="b1", strategy="s1"))
        await repo.insert(trade(2, entry_time=day(2), bot_id="b1", mode="paper"))
        await repo.insert(trade(3, entry_time=day(3), symbol="ETHUSDT", exchange="bybit"))
        await repo.insert(trade(4, entry_time=day(4), bot_id="b2", mode="test"))
        t5 = await repo.insert(trade(5, entry_time=day(5), bot_id="b1"))
        await repo.close(t5, exit_price="51000")
        t6 = await repo.insert(trade(6, entry_time=day(6)))
        await repo.cancel(t6)

        async def ids(**filters: Any) -> list[str]:
            filters.setdefault("exchange", ALL_EXCHANGES)
            return [t.trade_id for t in await repo.find(**filters)]

        assert [t.trade_id for t in await repo.find()] == ["T6", "T5", "T4", "T2", "T1"]  # the manager's exchange
        assert await ids() == ["T6", "T5", "T4", "T3", "T2", "T1"]
        assert await ids(limit=2) == ["T6", "T5"]
        assert await ids(exchange="bybit") == ["T3"]
        assert await ids(symbol="ETHUSDT") == ["T3"]
        assert await ids(bot_id="b1") == ["T5", "T2", "T1"]
        assert await ids(bot_id="b1", mode="live") == ["T5", "T1"]
        assert await ids(mode="test") == ["T4"]
        assert await ids(status="open") == ["T4", "T3", "T2", "T1"]
        assert await ids(status="closed") == ["T5"] and await ids(status="cancelled") == ["T6"]
        assert await ids(strategy="s1") == ["T1"]
        assert await ids(since=day(2), until=day(4)) == ["T3", "T2"]  # since <= entry_time < until
        with pytest.raises(ValidationError, match="status"):
            await repo.find(status="done")
        with pytest.raises(ValidationError, match="mode"):
            await repo.find(mode="demo")
        with pytest.raises(ValidationError, match="limit"):
            await repo.find(limit=-1)


async def test_find_and_get_by_symbol_read_the_managers_exchange_or_all_of_them(db_on_kraken: DatabaseManager) -> None:
    db = db_on_kraken
    async with db.get_session() as session:
        trades = TradeRepository(session)
        await trades.insert(trade(1, exchange="kraken"))
        await trades.insert(trade(2, exchange="binance"))
        assert [t.exchange for t in await trades.find()] == ["kraken"]
        assert [t.exchange for t in await trades.find(exchange="binance")] == ["binance"]
        assert [t.exchange for t in await trades.find(exchange=ALL_EXCHANGES)] == ["kraken", "binance"]
        assert [t.exchange for t in await trades.get_by_symbol("BTCUSDT")] == ["kraken"]
        everywhere = await trades.get_by_symbol("BTCUSDT", exchange=ALL_EXCHANGES)
        assert [t.exchange for t in everywhere] == ["kraken", "binance"]
        with pytest.raises(ValidationError, match="exchange"):
            await trades.find(exchange="")


async def test_insert_checks_a_trade_changed_after_construction_and_writes_nothing(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        for name, value in (("quantity", Decimal(-1)), ("status", "done"), ("entry_time", "2024-01-01")):
            changed = trade(1)
            setattr(changed, name, value)
            with pytest.raises(ValidationError, match=name):
                await repo.insert(changed)
        assert await repo.find(exchange=ALL_EXCHANGES) == []
        floated = trade(2)
        floated.entry_price = 50000.5  # type: ignore[assignment]  # converted as Trade() does
        stored = await repo.get_by_id(await repo.insert(floated))
        assert stored is not None and stored.entry_price == Decimal("50000.5")
