"""Small builders for test data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tradestore import OHLCVBar, Position, Trade
from tradestore.values import DecimalInput

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def bar(
    minute: int = 0,
    *,
    symbol: str = "BTCUSDT",
    exchange: str = "binance",
    timeframe: str = "1m",
    close: DecimalInput = "100.5",
    **fields: Any,
) -> OHLCVBar:
    """A valid 1m bar ``minute`` minutes after 2024-01-01 00:00 UTC."""
    values: dict[str, Any] = {"open": "100", "high": "101", "low": "99", "close": close, "volume": "12.5"}
    values.update(fields)
    return OHLCVBar(symbol, exchange, timeframe, T0 + timedelta(minutes=minute), **values)


def bars(count: int, *, skip: range | None = None, **fields: Any) -> list[OHLCVBar]:
    """``count`` consecutive 1m bars, leaving out the minutes in ``skip``."""
    return [bar(i, **fields) for i in range(count) if skip is None or i not in skip]


def trade(
    n: int = 0,
    *,
    pnl: DecimalInput | None = None,
    fee: DecimalInput = "0",
    exit_time: datetime | None = None,
    **fields: Any,
) -> Trade:
    """A trade with id ``T{n}``; closed now when ``pnl`` is given."""
    closed = pnl is not None
    values: dict[str, Any] = {
        "trade_id": f"T{n}",
        "symbol": "BTCUSDT",
        "exchange": "binance",
        "side": "long",
        "action": "close" if closed else "open",
        "entry_price": "50000",
        "quantity": "0.01",
        "entry_time": datetime.now(UTC) - timedelta(hours=2, seconds=n),
        "fee": fee,
        "realized_pnl": pnl,
        "exit_time": exit_time or (datetime.now(UTC) - timedelta(hours=1) if closed else None),
    }
    values.update(fields)
    return Trade(**values)


def position(**fields: Any) -> Position:
    """An open long BTCUSDT position on binance."""
    values: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "exchange": "binance",
        "side": "long",
        "entry_price": "50000",
        "quantity": "0.01",
        "margin": "100",
        "entry_time": T0,
    }
    values.update(fields)
    return Position(**values)
