"""Orders, their fills and their state machine.

The state machine is one table, :data:`ORDER_TRANSITIONS`, and one function that reads it,
:func:`check_move`: every change of an order's state, asked for by ``transition()`` or made
by a fill, is checked there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from tradestore.domain.common import MODES, _not_negative, _optional_id, _positive
from tradestore.errors import InvalidTransitionError, ValidationError
from tradestore.values import (
    DecimalInput,
    IntInput,
    to_decimal,
    to_id,
    to_json_object,
    to_optional_decimal,
    to_optional_text,
    to_optional_utc,
    to_text,
    to_utc,
)

ORDER_SIDES = ("buy", "sell")
ORDER_TYPES = ("market", "limit", "stop_market", "stop_limit", "take_profit", "take_profit_limit")
#: Order types that need a limit ``price``.
PRICED_TYPES = ("limit", "stop_limit", "take_profit_limit")
#: Order types that need a trigger ``stop_price``.
TRIGGERED_TYPES = ("stop_market", "stop_limit", "take_profit", "take_profit_limit")
TIME_IN_FORCE = ("gtc", "ioc", "fok", "post_only")
LIQUIDITY = ("maker", "taker")

#: Every move an order may make: state → the states it may move to.
ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"submitted", "rejected", "canceled"}),
    "submitted": frozenset({"open", "partially_filled", "filled", "rejected", "canceled", "expired"}),
    "open": frozenset({"partially_filled", "filled", "pending_cancel", "canceled", "expired"}),
    "partially_filled": frozenset({"partially_filled", "filled", "pending_cancel", "canceled", "expired"}),
    "pending_cancel": frozenset({"open", "partially_filled", "filled", "canceled"}),
    "filled": frozenset(),
    "rejected": frozenset(),
    # Exchanges report fills after a cancel or an expiry: only a fill moves these orders on.
    "canceled": frozenset({"partially_filled", "filled"}),
    "expired": frozenset({"partially_filled", "filled"}),
}
ORDER_STATUSES = tuple(ORDER_TRANSITIONS)
#: States that only a (late) fill may leave; ``transition()`` may not.
FILL_ONLY_STATES = frozenset({"canceled", "expired"})
#: States ``get_open_orders`` lists: the order may still trade without a late fill.
OPEN_ORDER_STATUSES = ("new", "submitted", "open", "partially_filled", "pending_cancel")
#: States a fill may move an order to.
FILL_STATUSES = frozenset({"partially_filled", "filled"})


@cache  # nine states: computed once per (target, by_fill), then a dict lookup on the hot path
def move_sources(target: str, *, by_fill: bool) -> tuple[str, ...]:
    """Every state an order may move to ``target`` from, ``target`` itself included (a no-op).

    This is what the one conditional ``UPDATE … WHERE status IN (…)`` of a move accepts.
    """
    found = {
        source
        for source, targets in ORDER_TRANSITIONS.items()
        if target in targets and (by_fill or source not in FILL_ONLY_STATES)
    }
    if by_fill and target == "filled":
        found.add("filled")  # a fill completing the figures of an order already reported filled
    found.add(target)
    return tuple(sorted(found))


def check_move(order_id: int | None, current: str, target: str, *, by_fill: bool) -> None:
    """Raise unless an order in state ``current`` may move to ``target``.

    Moving to the state the order is in is always allowed (a no-op: exchanges repeat status
    updates). A fill moves orders to ``partially_filled`` or ``filled`` only.

    Raises:
        InvalidTransitionError: naming the order, its state and the state asked for.
    """
    if current not in move_sources(target, by_fill=by_fill) or (by_fill and target not in FILL_STATUSES):
        how = "a fill" if by_fill else "transition()"
        hint = " (record its submission first)" if by_fill and current == "new" else ""
        raise InvalidTransitionError(
            f"order {order_id}: {how} cannot move it from {current!r} to {target!r}{hint}; "
            f"allowed from {current!r}: {', '.join(sorted(_targets(current, by_fill))) or 'none'}"
        )


def _targets(current: str, by_fill: bool) -> frozenset[str]:
    if not by_fill and current in FILL_ONLY_STATES:
        return frozenset()
    return ORDER_TRANSITIONS[current] & FILL_STATUSES if by_fill else ORDER_TRANSITIONS[current]


def quote_currency(symbol: str) -> str | None:
    """The quote currency of a ccxt-style symbol: ``'BTC/USDT'`` and ``'BTC/USDT:USDT'`` give ``'USDT'``.

    A symbol without ``'/'`` (an exchange's own id such as ``'BTCUSDT'``) names none: ``None``.
    """
    base, slash, rest = symbol.partition("/")
    if not slash or not base:
        return None
    quote = rest.partition(":")[0]
    return quote or None


def fee_in_quote(symbol: str, currency: str | None) -> bool:
    """Whether a fee in ``currency`` counts in an order's ``fee_total``.

    A fee without a currency is taken to be in the quote currency. For a symbol with ``'/'`` the
    currency must equal :func:`quote_currency`; for one without (``'BTCUSDT'``) it must be a
    proper suffix of the symbol (``'USDT'``), the way exchanges spell their own ids.
    """
    if currency is None:
        return True
    quote = quote_currency(symbol)
    if quote is not None:
        return currency == quote
    return "/" not in symbol and len(currency) < len(symbol) and symbol.endswith(currency)


@dataclass(init=False)
class Order:
    """An order a bot placed; ``client_order_id`` is the bot's id, unique per exchange.

    ``filled_quantity``, ``average_fill_price`` and ``fee_total`` are maintained by the store
    from the fills it records; ``OrderRepository.create`` refuses other values.
    """

    client_order_id: str
    symbol: str
    exchange: str
    side: str
    order_type: str
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    status: str
    exchange_order_id: str | None
    trade_id: int | None
    bot_id: str | None
    mode: str
    time_in_force: str | None
    reduce_only: bool
    reason: str | None
    metadata: dict[str, Any] | None
    filled_quantity: Decimal
    average_fill_price: Decimal | None
    fee_total: Decimal
    id: int | None
    created_at: datetime | None
    updated_at: datetime | None

    def __init__(
        self,
        client_order_id: str,
        symbol: str,
        exchange: str,
        side: str,
        order_type: str,
        quantity: DecimalInput,
        price: DecimalInput | None = None,
        stop_price: DecimalInput | None = None,
        status: str = "new",
        exchange_order_id: str | None = None,
        trade_id: IntInput | None = None,
        bot_id: str | None = None,
        mode: str = "live",
        time_in_force: str | None = None,
        reduce_only: bool = False,
        reason: str | None = None,
        metadata: dict[str, Any] | None = None,
        filled_quantity: DecimalInput = 0,
        average_fill_price: DecimalInput | None = None,
        fee_total: DecimalInput = 0,
        id: IntInput | None = None,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> None:
        self.client_order_id = to_text("client_order_id", client_order_id)
        self.symbol = to_text("symbol", symbol)
        self.exchange = to_text("exchange", exchange)
        self.side = to_text("side", side, choices=ORDER_SIDES)
        self.order_type = to_text("order_type", order_type, choices=ORDER_TYPES)
        self.quantity = _positive("quantity", to_decimal("quantity", quantity))
        self.price = to_optional_decimal("price", price)
        if self.price is not None:
            _positive("price", self.price)
        elif self.order_type in PRICED_TYPES:
            raise ValidationError(f"price: a {self.order_type} order needs a price, got None")
        self.stop_price = to_optional_decimal("stop_price", stop_price)
        if self.stop_price is not None:
            _positive("stop_price", self.stop_price)
        elif self.order_type in TRIGGERED_TYPES:
            raise ValidationError(f"stop_price: a {self.order_type} order needs a stop_price, got None")
        self.status = to_text("status", status, choices=ORDER_STATUSES)
        self.exchange_order_id = to_optional_text("exchange_order_id", exchange_order_id)
        self.trade_id = None if trade_id is None else to_id("trade_id", trade_id)
        self.bot_id = to_optional_text("bot_id", bot_id)
        self.mode = to_text("mode", mode, choices=MODES)
        self.time_in_force = (
            None if time_in_force is None else to_text("time_in_force", time_in_force, choices=TIME_IN_FORCE)
        )
        if not isinstance(reduce_only, bool):
            raise ValidationError(f"reduce_only: expected True or False, got {reduce_only!r}")
        self.reduce_only = reduce_only
        self.reason = to_optional_text("reason", reason)
        self.metadata = to_json_object("metadata", metadata)
        self.filled_quantity = _not_negative("filled_quantity", to_decimal("filled_quantity", filled_quantity))
        if self.filled_quantity > self.quantity:
            raise ValidationError(f"filled_quantity: {self.filled_quantity} is above quantity {self.quantity}")
        self.average_fill_price = to_optional_decimal("average_fill_price", average_fill_price)
        self.fee_total = to_decimal("fee_total", fee_total)
        self.id = _optional_id(id)
        self.created_at = to_optional_utc("created_at", created_at)
        self.updated_at = to_optional_utc("updated_at", updated_at)

    @property
    def is_open(self) -> bool:
        """Whether the order may still trade (one of :data:`OPEN_ORDER_STATUSES`)."""
        return self.status in OPEN_ORDER_STATUSES


@dataclass(init=False)
class Fill:
    """One execution of an order, as the exchange reports it.

    The key is (``exchange``, ``client_order_id``, ``exchange_trade_id``): venues reuse trade ids
    across the partial fills of different orders, so the trade id alone is not unique.
    ``order_id`` is set by the store when it reads a fill back.
    """

    exchange: str
    symbol: str
    client_order_id: str
    exchange_trade_id: str
    side: str
    price: Decimal
    quantity: Decimal
    timestamp: datetime
    fee: Decimal
    fee_currency: str | None
    liquidity: str | None
    id: int | None
    order_id: int | None

    def __init__(
        self,
        exchange: str,
        symbol: str,
        client_order_id: str,
        exchange_trade_id: str,
        side: str,
        price: DecimalInput,
        quantity: DecimalInput,
        timestamp: datetime,
        fee: DecimalInput = 0,
        fee_currency: str | None = None,
        liquidity: str | None = None,
        id: IntInput | None = None,
        order_id: IntInput | None = None,
    ) -> None:
        self.exchange = to_text("exchange", exchange)
        self.symbol = to_text("symbol", symbol)
        self.client_order_id = to_text("client_order_id", client_order_id)
        self.exchange_trade_id = to_text("exchange_trade_id", exchange_trade_id)
        self.side = to_text("side", side, choices=ORDER_SIDES)
        self.price = _positive("price", to_decimal("price", price))
        self.quantity = _positive("quantity", to_decimal("quantity", quantity))
        self.timestamp = to_utc("timestamp", timestamp)
        # A negative fee is a rebate (maker rebates exist), so any finite fee is accepted.
        self.fee = to_decimal("fee", fee)
        self.fee_currency = to_optional_text("fee_currency", fee_currency)
        self.liquidity = None if liquidity is None else to_text("liquidity", liquidity, choices=LIQUIDITY)
        self.id = _optional_id(id)
        self.order_id = None if order_id is None else to_id("order_id", order_id)


@dataclass(frozen=True)
class OrderStatusChange:
    """One entry of an order's history: the state it entered, when, why, and the state it left."""

    order_id: int
    status: str
    previous_status: str | None
    at: datetime
    reason: str | None = None
    id: int | None = None
