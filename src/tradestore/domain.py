"""The objects bots work with: bars, trades, positions, events, and the summaries of them.

Every dataclass validates and normalises itself on construction: money becomes ``Decimal``,
time becomes aware UTC, and anything else raises ``ValidationError`` naming the field and the
value. A constructed object is therefore always safe to store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tradestore import timeframes
from tradestore.errors import ValidationError
from tradestore.values import (
    to_count,
    to_decimal,
    to_id,
    to_json_object,
    to_optional_decimal,
    to_optional_text,
    to_optional_utc,
    to_text,
    to_utc,
)

SIDES = ("long", "short")
ACTIONS = ("open", "close", "liquidated")
MODES = ("live", "paper", "backtest")
SEVERITIES = ("debug", "info", "warning", "error", "critical")
POSITION_STATUSES = ("open", "closed")


#: The largest count a BIGINT column (and SQLite's INTEGER) holds.
_BIGINT_MAX = 2**63 - 1


def _optional_count(field: str, value: object) -> int | None:
    if value is None:
        return None
    count = to_count(field, value)
    if count > _BIGINT_MAX:
        raise ValidationError(f"{field}: {value!r} does not fit a 64-bit integer column")
    return count


def _positive(field: str, value: Decimal) -> Decimal:
    if value <= 0:
        raise ValidationError(f"{field}: must be greater than 0, got {value!r}")
    return value


def _not_negative(field: str, value: Decimal) -> Decimal:
    if value < 0:
        raise ValidationError(f"{field}: must not be negative, got {value!r}")
    return value


def _optional_id(value: object) -> int | None:
    return None if value is None else to_id("id", value)


@dataclass
class OHLCVBar:
    """One candle of ``timeframe`` starting at ``timestamp`` (a bar start, UTC)."""

    symbol: str
    exchange: str
    timeframe: str
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal | None = None
    trades_count: int | None = None
    id: int | None = None
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        self.symbol = to_text("symbol", self.symbol)
        self.exchange = to_text("exchange", self.exchange)
        self.timeframe = timeframes.check(self.timeframe)
        self.timestamp = to_utc("timestamp", self.timestamp)
        if not timeframes.is_aligned(self.timeframe, self.timestamp):
            raise ValidationError(f"timestamp: {self.timestamp.isoformat()} is not the start of a {self.timeframe} bar")
        self.open = to_decimal("open", self.open)
        self.high = to_decimal("high", self.high)
        self.low = to_decimal("low", self.low)
        self.close = to_decimal("close", self.close)
        self.volume = to_decimal("volume", self.volume)
        self.volume = _not_negative("volume", self.volume)
        self.quote_volume = to_optional_decimal("quote_volume", self.quote_volume)
        if self.quote_volume is not None:
            _not_negative("quote_volume", self.quote_volume)
        for name in ("open", "close", "low"):
            if self.high < getattr(self, name):
                raise ValidationError(f"high: {self.high} is below {name} {getattr(self, name)}")
        for name in ("open", "close"):
            if self.low > getattr(self, name):
                raise ValidationError(f"low: {self.low} is above {name} {getattr(self, name)}")
        self.trades_count = _optional_count("trades_count", self.trades_count)
        self.id = _optional_id(self.id)
        self.created_at = to_optional_utc("created_at", self.created_at)

    @classmethod
    def from_ccxt(cls, row: Sequence[object], *, exchange: str, symbol: str, timeframe: str) -> OHLCVBar:
        """A bar from one row of ccxt's ``fetch_ohlcv``: ``[timestamp_ms, open, high, low, close, volume]``.

        Floats become the ``Decimal`` of their shortest text (``0.1`` → ``Decimal('0.1')``);
        parse the JSON with ``parse_float=Decimal`` to keep every digit as sent.

        Raises:
            ValidationError: for a row of another shape, a timestamp that is not whole
                milliseconds, or any value an ``OHLCVBar`` refuses.
        """
        if isinstance(row, str | bytes) or not isinstance(row, Sequence) or len(row) != 6:
            raise ValidationError(f"ccxt row: expected [timestamp_ms, open, high, low, close, volume], got {row!r}")
        millis, *prices = row
        values: dict[str, Any] = dict(zip(("open", "high", "low", "close", "volume"), prices, strict=True))
        return cls(symbol, exchange, timeframe, _from_epoch_ms(millis), **values)

    def to_ccxt(self) -> list[int | Decimal]:
        """This bar as a ccxt ``fetch_ohlcv`` row: ``[timestamp_ms, open, high, low, close, volume]``, exact."""
        millis = (self.timestamp - timeframes.EPOCH) // timedelta(milliseconds=1)
        return [millis, self.open, self.high, self.low, self.close, self.volume]


def _from_epoch_ms(value: object) -> datetime:
    """An aware UTC datetime from whole milliseconds since the Unix epoch."""
    if (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value()
    ):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"timestamp: expected whole milliseconds since the epoch, got {value!r}")
    try:
        return timeframes.EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        raise ValidationError(f"timestamp: {value!r} ms is out of range") from None


@dataclass
class Trade:
    """A trade: opened at ``entry_time``, closed (when it is) at ``exit_time`` with its PnL."""

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


@dataclass
class SystemEvent:
    """Something worth remembering, with a severity and optional JSON ``details``."""

    event_type: str
    severity: str
    message: str
    details: dict[str, Any] | None = None
    symbol: str | None = None
    trade_id: str | None = None
    id: int | None = None
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        self.event_type = to_text("event_type", self.event_type)
        self.severity = to_text("severity", self.severity, choices=SEVERITIES)
        if not isinstance(self.message, str) or "\x00" in self.message:
            raise ValidationError(f"message: expected a string without NUL bytes, got {self.message!r}")
        self.details = to_json_object("details", self.details)
        self.symbol = to_optional_text("symbol", self.symbol)
        self.trade_id = to_optional_text("trade_id", self.trade_id)
        self.id = _optional_id(self.id)
        self.created_at = to_optional_utc("created_at", self.created_at)


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


@dataclass(frozen=True)
class SeriesInfo:
    """One stored candle series: where it starts and ends and how many bars it holds."""

    exchange: str
    symbol: str
    timeframe: str
    first: datetime
    last: datetime
    count: int
