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


@dataclass
class Trade:
    """A trade: opened at ``entry_time``, closed (when it is) at ``exit_time`` with its PnL.

    ``status`` is ``open`` until ``TradeRepository.close()`` or ``cancel()`` moves it to
    ``closed`` or ``cancelled``; ``timeframe`` is the bar size the strategy traded on.
    """

    trade_id: str
    symbol: str
    exchange: str
    side: str
    action: str
    entry_price: Decimal
    quantity: Decimal
    entry_time: datetime
    leverage: Decimal = Decimal(1)
    exit_price: Decimal | None = None
    exit_time: datetime | None = None
    realized_pnl: Decimal | None = None
    realized_pnl_pct: Decimal | None = None
    fee: Decimal = Decimal(0)
    signal_score: Decimal | None = None
    strategy: str | None = None
    bot_id: str | None = None
    mode: str = "live"
    metadata: dict[str, Any] | None = None
    status: str = "open"
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    exit_reason: str | None = None
    timeframe: str | None = None
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        self.trade_id = to_text("trade_id", self.trade_id)
        self.symbol = to_text("symbol", self.symbol)
        self.exchange = to_text("exchange", self.exchange)
        self.side = to_text("side", self.side, choices=SIDES)
        self.action = to_text("action", self.action, choices=ACTIONS)
        self.entry_price = to_decimal("entry_price", self.entry_price)
        self.quantity = _positive("quantity", to_decimal("quantity", self.quantity))
        self.entry_time = to_utc("entry_time", self.entry_time)
        self.leverage = _positive("leverage", to_decimal("leverage", self.leverage))
        self.exit_price = to_optional_decimal("exit_price", self.exit_price)
        self.exit_time = to_optional_utc("exit_time", self.exit_time)
        self.realized_pnl = to_optional_decimal("realized_pnl", self.realized_pnl)
        self.realized_pnl_pct = to_optional_decimal("realized_pnl_pct", self.realized_pnl_pct)
        self.fee = to_decimal("fee", self.fee)
        self.signal_score = to_optional_decimal("signal_score", self.signal_score)
        self.strategy = to_optional_text("strategy", self.strategy)
        self.bot_id = to_optional_text("bot_id", self.bot_id)
        self.mode = to_text("mode", self.mode, choices=MODES)
        self.metadata = to_json_object("metadata", self.metadata)
        self.id = _optional_id(self.id)
        self.created_at = to_optional_utc("created_at", self.created_at)
        self.updated_at = to_optional_utc("updated_at", self.updated_at)
        self.status = to_text("status", self.status, choices=TRADE_STATUSES)
        self.stop_loss = to_optional_decimal("stop_loss", self.stop_loss)
        self.take_profit = to_optional_decimal("take_profit", self.take_profit)
        self.exit_reason = to_optional_text("exit_reason", self.exit_reason)
        self.timeframe = None if self.timeframe is None else timeframes.check(self.timeframe)


@dataclass
class Position:
    """A position a bot holds (``status='open'``) or held (``'closed'``)."""

    symbol: str
    exchange: str
    side: str
    entry_price: Decimal
    quantity: Decimal
    margin: Decimal
    entry_time: datetime
    current_price: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    status: str = "open"
    leverage: Decimal = Decimal(1)
    liquidation_price: Decimal | None = None
    bot_id: str | None = None
    mode: str = "live"
    id: int | None = None
    closed_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        self.symbol = to_text("symbol", self.symbol)
        self.exchange = to_text("exchange", self.exchange)
        self.side = to_text("side", self.side, choices=SIDES)
        self.entry_price = to_decimal("entry_price", self.entry_price)
        self.quantity = _positive("quantity", to_decimal("quantity", self.quantity))
        self.margin = _not_negative("margin", to_decimal("margin", self.margin))
        self.entry_time = to_utc("entry_time", self.entry_time)
        self.current_price = to_optional_decimal("current_price", self.current_price)
        self.unrealized_pnl = to_optional_decimal("unrealized_pnl", self.unrealized_pnl)
        self.status = to_text("status", self.status, choices=POSITION_STATUSES)
        self.leverage = _positive("leverage", to_decimal("leverage", self.leverage))
        self.liquidation_price = to_optional_decimal("liquidation_price", self.liquidation_price)
        self.bot_id = to_optional_text("bot_id", self.bot_id)
        self.mode = to_text("mode", self.mode, choices=MODES)
        self.id = _optional_id(self.id)
        self.closed_at = to_optional_utc("closed_at", self.closed_at)
        self.updated_at = to_optional_utc("updated_at", self.updated_at)


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
