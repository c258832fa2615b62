"""Candles: one bar, and what is stored of a series."""

from __future__ import annotations

import numbers
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tradestore import timeframes
from tradestore.domain.common import _not_negative, _optional_count, _optional_id
from tradestore.errors import ValidationError
from tradestore.values import (
    DecimalInput,
    IntInput,
    to_decimal,
    to_optional_decimal,
    to_optional_utc,
    to_text,
    to_utc,
)


@dataclass(init=False)
class OHLCVBar:
    """One candle of ``timeframe`` starting at ``timestamp`` (a bar start, UTC).

    Prices and volumes accept ``Decimal``, ``int``, ``str`` and ``float`` (numpy's too); the
    attributes are always ``Decimal``.
    """

    symbol: str
    exchange: str
    timeframe: str
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal | None
    trades_count: int | None
    id: int | None
    created_at: datetime | None

    def __init__(
        self,
        symbol: str,
        exchange: str,
        timeframe: str,
        timestamp: datetime,
        open: DecimalInput,
        high: DecimalInput,
        low: DecimalInput,
        close: DecimalInput,
        volume: DecimalInput,
        quote_volume: DecimalInput | None = None,
        trades_count: IntInput | None = None,
        id: IntInput | None = None,
        created_at: datetime | None = None,
    ) -> None:
        self.symbol = to_text("symbol", symbol)
        self.exchange = to_text("exchange", exchange)
        self.timeframe = timeframes.check(timeframe)
        self.timestamp = to_utc("timestamp", timestamp)
        if not timeframes.is_aligned(self.timeframe, self.timestamp):
            raise ValidationError(f"timestamp: {self.timestamp.isoformat()} is not the start of a {self.timeframe} bar")
        self.open = to_decimal("open", open)
        self.high = to_decimal("high", high)
        self.low = to_decimal("low", low)
        self.close = to_decimal("close", close)
        self.volume = _not_negative("volume", to_decimal("volume", volume))
        self.quote_volume = to_optional_decimal("quote_volume", quote_volume)
        if self.quote_volume is not None:
            _not_negative("quote_volume", self.quote_volume)
        for name in ("open", "close", "low"):
            if self.high < getattr(self, name):
                raise ValidationError(f"high: {self.high} is below {name} {getattr(self, name)}")
        for name in ("open", "close"):
            if self.low > getattr(self, name):
                raise ValidationError(f"low: {self.low} is above {name} {getattr(self, name)}")
        self.trades_count = _optional_count("trades_count", trades_count)
        self.id = _optional_id(id)
        self.created_at = to_optional_utc("created_at", created_at)

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
        return cls(symbol, exchange, timeframe, from_epoch_ms(millis), **values)

    def to_ccxt(self) -> list[int | Decimal]:
        """This bar as a ccxt ``fetch_ohlcv`` row: ``[timestamp_ms, open, high, low, close, volume]``, exact."""
        millis = (self.timestamp - timeframes.EPOCH) // timedelta(milliseconds=1)
        return [millis, self.open, self.high, self.low, self.close, self.volume]


def from_epoch_ms(value: object) -> datetime:
    """An aware UTC datetime from whole milliseconds since the Unix epoch.

    Any integer takes (``int``, numpy's ``int64`` and other :class:`numbers.Integral`, not a
    bool), as does a whole ``float`` or ``Decimal``.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = operator.index(value)
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value()
    ):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"timestamp: expected whole milliseconds since the epoch, got {value!r}")
    try:
        return timeframes.EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        raise ValidationError(f"timestamp: {value!r} ms is out of range") from None


@dataclass(frozen=True)
class SeriesInfo:
    """One stored candle series: where it starts and ends, how many bars it holds, when it was last written.

    ``updated_at`` (the ledger's last write time) is left out of comparisons, so a
    ``SeriesInfo`` built by hand equals the one read back.
    """

    exchange: str
    symbol: str
    timeframe: str
    first: datetime
    last: datetime
    count: int
    updated_at: datetime | None = field(default=None, compare=False)
