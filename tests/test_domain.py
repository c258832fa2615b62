"""Domain objects validate and normalise themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from factories import T0, bar
from tradestore import OHLCVBar, SystemEvent
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
def test_bad_bars_name_the_field_and_value(fields: dict[str, object], named: str) -> None:
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
