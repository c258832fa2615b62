"""Trades and positions, and the statistics of closed trades."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradestore import timeframes
from tradestore.domain.common import (
    ACTIONS,
    MODES,
    POSITION_STATUSES,
    SIDES,
    TRADE_STATUSES,
    _not_negative,
    _optional_id,
    _positive,
)
from tradestore.errors import InvalidTransitionError
from tradestore.values import (
    DecimalInput,
    IntInput,
    to_decimal,
    to_json_object,
    to_optional_decimal,
    to_optional_text,
    to_optional_utc,
    to_text,
    to_utc,
)

#: Every move a trade may make: state → the states it may move to.
TRADE_TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"closed", "cancelled"}),
    "closed": frozenset(),
    "cancelled": frozenset(),
}


def trade_move_sources(target: str) -> tuple[str, ...]:
    """The states a trade may move to ``target`` from."""
    return tuple(sorted(s for s, targets in TRADE_TRANSITIONS.items() if target in targets))


def check_trade_move(trade_id: int, current: str, target: str) -> None:
    """Raise unless a trade in state ``current`` may move to ``target``.

    Raises:
        InvalidTransitionError: naming the trade, its state and the state asked for.
    """
    if target not in TRADE_TRANSITIONS.get(current, frozenset()):
        raise InvalidTransitionError(
            f"trade {trade_id}: cannot move from {current!r} to {target!r}; only open trades are closed or cancelled"
        )


@dataclass(init=False)
class Trade:
    """A trade: opened at ``entry_time``, closed (when it is) at ``exit_time`` with its PnL.

    ``status`` is ``open`` until ``TradeRepository.close()`` or ``cancel()`` moves it to
    ``closed`` or ``cancelled``; ``timeframe`` is the bar size the strategy traded on.
    Money parameters accept ``Decimal``, ``int``, ``str`` and ``float`` (numpy's too); the
    attributes are always ``Decimal``. Times may be naive (taken as UTC) or aware; pandas'
    ``NaT`` in an optional time means "none".
    """

    trade_id: str
    symbol: str
    exchange: str
    side: str
    action: str
    entry_price: Decimal
    quantity: Decimal
    entry_time: datetime
    leverage: Decimal
    exit_price: Decimal | None
    exit_time: datetime | None
    realized_pnl: Decimal | None
    realized_pnl_pct: Decimal | None
    fee: Decimal
    signal_score: Decimal | None
    strategy: str | None
    bot_id: str | None
    mode: str
    metadata: dict[str, Any] | None
    status: str
    stop_loss: Decimal | None
    take_profit: Decimal | None
    exit_reason: str | None
    timeframe: str | None
    id: int | None
    created_at: datetime | None
    updated_at: datetime | None

    def __init__(
        self,
        trade_id: str,
        symbol: str,
        exchange: str,
        side: str,
        action: str,
        entry_price: DecimalInput,
        quantity: DecimalInput,
        entry_time: datetime,
        leverage: DecimalInput = 1,
        exit_price: DecimalInput | None = None,
        exit_time: datetime | None = None,
        realized_pnl: DecimalInput | None = None,
        realized_pnl_pct: DecimalInput | None = None,
        fee: DecimalInput = 0,
        signal_score: DecimalInput | None = None,
        strategy: str | None = None,
        bot_id: str | None = None,
        mode: str = "live",
        metadata: dict[str, Any] | None = None,
        status: str = "open",
        stop_loss: DecimalInput | None = None,
        take_profit: DecimalInput | None = None,
        exit_reason: str | None = None,
        timeframe: str | None = None,
        id: IntInput | None = None,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> None:
        self.trade_id = to_text("trade_id", trade_id)
        self.symbol = to_text("symbol", symbol)
        self.exchange = to_text("exchange", exchange)
        self.side = to_text("side", side, choices=SIDES)
        self.action = to_text("action", action, choices=ACTIONS)
        self.entry_price = to_decimal("entry_price", entry_price)
        self.quantity = _positive("quantity", to_decimal("quantity", quantity))
        self.entry_time = to_utc("entry_time", entry_time)
        self.leverage = _positive("leverage", to_decimal("leverage", leverage))
        self.exit_price = to_optional_decimal("exit_price", exit_price)
        self.exit_time = to_optional_utc("exit_time", exit_time)
        self.realized_pnl = to_optional_decimal("realized_pnl", realized_pnl)
        self.realized_pnl_pct = to_optional_decimal("realized_pnl_pct", realized_pnl_pct)
        self.fee = to_decimal("fee", fee)
        self.signal_score = to_optional_decimal("signal_score", signal_score)
        self.strategy = to_optional_text("strategy", strategy)
        self.bot_id = to_optional_text("bot_id", bot_id)
        self.mode = to_text("mode", mode, choices=MODES)
        self.metadata = to_json_object("metadata", metadata)
        self.status = to_text("status", status, choices=TRADE_STATUSES)
        self.stop_loss = to_optional_decimal("stop_loss", stop_loss)
        self.take_profit = to_optional_decimal("take_profit", take_profit)
        self.exit_reason = to_optional_text("exit_reason", exit_reason)
        self.timeframe = None if timeframe is None else timeframes.check(timeframe)
        self.id = _optional_id(id)
        self.created_at = to_optional_utc("created_at", created_at)
        self.updated_at = to_optional_utc("updated_at", updated_at)

    @property
    def is_closed(self) -> bool:
        """Closed: its status is not ``open``, it has a ``realized_pnl`` or an ``exit_price``, or its
        action is not ``open``."""
        return (
            self.status != "open"
            or self.realized_pnl is not None
            or self.exit_price is not None
            or self.action != "open"
        )


@dataclass(init=False)
class Position:
    """A position a bot holds (``status='open'``) or held (``'closed'``).

    Money parameters accept ``Decimal``, ``int``, ``str`` and ``float``; attributes are ``Decimal``.
    """

    symbol: str
    exchange: str
    side: str
    entry_price: Decimal
    quantity: Decimal
    margin: Decimal
    entry_time: datetime
    current_price: Decimal | None
    unrealized_pnl: Decimal | None
    status: str
    leverage: Decimal
    liquidation_price: Decimal | None
    bot_id: str | None
    mode: str
    id: int | None
    closed_at: datetime | None
    updated_at: datetime | None

    def __init__(
        self,
        symbol: str,
        exchange: str,
        side: str,
        entry_price: DecimalInput,
        quantity: DecimalInput,
        margin: DecimalInput,
        entry_time: datetime,
        current_price: DecimalInput | None = None,
        unrealized_pnl: DecimalInput | None = None,
        status: str = "open",
        leverage: DecimalInput = 1,
        liquidation_price: DecimalInput | None = None,
        bot_id: str | None = None,
        mode: str = "live",
        id: IntInput | None = None,
        closed_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> None:
        self.symbol = to_text("symbol", symbol)
        self.exchange = to_text("exchange", exchange)
        self.side = to_text("side", side, choices=SIDES)
        self.entry_price = to_decimal("entry_price", entry_price)
        self.quantity = _positive("quantity", to_decimal("quantity", quantity))
        self.margin = _not_negative("margin", to_decimal("margin", margin))
        self.entry_time = to_utc("entry_time", entry_time)
        self.current_price = to_optional_decimal("current_price", current_price)
        self.unrealized_pnl = to_optional_decimal("unrealized_pnl", unrealized_pnl)
        self.status = to_text("status", status, choices=POSITION_STATUSES)
        self.leverage = _positive("leverage", to_decimal("leverage", leverage))
        self.liquidation_price = to_optional_decimal("liquidation_price", liquidation_price)
        self.bot_id = to_optional_text("bot_id", bot_id)
        self.mode = to_text("mode", mode, choices=MODES)
        self.id = _optional_id(id)
        self.closed_at = to_optional_utc("closed_at", closed_at)
        self.updated_at = to_optional_utc("updated_at", updated_at)


@dataclass(frozen=True)
class TradeStatistics:
    """Performance of closed trades; see ``TradeRepository.get_statistics`` for the rules."""

    total_trades: int
    winning_trades: int
    losing_trades: int
    win_rate: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    net_pnl: Decimal
    total_fees: Decimal
    avg_win: Decimal
    avg_loss: Decimal
    largest_win: Decimal
    largest_loss: Decimal
    profit_factor: Decimal | None = None
