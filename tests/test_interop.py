"""ccxt rows and pandas DataFrames to bars and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from factories import T0, bars
from tradestore import OHLCVBar
from tradestore.errors import ValidationError

MS = int(T0.timestamp() * 1000)


def test_ccxt_row_round_trip() -> None:
    row = [MS + 60_000, 42000.5, 42010, "41990.25", Decimal("42005"), 1.25]
    bar = OHLCVBar.from_ccxt(row, exchange="binance", symbol="BTC/USDT", timeframe="1m")
    assert bar.timestamp == T0 + timedelta(minutes=1) and bar.symbol == "BTC/USDT"
    assert (bar.open, bar.high, bar.low, bar.volume) == (
        Decimal("42000.5"),
        Decimal(42010),
        Decimal("41990.25"),
        Decimal("1.25"),
    )
    assert bar.to_ccxt() == [MS + 60_000, Decimal("42000.5"), 42010, Decimal("41990.25"), 42005, Decimal("1.25")]
    exact = json.loads("[1704067260000, 0.30000000000000004, 1, 0.1, 0.2, 5]", parse_float=Decimal)
    assert OHLCVBar.from_ccxt(exact, exchange="x", symbol="y", timeframe="1m").open == Decimal("0.30000000000000004")
    assert OHLCVBar.from_ccxt([float(MS), 1, 1, 1, 1, 1], exchange="x", symbol="y", timeframe="1m").timestamp == T0


def test_ccxt_row_takes_numpy_integer_milliseconds() -> None:
    np = pytest.importorskip("numpy")
    for millis in (np.int64(MS), np.uint64(MS), np.int64(MS + 60_000)):
        bar = OHLCVBar.from_ccxt([millis, 1, 2, 0.5, 1.5, 10], exchange="x", symbol="y", timeframe="1m")
        assert bar.timestamp == T0 + timedelta(milliseconds=int(millis) - MS)
    with pytest.raises(ValidationError, match="whole milliseconds"):
        OHLCVBar.from_ccxt([np.bool_(True), 1, 1, 1, 1, 1], exchange="x", symbol="y", timeframe="1m")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([MS, 1, 1, 1, 1], "expected \\[timestamp_ms"),
        ("123456", "expected \\[timestamp_ms"),
        ([MS + 0.5, 1, 1, 1, 1, 1], "whole milliseconds"),
        ([True, 1, 1, 1, 1, 1], "whole milliseconds"),
        ([MS + 1000, 1, 1, 1, 1, 1], "not the start of a 1m bar"),
        ([MS, 1, 1, 1, 1, None], "volume"),
        ([10**20, 1, 1, 1, 1, 1], "out of range"),
    ],
)
def test_bad_ccxt_rows(row: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OHLCVBar.from_ccxt(row, exchange="binance", symbol="BTCUSDT", timeframe="1m")  # type: ignore[arg-type]


def test_dataframe_round_trip_with_decimals_and_floats() -> None:
    pd = pytest.importorskip("pandas")
    from tradestore.files.dataframes import bars_to_frame, frame_to_bars

    series = list(reversed(bars(3, close="100.10", quote_volume="0.00000001", trades_count=7)))
    frame = bars_to_frame(series)
    assert (
        isinstance(frame.index, pd.DatetimeIndex) and str(frame.index.tz) == "UTC" and frame.index.name == "timestamp"
    )
    assert frame.index.is_monotonic_increasing and frame.attrs == {"exchange": "binance", "symbol": "BTCUSDT",
                                                                   "timeframe": "1m"}  # fmt: skip
    assert frame["close"].iloc[0] == Decimal("100.10") and str(frame["trades_count"].dtype) == "Int64"
    assert frame_to_bars(frame) == sorted(series, key=lambda b: b.timestamp)

    floats = bars_to_frame(series, decimals=False)
    assert str(floats["close"].dtype) == "float64" and floats["quote_volume"].iloc[0] == 1e-8
    back = frame_to_bars(floats)
    assert back[0].close == Decimal("100.1") and back[0].quote_volume == Decimal("1E-8") and back[0].trades_count == 7


def test_frame_to_bars_takes_a_plain_frame() -> None:
    pd = pytest.importorskip("pandas")
    from tradestore.files.dataframes import frame_to_bars

    frame = pd.DataFrame(
        {
            "timestamp": ["2024-01-01 00:00", "2024-01-01 00:01"],
            "open": [1.0, 2.0],
            "high": [1.5, 2.5],
            "low": [0.5, 1.5],
            "close": [1.2, float("nan")],
            "volume": [10, 20],
        }
    )
    with pytest.raises(ValidationError, match="give exchange, symbol, timeframe"):
        frame_to_bars(frame)
    with pytest.raises(ValidationError, match="frame row 2024-01-01T00:01:00\\+00:00: close"):
        frame_to_bars(frame, exchange="binance", symbol="ETHUSDT", timeframe="1m")
    got = frame_to_bars(frame.iloc[:1], exchange="binance", symbol="ETHUSDT", timeframe="1m")
    assert got == [
        OHLCVBar("ETHUSDT", "binance", "1m", datetime(2024, 1, 1, tzinfo=UTC), "1.0", "1.5", "0.5", "1.2", 10)
    ]
    with pytest.raises(ValidationError, match="missing column"):
        frame_to_bars(frame.drop(columns="volume"), exchange="binance", symbol="ETHUSDT", timeframe="1m")


def test_one_series_per_frame() -> None:
    pytest.importorskip("pandas")
    from tradestore.files.dataframes import bars_to_frame

    with pytest.raises(ValidationError, match="one series"):
        bars_to_frame([*bars(1), *bars(1, symbol="ETHUSDT")])
    assert bars_to_frame([]).empty
