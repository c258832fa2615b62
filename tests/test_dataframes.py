"""DataFrames for backtesting libraries: float columns, title case, a naive UTC index, and a real backtest."""

from __future__ import annotations

import random
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tradestore import DatabaseManager, OHLCVRepository
from tradestore.errors import ValidationError

pd = pytest.importorskip("pandas")
from tradestore.files.dataframes import bars_to_frame, frame_to_bars  # noqa: E402

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def market(hours: int, seed: int = 7) -> Any:
    """An hourly random walk with prices in cents, as a backtester's input: naive UTC index, title case, floats."""
    rng = random.Random(seed)
    price, rows = 42_000.0, []
    for _ in range(hours):
        open_ = price
        close = round(max(1.0, open_ + rng.uniform(-150, 150)), 2)
        high = round(max(open_, close) + rng.uniform(0, 40), 2)
        low = round(min(open_, close) - rng.uniform(0, 40), 2)
        rows.append((open_, high, low, close, round(rng.uniform(0, 500), 4)))
        price = close
    index = pd.date_range("2024-01-01", periods=hours, freq="h", name="timestamp")
    return pd.DataFrame(rows, index=index, columns=["Open", "High", "Low", "Close", "Volume"])


def test_frames_for_backtesting_libraries() -> None:
    frame = market(5)
    bars = frame_to_bars(frame, exchange="binance", symbol="BTCUSDT", timeframe="1h")  # title case read
    assert (
        bars[0].timestamp == T0
        and bars[0].open == Decimal("42000.0")
        and bars[1].close == Decimal(str(frame["Close"].iloc[1]))
    )
    back = bars_to_frame(bars, floats=True, columns="title", naive_index=True)
    assert list(back.columns[:5]) == ["Open", "High", "Low", "Close", "Volume"]
    assert back.index.tz is None and back.index[0] == pd.Timestamp("2024-01-01")
    assert all(back[c].dtype == "float64" for c in ("Open", "High", "Low", "Close", "Volume"))
    pd.testing.assert_frame_equal(back[["Open", "High", "Low", "Close", "Volume"]], frame, check_freq=False)
    exact = bars_to_frame(bars)
    assert exact.index.tz is not None and exact["open"].iloc[0] == Decimal("42000.0")
    assert frame_to_bars(back) == bars  # series from frame.attrs, either case
    with pytest.raises(ValidationError, match="columns"):
        bars_to_frame(bars, columns="upper")


async def test_a_backtest_on_bars_read_back_equals_the_one_on_the_original_frame(db: DatabaseManager) -> None:
    backtesting = pytest.importorskip("backtesting")
    from backtesting.lib import crossover  # type: ignore[import-untyped]

    def sma(values: Any, n: int) -> Any:
        return pd.Series(values).rolling(n).mean()

    strategy: Any = backtesting.Strategy

    class SmaCross(strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, 10)
            self.slow = self.I(sma, self.data.Close, 30)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                self.buy()
            elif crossover(self.slow, self.fast):
                self.position.close()

    def run(frame: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            test = backtesting.Backtest(frame, SmaCross, cash=1_000_000, commission=0.001)
            return test.run()

    original = market(600)
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(frame_to_bars(original, exchange="binance", symbol="BTCUSDT", timeframe="1h"))
    async with db.get_session() as session:
        bars = await OHLCVRepository(session).get_range("BTCUSDT", "1h", T0, T0 + timedelta(hours=599))
    read_back = bars_to_frame(bars, floats=True, columns="title", naive_index=True)
    expected, got = run(original), run(read_back)
    assert expected["# Trades"] > 5  # the strategy really traded
    keys = [k for k in expected.index if not k.startswith("_")]
    pd.testing.assert_series_equal(got[keys], expected[keys])
    pd.testing.assert_frame_equal(got["_trades"], expected["_trades"])
    pd.testing.assert_frame_equal(got["_equity_curve"], expected["_equity_curve"], check_freq=False)


def test_float32_cells_give_the_decimal_the_constructor_gives() -> None:
    np = pytest.importorskip("numpy")
    from tradestore import OHLCVBar

    f32 = np.float32
    frame = pd.DataFrame(
        {
            "open": np.array([0.1], dtype="float32"),
            "high": np.array([0.3], dtype="float32"),
            "low": np.array([0.1], dtype="float32"),
            "close": np.array([0.2], dtype="float32"),
            "volume": np.array([1.7], dtype="float32"),
            "quote_volume": np.array([np.nan], dtype="float32"),  # missing
            "trades_count": np.array([3], dtype="int32"),
        },
        index=pd.DatetimeIndex([T0]),
    )
    (bar,) = frame_to_bars(frame, exchange="binance", symbol="BTCUSDT", timeframe="1m")
    built = OHLCVBar("BTCUSDT", "binance", "1m", T0, f32(0.1), f32(0.3), f32(0.1), f32(0.2), f32(1.7), trades_count=3)
    assert [bar.open, bar.high, bar.close, bar.volume] == [Decimal(t) for t in ("0.1", "0.3", "0.2", "1.7")]
    assert bar == built and bar.quote_volume is None and bar.trades_count == 3


def test_an_unreadable_timestamp_column_is_a_validation_error_naming_it() -> None:
    frame = pd.DataFrame({"timestamp": ["garbage"], "open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5],
                          "volume": [1.0]})  # fmt: skip
    with pytest.raises(ValidationError, match=r"'timestamp' column cannot be read as times: .*garbage"):
        frame_to_bars(frame, exchange="binance", symbol="BTCUSDT", timeframe="1m")


def test_columns_naming_one_field_in_two_cases_are_refused_by_name() -> None:
    frame = pd.DataFrame({"open": [1.0], "Open": [9.0], "high": [2.0], "low": [0.5], "close": [1.5], "volume": [1.0],
                          "Volume": [2.0]}, index=pd.DatetimeIndex([T0]))  # fmt: skip
    with pytest.raises(ValidationError, match="columns 'open', 'Open'; 'volume', 'Volume' name the same field"):
        frame_to_bars(frame, exchange="binance", symbol="BTCUSDT", timeframe="1m")
