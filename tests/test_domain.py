"""Domain objects validate and normalise themselves."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from factories import T0, bar
from tradestore import OHLCVBar, Position, SystemEvent, Trade
from tradestore.errors import ValidationError


def test_numbers_are_converted_to_decimal() -> None:
    b = bar(0, open=100, high="101.5", low=99.1, close=Decimal("100.5"), volume=0.1)
    assert (b.open, b.high, b.low, b.close, b.volume) == (
        Decimal(100),
        Decimal("101.5"),
        Decimal("99.1"),
        Decimal("100.5"),
        Decimal("0.1"),
    )


def test_datetimes_become_aware_utc() -> None:
    naive = OHLCVBar("BTCUSDT", "binance", "1h", datetime(2024, 1, 1, 5), 1, 1, 1, 1, 1)
    tokyo = OHLCVBar(
        "BTCUSDT", "binance", "1h", datetime(2024, 1, 1, 14, tzinfo=timezone(timedelta(hours=9))), 1, 1, 1, 1, 1
    )
    assert naive.timestamp == tokyo.timestamp == datetime(2024, 1, 1, 5, tzinfo=UTC)
    assert tokyo.timestamp.tzinfo is UTC


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"open": "NaN"}, "open"),
        ({"high": float("inf")}, "high"),
        ({"close": Decimal("-Infinity")}, "close"),
        ({"low": Decimal("sNaN")}, "low"),
        ({"volume": "-1"}, "volume"),
        ({"quote_volume": "-0.1"}, "quote_volume"),
        ({"high": "98"}, "high"),
        ({"low": "100.6"}, "low"),
        ({"open": "abc"}, "open"),
        ({"open": True}, "open"),
        ({"trades_count": -1}, "trades_count"),
        ({"volume": None}, "volume"),
    ],
)
def test_bad_bars_name_the_field_and_value(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        bar(0, **fields)


@pytest.mark.parametrize(
    ("symbol", "timeframe", "timestamp", "named"),
    [
        ("", "1m", T0, "symbol"),
        ("BTC\x00", "1m", T0, "symbol"),
        ("BTCUSDT", "7m", T0, "timeframe"),
        ("BTCUSDT", "", T0, "timeframe"),
        ("BTCUSDT", "1h", T0 + timedelta(minutes=1), "timestamp"),
        ("BTCUSDT", "1w", datetime(2024, 1, 2, tzinfo=UTC), "timestamp"),
        ("BTCUSDT", "1M", datetime(2024, 1, 2, tzinfo=UTC), "timestamp"),
        ("BTCUSDT", "1m", "2024-01-01", "timestamp"),
    ],
)
def test_bad_keys(symbol: str, timeframe: str, timestamp: object, named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        OHLCVBar(symbol, "binance", timeframe, timestamp, 1, 1, 1, 1, 1)  # type: ignore[arg-type]


def test_error_message_shows_the_value() -> None:
    with pytest.raises(ValidationError, match="'abc'"):
        bar(0, open="abc")


def test_event_details_must_be_json() -> None:
    assert SystemEvent("x", "info", "m", details={"a": Decimal("1.5")}).details == {"a": "1.5"}
    with pytest.raises(ValidationError, match="details"):
        SystemEvent("x", "info", "m", details={"a": object()})


def test_trades_count_must_fit_a_bigint() -> None:
    assert bar(0, trades_count=2**63 - 1).trades_count == 2**63 - 1
    with pytest.raises(ValidationError, match="trades_count"):
        bar(0, trades_count=2**63)


def test_every_numeric_field_accepts_numpy_scalars() -> None:
    """What DataFrame.iterrows() yields: np.float64 for float columns, np.int64 for integer ones."""
    f, i = np.float64, np.int64
    b = OHLCVBar(
        "BTCUSDT", "binance", "1m", T0, f(100.5), f(101), i(99), f(100.1), f(0.1),
        quote_volume=f(10.05), trades_count=i(7), id=i(3),
    )  # fmt: skip
    assert (b.open, b.high, b.low, b.volume, b.quote_volume, b.trades_count, b.id) == (
        Decimal("100.5"), Decimal("101.0"), Decimal(99), Decimal("0.1"), Decimal("10.05"), 7, 3,
    )  # fmt: skip
    t = Trade(
        "T1", "BTCUSDT", "binance", "long", "close", f(50000.5), f(0.01), T0, leverage=i(3),
        exit_price=f(51000), realized_pnl=f(-0.5), realized_pnl_pct=f(0.25), fee=f(0.1), signal_score=i(1),
    )  # fmt: skip
    assert (t.entry_price, t.quantity, t.leverage, t.realized_pnl, t.fee) == (
        Decimal("50000.5"), Decimal("0.01"), Decimal(3), Decimal("-0.5"), Decimal("0.1"),
    )  # fmt: skip
    p = Position(
        "BTCUSDT", "binance", "long", f(50000), f(0.5), i(100), T0, current_price=f(50100.25),
        unrealized_pnl=f(50.125), leverage=f(2), liquidation_price=f(40000),
    )  # fmt: skip
    assert (p.margin, p.current_price, p.unrealized_pnl) == (Decimal(100), Decimal("50100.25"), Decimal("50.125"))
    assert {type(v) for v in (b.open, t.entry_price, t.signal_score, p.liquidation_price)} == {Decimal}


def test_nat_in_optional_times_is_no_time() -> None:
    assert Position("BTCUSDT", "binance", "long", 1, 1, 1, T0, closed_at=pd.NaT).closed_at is None
    assert SystemEvent("x", "info", "m", created_at=pd.NaT).created_at is None
    assert bar(0, created_at=pd.NaT).created_at is None
    with pytest.raises(ValidationError, match="timestamp"):
        OHLCVBar("BTCUSDT", "binance", "1m", pd.NaT, 1, 1, 1, 1, 1)


def test_constructors_accept_what_they_are_typed_with() -> None:
    """The README's style, checked by mypy --strict over tests/: strings, ints and floats for money."""
    t = Trade("T-1", "BTCUSDT", "binance", "long", "open", entry_price="50000", quantity=0.01, entry_time=T0, fee=0)
    assert (t.entry_price, t.quantity, t.fee) == (Decimal("50000"), Decimal("0.01"), Decimal(0))
    assert type(t.fee) is Decimal and dataclasses.replace(t, fee=Decimal("0.5")).fee == Decimal("0.5")
