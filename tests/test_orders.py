"""OrderRepository on SQLite and PostgreSQL: the state table, the history, and the fill ledger."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest

from factories import trade
from tradestore import ALL_EXCHANGES, DatabaseManager, Fill, Order, OrderRepository, TradeRepository
from tradestore.domain import ORDER_STATUSES, ORDER_TRANSITIONS
from tradestore.domain.orders import fee_in_quote, quote_currency
from tradestore.errors import (
    ConflictError,
    DuplicateError,
    InvalidTransitionError,
    NotFoundError,
    ValidationError,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def order(client_order_id: str = "c-1", **fields: Any) -> Order:
    """A limit buy of 1 BTC/USDT at 50000 on binance."""
    values: dict[str, Any] = {
        "client_order_id": client_order_id,
        "symbol": "BTC/USDT",
        "exchange": "binance",
        "side": "buy",
        "order_type": "limit",
        "quantity": "1",
        "price": "50000",
    }
    values.update(fields)
    return Order(**values)


def fill(trade_id: str, quantity: str, price: str = "50000", *, client_order_id: str = "c-1", **fields: Any) -> Fill:
    values: dict[str, Any] = {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "client_order_id": client_order_id,
        "exchange_trade_id": trade_id,
        "side": "buy",
        "price": price,
        "quantity": quantity,
        "timestamp": T0 + timedelta(seconds=int(trade_id.strip("t") or 0)),
    }
    values.update(fields)
    return Fill(**values)


async def submitted(db: DatabaseManager, **fields: Any) -> int:
    """Create an order (``order(**fields)``) and move it to submitted; its id."""
    async with db.get_session() as session:
        orders = OrderRepository(session)
        order_id = await orders.create(order(**fields))
        await orders.transition(order_id, "submitted")
    return order_id


# --- create and read --------------------------------------------------------------------


async def test_create_and_read_back_exactly(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        trade_id = await TradeRepository(session).insert(trade(1))
        orders = OrderRepository(session)
        order_id = await orders.create(
            order(
                quantity="0.123456789012345678",
                price="123456789012.12345678",
                order_type="stop_limit",
                stop_price="0.00000001",
                trade_id=trade_id,
                bot_id="grid-1",
                mode="paper",
                time_in_force="post_only",
                reduce_only=True,
                reason="breakout",
                metadata={"signal": Decimal("0.85")},
            )
        )
    async with db.get_session() as session:
        got = await OrderRepository(session).get(order_id)
        by_client = await OrderRepository(session).get_by_client_id("c-1")
    assert got is not None and got == by_client
    assert got.id == order_id and got.status == "new" and got.trade_id == trade_id
    assert got.quantity == Decimal("0.123456789012345678") and got.price == Decimal("123456789012.12345678")
    assert got.stop_price == Decimal("0.00000001") and got.reduce_only is True and got.time_in_force == "post_only"
    assert (got.filled_quantity, got.average_fill_price, got.fee_total) == (Decimal(0), None, Decimal(0))
    assert got.metadata == {"signal": "0.85"} and got.created_at is not None and got.created_at.tzinfo is UTC


async def test_client_order_id_is_unique_per_exchange(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        orders = OrderRepository(session)
        first = await orders.create(order())
        await orders.create(order(exchange="kraken"))
        with pytest.raises(DuplicateError, match="c-1"):
            await orders.create(order(quantity="2"))
        # the session is still usable and the first order unchanged
        stored = await orders.get(first)
        assert stored is not None and stored.quantity == 1


async def test_get_by_client_id_uses_the_managers_exchange(db_on_kraken: DatabaseManager) -> None:
    db = db_on_kraken
    async with db.get_session() as session:
        orders = OrderRepository(session)
        await orders.create(order(exchange="kraken"))
        await orders.create(order(exchange="binance", quantity="2"))
        assert (await orders.get_by_client_id("c-1")).exchange == "kraken"  # type: ignore[union-attr]
        assert (await orders.get_by_client_id("c-1", "binance")).quantity == 2  # type: ignore[union-attr]
        assert await orders.get_by_client_id("missing") is None


async def test_get_open_orders_reads_the_managers_exchange_or_all_of_them(db_on_kraken: DatabaseManager) -> None:
    db = db_on_kraken
    async with db.get_session() as session:
        orders = OrderRepository(session)
        await orders.create(order("k", exchange="kraken"))
        await orders.create(order("b", exchange="binance"))
        assert [o.exchange for o in await orders.get_open_orders()] == ["kraken"]
        assert [o.exchange for o in await orders.get_open_orders("binance")] == ["binance"]
        everywhere = await orders.get_open_orders(ALL_EXCHANGES)
        assert sorted(o.exchange for o in everywhere) == ["binance", "kraken"]
        with pytest.raises(ValidationError, match="exchange"):
            await orders.get_open_orders("")


async def test_create_refuses_store_kept_figures_and_unknown_trades(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        orders = OrderRepository(session)
        with pytest.raises(ValidationError, match="filled_quantity"):
            await orders.create(order(filled_quantity="0.5"))
        with pytest.raises(ValidationError, match="fee_total"):
            await orders.create(order(fee_total="1"))
        with pytest.raises(ValidationError, match="status"):
            await orders.create(order(status="filled"))
        assert await orders.get_open_orders() == []
    with pytest.raises(NotFoundError, match="trade_id"):
        async with db.get_session() as session:
            await OrderRepository(session).create(order(trade_id=999))
    async with db.get_session() as session:
        assert await OrderRepository(session).get_open_orders() == []


def test_order_validation() -> None:
    with pytest.raises(ValidationError, match="price"):
        order(price=None)
    with pytest.raises(ValidationError, match="stop_price"):
        order(order_type="stop_market", price=None)
    with pytest.raises(ValidationError, match="quantity"):
        order(quantity="0")
    with pytest.raises(ValidationError, match="side"):
        order(side="long")
    with pytest.raises(ValidationError, match="time_in_force"):
        order(time_in_force="day")
    with pytest.raises(ValidationError, match="order_type"):
        order(order_type="iceberg")
    with pytest.raises(ValidationError, match="mode"):
        order(mode="dry")
    assert order(order_type="market", price=None).price is None
    assert order(order_type="take_profit", price=None, stop_price=60000).stop_price == 60000
    with pytest.raises(ValidationError, match="liquidity"):
        fill("t1", "1", liquidity="both")
    with pytest.raises(ValidationError, match="quantity"):
        fill("t1", "-1")


# --- the state table --------------------------------------------------------------------

ALLOWED = {
    "new": {"submitted", "rejected", "canceled"},
    "submitted": {"open", "partially_filled", "filled", "rejected", "canceled", "expired"},
    "open": {"partially_filled", "filled", "pending_cancel", "canceled", "expired"},
    "partially_filled": {"partially_filled", "filled", "pending_cancel", "canceled", "expired"},
    "pending_cancel": {"open", "partially_filled", "filled", "canceled"},
}
#: A way to reach each state with transition() from new.
PATHS = {
    "new": [],
    "submitted": ["submitted"],
    "open": ["submitted", "open"],
    "partially_filled": ["submitted", "partially_filled"],
    "pending_cancel": ["submitted", "open", "pending_cancel"],
    "filled": ["submitted", "filled"],
    "rejected": ["rejected"],
    "canceled": ["canceled"],
    "expired": ["submitted", "expired"],
}


def test_the_state_table_is_the_issues() -> None:
    for state in ORDER_STATUSES:
        if state in ("canceled", "expired"):
            continue  # only late fills leave these
        assert set(ORDER_TRANSITIONS[state]) == ALLOWED.get(state, set()), state


async def test_every_move_of_the_table_and_no_other(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        orders = OrderRepository(session)
        n = 0
        for current in ORDER_STATUSES:
            for target in ORDER_STATUSES:
                n += 1
                order_id = await orders.create(order(f"m-{n}"))
                for step in PATHS[current]:
                    await orders.transition(order_id, step)
                before = await orders.get(order_id)
                history = await orders.get_history(order_id)
                assert before is not None and before.status == current
                if target == current or target in ALLOWED.get(current, set()):
                    moved = await orders.transition(order_id, target, reason="why", exchange_order_id="X")
                    assert moved.status == target
                    after = await orders.get_history(order_id)
                    if target == current:  # a no-op: nothing written
                        assert after == history and moved == before
                    else:
                        assert after[-1].status == target and after[-1].previous_status == current
                        assert after[-1].reason == "why" and moved.exchange_order_id == "X"
                else:
                    with pytest.raises(InvalidTransitionError) as caught:
                        await orders.transition(order_id, target)
                    message = str(caught.value)
                    assert f"order {order_id}" in message and repr(current) in message and repr(target) in message
                    assert await orders.get(order_id) == before and await orders.get_history(order_id) == history


async def test_transition_errors(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        orders = OrderRepository(session)
        with pytest.raises(NotFoundError):
            await orders.transition(12345, "submitted")
        order_id = await orders.create(order())
        with pytest.raises(ValidationError, match="status"):
            await orders.transition(order_id, "done")
        with pytest.raises(ValidationError, match="order_id"):
            await orders.transition("1", "submitted")  # type: ignore[arg-type]


async def test_history_keeps_every_change_with_time_and_reason(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        orders = OrderRepository(session)
        order_id = await orders.create(order(reason="signal"))
        await orders.transition(order_id, "submitted", at=T0)
        await orders.transition(order_id, "open", exchange_order_id="E-1", at=T0 + timedelta(seconds=1))
        await orders.transition(order_id, "open")  # repeated by the exchange: no-op
        await orders.transition(order_id, "pending_cancel", reason="timeout", at=T0 + timedelta(seconds=2))
        await orders.transition(order_id, "canceled", reason="user", at=T0 + timedelta(seconds=3))
        history = await orders.get_history(order_id)
        assert [(h.previous_status, h.status, h.reason) for h in history] == [
            (None, "new", "signal"),
            ("new", "submitted", None),
            ("submitted", "open", None),
            ("open", "pending_cancel", "timeout"),
            ("pending_cancel", "canceled", "user"),
        ]
        assert [h.at for h in history[1:]] == [T0 + timedelta(seconds=s) for s in range(4)]
        assert (await orders.get(order_id)).exchange_order_id == "E-1"  # type: ignore[union-attr]
        with pytest.raises(NotFoundError):
            await orders.get_history(order_id + 100)


async def test_two_racing_transitions_one_wins(fresh_url: str) -> None:
    async with DatabaseManager(fresh_url) as db:
        await db.create_all()
        for n in range(5):
            async with db.get_session() as session:
                order_id = await OrderRepository(session).create(order(f"r-{n}"))
                await OrderRepository(session).transition(order_id, "submitted")
                await OrderRepository(session).transition(order_id, "open")

            async def move(target: str, order_id: int = order_id) -> str:
                try:
                    async with db.get_session() as session:
                        await OrderRepository(session).transition(order_id, target)
                    return target
                except InvalidTransitionError:
                    return "lost"

            results = await asyncio.gather(move("filled"), move("expired"))
            assert sorted(results).count("lost") == 1, results
            async with db.get_session() as session:
                stored = await OrderRepository(session).get(order_id)
                history = await OrderRepository(session).get_history(order_id)
            winner = next(r for r in results if r != "lost")
            assert stored is not None and stored.status == winner
            assert [h.status for h in history] == ["new", "submitted", "open", winner]


async def test_get_open_orders_filters(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        orders = OrderRepository(session)
        a = await orders.create(order("a", bot_id="b1"))
        b = await orders.create(order("b", symbol="ETH/USDT", bot_id="b2", mode="paper"))
        c = await orders.create(order("c", exchange="kraken"))
        d = await orders.create(order("d"))
        await orders.transition(d, "rejected")
        e = await orders.create(order("e"))
        await orders.transition(e, "canceled")
        assert [o.id for o in await orders.get_open_orders()] == [a, b]  # the manager's exchange
        assert [o.id for o in await orders.get_open_orders(ALL_EXCHANGES)] == [a, b, c]
        assert [o.id for o in await orders.get_open_orders("binance")] == [a, b]
        assert [o.id for o in await orders.get_open_orders(symbol="ETH/USDT")] == [b]
        assert [o.id for o in await orders.get_open_orders(bot_id="b1")] == [a]
        assert [o.id for o in await orders.get_open_orders(mode="paper")] == [b]
        assert [o.id for o in await orders.get_open_orders("kraken", mode="live")] == [c]


async def test_orders_of_a_trade(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        trades = TradeRepository(session)
        t1, t2 = await trades.insert(trade(1)), await trades.insert(trade(2))
        orders = OrderRepository(session)
        entry = await orders.create(order("entry", trade_id=t1))
        exit_ = await orders.create(order("exit", trade_id=t1, side="sell"))
        await orders.create(order("other"))
        assert [o.id for o in await orders.get_orders_of_trade(t1)] == [entry, exit_]
        assert await orders.get_orders_of_trade(t2) == []
        with pytest.raises(NotFoundError):
            await orders.get_orders_of_trade(t2 + 100)


# --- fills ------------------------------------------------------------------------------


async def test_fills_update_the_order_exactly(db: DatabaseManager) -> None:
    order_id = await submitted(db, quantity="1")
    async with db.get_session() as session:
        orders = OrderRepository(session)
        assert await orders.record_fill(fill("t1", "0.3", "50000.1", fee="0.015", fee_currency="USDT")) is True
        got = await orders.get(order_id)
        assert got is not None and got.status == "partially_filled"
        assert await orders.record_fill(fill("t2", "0.7", "49999.95", fee="0.00001", fee_currency="BNB")) is True
        got = await orders.get(order_id)
        fills = await orders.get_fills(order_id)
        fees = await orders.get_fees(order_id)
        history = await orders.get_history(order_id)
    assert got is not None and got.status == "filled"
    assert got.filled_quantity == Decimal("1.0")
    value = Decimal("50000.1") * Decimal("0.3") + Decimal("49999.95") * Decimal("0.7")
    assert got.average_fill_price == value.quantize(Decimal(10) ** -18, rounding=ROUND_HALF_EVEN)
    assert got.fee_total == Decimal("0.015")  # the BNB fee is not in the quote currency
    assert fees == {"USDT": Decimal("0.015"), "BNB": Decimal("0.00001")}
    assert [(f.exchange_trade_id, f.order_id) for f in fills] == [("t1", order_id), ("t2", order_id)]
    assert [h.status for h in history] == ["new", "submitted", "partially_filled", "filled"]
    assert history[-1].reason == "fill t2" and history[-1].at == fills[1].timestamp


async def test_the_same_fill_twice_is_recorded_once(db: DatabaseManager) -> None:
    order_id = await submitted(db)
    async with db.get_session() as session:
        orders = OrderRepository(session)
        assert await orders.record_fill(fill("t1", "0.4", fee="0.1")) is True
        # the same report again, even with its numbers spelled differently
        assert await orders.record_fill(fill("t1", "0.40", fee="0.10")) is False
        assert await orders.record_fill(fill("t2", "0.6")) is True
        assert await orders.record_fill(fill("t2", "0.6")) is False  # the order is filled: still False
        got = await orders.get(order_id)
        assert (
            got is not None and got.filled_quantity == 1 and got.status == "filled" and got.fee_total == Decimal("0.1")
        )
        assert len(await orders.get_fills(order_id)) == 2


async def test_the_key_includes_the_order(db: DatabaseManager) -> None:
    """Venues reuse trade ids across partial fills of different orders."""
    first = await submitted(db, client_order_id="c-1")
    second = await submitted(db, client_order_id="c-2")
    async with db.get_session() as session:
        orders = OrderRepository(session)
        assert await orders.record_fill(fill("t1", "0.5", client_order_id="c-1")) is True
        assert await orders.record_fill(fill("t1", "0.25", client_order_id="c-2")) is True
        assert (await orders.get(first)).filled_quantity == Decimal("0.5")  # type: ignore[union-attr]
        assert (await orders.get(second)).filled_quantity == Decimal("0.25")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "changed",
    [{"price": "50001"}, {"quantity": "0.5"}, {"fee": "0.2"}, {"fee_currency": "BNB"}, {"timestamp": T0}],
)
async def test_the_same_key_with_other_values_is_a_conflict(db: DatabaseManager, changed: dict[str, Any]) -> None:
    order_id = await submitted(db)
    async with db.get_session() as session:
        assert await OrderRepository(session).record_fill(fill("t1", "0.4", fee="0.1")) is True
    async with db.get_session() as session:
        orders = OrderRepository(session)
        before = await orders.get(order_id)
        with pytest.raises(ConflictError) as caught:
            await orders.record_fill(_changed(fill("t1", "0.4", fee="0.1"), changed))
        message = str(caught.value)
        assert "'t1'" in message and "stored as" in message and "now reported as" in message
        assert await orders.get(order_id) == before and len(await orders.get_fills(order_id)) == 1


@pytest.mark.parametrize(("first", "again"), [(None, "USDT"), ("USDT", None)])
async def test_a_fee_currency_of_none_is_the_quote_currency_on_replay(
    db: DatabaseManager, first: str | None, again: str | None
) -> None:
    order_id = await submitted(db)
    async with db.get_session() as session:
        assert await OrderRepository(session).record_fill(fill("t1", "0.4", fee="0.1", fee_currency=first)) is True
    async with db.get_session() as session:
        orders = OrderRepository(session)
        before = await orders.get(order_id)
        assert await orders.record_fill(fill("t1", "0.4", fee="0.1", fee_currency=again)) is False
        assert await orders.get(order_id) == before and len(await orders.get_fills(order_id)) == 1
        with pytest.raises(ConflictError, match="BNB"):  # another currency still conflicts
            await orders.record_fill(fill("t1", "0.4", fee="0.1", fee_currency="BNB"))


async def test_a_fee_currency_of_none_on_a_symbol_without_a_slash_names_no_currency(db: DatabaseManager) -> None:
    await submitted(db, symbol="BTCUSDT")
    async with db.get_session() as session:
        orders = OrderRepository(session)
        assert await orders.record_fill(fill("t1", "0.4", symbol="BTCUSDT", fee="0.1")) is True
        with pytest.raises(ConflictError):  # get_fees keys it under None, not 'USDT'
            await orders.record_fill(fill("t1", "0.4", symbol="BTCUSDT", fee="0.1", fee_currency="USDT"))


def _changed(original: Fill, changed: dict[str, Any]) -> Fill:
    return Fill(**(vars(original) | changed))


async def test_fill_errors_write_nothing(db: DatabaseManager) -> None:
    order_id = await submitted(db, quantity="1")
    async with db.get_session() as session:
        orders = OrderRepository(session)
        await orders.record_fill(fill("t1", "0.6"))
        before, fills, history = (
            await orders.get(order_id),
            await orders.get_fills(order_id),
            await orders.get_history(order_id),
        )
        with pytest.raises(ValidationError, match=r"0\.5.*1\.1.*quantity 1") as caught:
            await orders.record_fill(fill("t2", "0.5"))
        assert not isinstance(caught.value, ConflictError)
        with pytest.raises(NotFoundError):
            await orders.record_fill(fill("t3", "0.1", client_order_id="nobody"))
        with pytest.raises(ValidationError, match="symbol"):
            await orders.record_fill(fill("t4", "0.1", symbol="ETH/USDT"))
        with pytest.raises(ValidationError, match="side"):
            await orders.record_fill(fill("t5", "0.1", side="sell"))
        with pytest.raises(ValidationError, match="order_id"):
            await orders.record_fill(fill("t6", "0.1", order_id=order_id + 1))
        assert await orders.get(order_id) == before
        assert await orders.get_fills(order_id) == fills and await orders.get_history(order_id) == history


async def test_fills_follow_the_state_table(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        orders = OrderRepository(session)
        new = await orders.create(order("new"))
        rejected = await orders.create(order("rejected"))
        await orders.transition(rejected, "rejected")
        for client_order_id in ("new", "rejected"):
            with pytest.raises(InvalidTransitionError, match="a fill cannot move it"):
                await orders.record_fill(fill("t1", "0.1", client_order_id=client_order_id))
        assert await orders.get_fills(new) == [] and await orders.get_fills(rejected) == []


@pytest.mark.parametrize("final", ["canceled", "expired"])
async def test_late_fills_move_canceled_and_expired_orders(db: DatabaseManager, final: str) -> None:
    order_id = await submitted(db)
    async with db.get_session() as session:
        orders = OrderRepository(session)
        await orders.record_fill(fill("t1", "0.25"))
        await orders.transition(order_id, final)
        assert await orders.get_open_orders() == []
        assert await orders.record_fill(fill("t2", "0.25")) is True
        assert (await orders.get(order_id)).status == "partially_filled"  # type: ignore[union-attr]
        await orders.transition(order_id, final)
        assert await orders.record_fill(fill("t3", "0.5")) is True
        got = await orders.get(order_id)
        assert got is not None and got.status == "filled" and got.filled_quantity == 1
        # transition() itself cannot leave canceled/expired
        await orders.transition(order_id, "filled")  # the same state: a no-op
        late = await orders.create(order("late"))
        await orders.transition(late, "canceled")
        with pytest.raises(InvalidTransitionError, match="transition"):
            await orders.transition(late, "partially_filled")


async def test_a_fill_for_an_order_reported_filled_completes_its_figures(db: DatabaseManager) -> None:
    order_id = await submitted(db)
    async with db.get_session() as session:
        orders = OrderRepository(session)
        await orders.transition(order_id, "filled")  # the status update came before the trades
        assert await orders.record_fill(fill("t1", "0.5")) is True
        assert await orders.record_fill(fill("t2", "0.5")) is True
        got = await orders.get(order_id)
        assert got is not None and got.status == "filled" and got.filled_quantity == 1
        assert [h.status for h in await orders.get_history(order_id)] == ["new", "submitted", "filled"]


async def test_fees_without_currency_and_symbols_without_slash(db: DatabaseManager) -> None:
    perp = await submitted(db, client_order_id="perp", symbol="BTC/USDT:USDT")
    raw = await submitted(db, client_order_id="raw", symbol="BTCUSDT")
    async with db.get_session() as session:
        orders = OrderRepository(session)
        base = {"client_order_id": "perp", "symbol": "BTC/USDT:USDT"}
        await orders.record_fill(fill("t1", "0.1", fee="0.5", **base))
        await orders.record_fill(fill("t2", "0.1", fee="0.25", fee_currency="USDT", **base))
        await orders.record_fill(fill("t3", "0.1", fee="-0.01", fee_currency="USDT", **base))  # a maker rebate
        raw_fills = {"client_order_id": "raw", "symbol": "BTCUSDT"}
        await orders.record_fill(fill("t1", "0.1", fee="0.5", **raw_fills))
        await orders.record_fill(fill("t2", "0.1", fee="0.25", fee_currency="USDT", **raw_fills))
        await orders.record_fill(fill("t3", "0.1", fee="0.001", fee_currency="BNB", **raw_fills))
        assert (await orders.get(perp)).fee_total == Decimal("0.74")  # type: ignore[union-attr]
        assert await orders.get_fees(perp) == {"USDT": Decimal("0.74")}
        assert (await orders.get(raw)).fee_total == Decimal("0.75")  # type: ignore[union-attr]
        assert await orders.get_fees(raw) == {None: Decimal("0.5"), "USDT": Decimal("0.25"), "BNB": Decimal("0.001")}
        fresh = await orders.create(order("fresh"))
        assert await orders.get_fees(fresh) == {} and await orders.get_fills(fresh) == []
        with pytest.raises(NotFoundError):
            await orders.get_fees(fresh + 100)
        with pytest.raises(NotFoundError):
            await orders.get_fills(fresh + 100)


def test_quote_currency() -> None:
    assert quote_currency("BTC/USDT") == "USDT"
    assert quote_currency("BTC/USDT:USDT") == "USDT"
    assert quote_currency("BTC/USD:BTC") == "USD"
    assert quote_currency("BTCUSDT") is None
    assert fee_in_quote("BTCUSDT", "USDT") and fee_in_quote("ETHBTC", "BTC") and fee_in_quote("BTCUSDT", None)
    assert not fee_in_quote("BTCUSDT", "USD") and not fee_in_quote("BTCUSDT", "BNB")
    assert not fee_in_quote("BTC/USDT", "BTC") and not fee_in_quote("BTCUSDT", "BTCUSDT")


async def test_figures_match_a_plain_python_reference_on_random_fills(db: DatabaseManager) -> None:
    rng = random.Random(10)
    reference: dict[str, dict[str, Any]] = {}
    async with db.get_session() as session:
        orders = OrderRepository(session)
        for n in range(6):
            coid = f"o-{n}"
            parts = [Decimal(rng.randint(1, 10**8)).scaleb(-rng.randint(0, 12)) for _ in range(rng.randint(1, 8))]
            quantity = sum(parts, Decimal(0))
            order_id = await orders.create(order(coid, quantity=quantity, symbol="ETH/USDC"))
            await orders.transition(order_id, "submitted")
            fees = Decimal(0)
            for i, part in enumerate(parts):
                price = Decimal(rng.randint(1, 10**12)).scaleb(-rng.randint(0, 10))
                fee = Decimal(rng.randint(0, 10**6)).scaleb(-8)
                currency = rng.choice([None, "USDC", "ETH"])
                await orders.record_fill(
                    fill(
                        f"t{i}",
                        str(part),
                        str(price),
                        client_order_id=coid,
                        symbol="ETH/USDC",
                        fee=fee,
                        fee_currency=currency,
                    )
                )
                if currency in (None, "USDC"):
                    fees += fee
            reference[coid] = {"id": order_id, "quantity": quantity, "fees": fees, "parts": parts}
        for ref in reference.values():
            got = await orders.get(ref["id"])
            assert got is not None and got.status == "filled" and got.filled_quantity == ref["quantity"]
            exact = _exact_average(ref["parts"], [f.price for f in await orders.get_fills(ref["id"])])
            assert got.average_fill_price == exact
            assert got.fee_total == ref["fees"]


def _exact_average(quantities: list[Decimal], prices: list[Decimal]) -> Decimal:
    """Σ(p·q)/Σq rounded half-even to 18 places, by hand with integers."""
    from fractions import Fraction

    total = sum((Fraction(p) * Fraction(q) for p, q in zip(prices, quantities, strict=True)), Fraction(0))
    scaled = total * 10**18 / sum((Fraction(q) for q in quantities), Fraction(0))
    whole, rest = divmod(scaled.numerator, scaled.denominator)
    twice = 2 * rest
    if twice > scaled.denominator or (twice == scaled.denominator and whole % 2 == 1):
        whole += 1
    return Decimal(whole).scaleb(-18)


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("sNaN"), float("inf"), "-Infinity", "abc", True, None, [1]])
def test_every_number_of_orders_and_fills_refuses_non_numbers(bad: object) -> None:
    for field in ("quantity", "price", "stop_price"):
        if bad is None and field != "quantity":
            continue  # optional
        with pytest.raises(ValidationError, match=field):
            changed: dict[str, Any] = {"order_type": "stop_limit", "stop_price": "1", field: bad}
            order(**changed)
    for field in ("price", "quantity", "fee"):
        with pytest.raises(ValidationError, match=field):
            _changed(fill("t1", "1"), {field: bad})
    with pytest.raises(ValidationError, match="timestamp"):
        _changed(fill("t1", "1"), {"timestamp": "2024-01-01"})


async def test_create_checks_an_order_changed_after_construction_and_writes_nothing(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        orders = OrderRepository(session)
        for name, value in (("status", "closed"), ("quantity", Decimal(-1)), ("side", "BUY"), ("price", None)):
            changed = order("m1")
            setattr(changed, name, value)
            with pytest.raises(ValidationError, match=name):
                await orders.create(changed)
        assert await orders.get_open_orders(ALL_EXCHANGES) == [] and await orders.get_by_client_id("m1") is None
        floated = order("m2")
        floated.quantity = 0.5  # type: ignore[assignment]  # what Order() takes, converted as Order() does
        stored = await orders.get(await orders.create(floated))
        assert stored is not None and stored.quantity == Decimal("0.5")


async def test_record_fill_checks_a_fill_changed_after_construction_and_writes_nothing(db: DatabaseManager) -> None:
    order_id = await submitted(db)
    async with db.get_session() as session:
        orders = OrderRepository(session)
        before = await orders.get(order_id)
        for name, value in (("quantity", Decimal("-0.5")), ("price", Decimal(0)), ("timestamp", "2024-01-01")):
            changed = fill("t1", "0.5")
            setattr(changed, name, value)
            with pytest.raises(ValidationError, match=name):
                await orders.record_fill(changed)
        assert await orders.get(order_id) == before and await orders.get_fills(order_id) == []
        floated = fill("t2", "0.5")
        floated.quantity, floated.price = 0.5, 50000.1  # type: ignore[assignment]  # converted as Fill() does
        assert await orders.record_fill(floated) is True
        after = await orders.get(order_id)
        assert after is not None and after.filled_quantity == Decimal("0.5")
        assert after.average_fill_price == Decimal("50000.1")
