"""Candle files in: Parquet as export writes it, pandas-style CSV, bars stamped at their end, helpful errors."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cli_runner import fails, ok
from tradestore import DatabaseManager, OHLCVBar, OHLCVRepository
from tradestore.errors import ValidationError
from tradestore.files.ohlcv import Series, bar_start, read_bars

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SERIES = ("--exchange", "binance", "--symbol", "BTCUSDT", "--timeframe", "1m")

pytest.importorskip("pyarrow")


def stored(url: str, symbol: str, timeframe: str = "1m") -> list[OHLCVBar]:
    async def read() -> list[OHLCVBar]:
        async with DatabaseManager(url) as db, db.get_session() as session:
            return await OHLCVRepository(session).get_range(
                symbol, timeframe, T0 - timedelta(days=400), T0 + timedelta(days=400)
            )

    return asyncio.run(read())


def write(url: str, bars: list[OHLCVBar]) -> None:
    async def go() -> None:
        async with DatabaseManager(url) as db, db.get_session() as session:
            await OHLCVRepository(session).upsert_many(bars)

    asyncio.run(go())


@pytest.fixture
def db_url(fresh_url: str) -> str:
    ok("db", "upgrade", "--url", fresh_url)
    return fresh_url


@pytest.fixture
def sqlite_url(new_database: Callable[[str], str]) -> str:
    url = new_database("sqlite")
    ok("db", "upgrade", "--url", url)
    return url


def fields(bars: list[OHLCVBar]) -> list[tuple[object, ...]]:
    names = ("timestamp", "open", "high", "low", "close", "volume", "quote_volume", "trades_count")
    return [tuple(getattr(b, n) for n in names) for b in bars]


def test_import_reads_the_parquet_export_writes_exactly(db_url: str, tmp_path: Path) -> None:
    awkward = [
        OHLCVBar("BTCUSDT", "binance", "1m", T0, "42000.12", "123456789012.12345678", "0.00000001", "0.5", "0",
                 quote_volume="1E+5", trades_count=7),
        OHLCVBar("BTCUSDT", "binance", "1m", T0 + timedelta(minutes=1), "-0.5", "0", "-1", "-0.25", "2.50"),
        OHLCVBar("BTCUSDT", "binance", "1m", T0 + timedelta(minutes=3), "50000", "50000", "50000", "50000", "1"),
    ]  # fmt: skip
    write(db_url, awkward)
    out = tmp_path / "btc.parquet"
    ok("export", "ohlcv", "binance", "BTCUSDT", "1m", "-o", out, "--url", db_url)
    result = ok("import", "ohlcv", out, *SERIES[:2], "--symbol", "COPY", "--timeframe", "1m", "--url", db_url,
                "--json").json  # fmt: skip
    assert result["files"][0]["format"] == "parquet" and result["bars"] == 3
    copied = stored(db_url, "COPY")
    assert fields(copied) == fields(awkward)  # equal values, exactly
    assert [str(b.open) for b in copied] == ["42000.12", "-0.5", "50000"]  # no padding zeros of the file's scale
    assert "holds 1m bars, not 1h" in fails("import", "ohlcv", out, *SERIES[:4], "--timeframe", "1h", "--url", db_url)


def test_import_reads_a_parquet_file_pandas_wrote(sqlite_url: str, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {"Open": [1.5, 2.5], "High": [2.0, 3.0], "Low": [1.0, 2.0], "Close": [1.75, 2.25], "Volume": [10.0, 0.1]},
        index=pd.DatetimeIndex([T0, T0 + timedelta(minutes=1)], name="Date"),
    )
    path = tmp_path / "frame.parquet"
    frame.to_parquet(path)
    ok("import", "ohlcv", path, *SERIES, "--url", sqlite_url)
    got = stored(sqlite_url, "BTCUSDT")
    assert [(b.timestamp, b.open, b.volume) for b in got] == [
        (T0, Decimal("1.5"), Decimal("10.0")),
        (T0 + timedelta(minutes=1), Decimal("2.5"), Decimal("0.1")),
    ]


def test_a_csv_with_an_unnamed_first_column_reads_it_as_the_time(sqlite_url: str, tmp_path: Path) -> None:
    csv = tmp_path / "pandas.csv"
    csv.write_text(",Open,High,Low,Close,Volume\n2024-01-01 00:00:00+00:00,1,2,0.5,1.5,10\n")
    ok("import", "ohlcv", csv, *SERIES, "--url", sqlite_url)
    assert [(b.timestamp, b.close) for b in stored(sqlite_url, "BTCUSDT")] == [(T0, Decimal("1.5"))]


def test_errors_list_the_accepted_column_names(sqlite_url: str, tmp_path: Path) -> None:
    csv = tmp_path / "odd.csv"
    csv.write_text("when,o,h,l,c,v\n2024-01-01,1,2,0.5,1.5,10\n")
    line = fails("import", "ohlcv", csv, *SERIES, "--url", sqlite_url)
    assert "no timestamp, open, high, low, close, volume column (found: 'when', 'o'" in line
    assert "accepted: a bar start named timestamp, time, datetime, date, open_time, ts" in line
    assert "quote_volume, trades_count" in line


@pytest.mark.parametrize(
    ("timeframe", "stamp", "start"),
    [
        ("1d", datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)),  # the next day's 00:00
        ("1d", datetime(2024, 1, 1, 23, 59, 59, 999000, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)),
        ("1M", datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)),  # February's 29 days
        ("1M", datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)),
        ("1h", datetime(2024, 1, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)),
        ("1h", datetime(2024, 1, 1, 0, 59, 59, 999999, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)),
        ("1w", datetime(2024, 1, 7, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)),  # a weekly file's Sunday
        ("1M", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(9999, 12, 1, tzinfo=UTC)),  # the last bar
    ],
)
def test_bars_stamped_at_their_end_move_to_their_start(timeframe: str, stamp: datetime, start: datetime) -> None:
    assert bar_start(timeframe, stamp, "end") == start
    assert bar_start(timeframe, start, "start") == start


@pytest.mark.parametrize(
    ("timeframe", "stamp"),
    [
        ("1h", datetime(2024, 1, 1, 10, 30, tzinfo=UTC)),  # inside the 10:00 bar
        ("1h", datetime(2024, 1, 1, 10, 59, 58, tzinfo=UTC)),
        ("1d", datetime(2024, 1, 1, 12, tzinfo=UTC)),
        ("1M", datetime(2024, 1, 30, tzinfo=UTC)),  # not January's last day
        ("1M", datetime(2024, 1, 15, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_align_end_refuses_a_time_that_closes_no_bar(timeframe: str, stamp: datetime) -> None:
    message = f"timestamp: {stamp.isoformat()} does not close a {timeframe} bar"
    with pytest.raises(ValidationError, match=re.escape(message)):
        bar_start(timeframe, stamp, "end")


def test_import_align_end_refuses_times_inside_a_bar_instead_of_merging_them(db_url: str, tmp_path: Path) -> None:
    hourly = tmp_path / "hourly.csv"
    hourly.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01 10:30,1,2,0.5,1.5,10\n2024-01-01 10:45,1,2,0.5,1.5,10\n2024-01-01 11:00,1,2,0.5,1.5,10\n"
    )
    hour = ("--exchange", "binance", "--symbol", "BTCUSDT", "--timeframe", "1h")
    line = fails("import", "ohlcv", hourly, *hour, "--align", "end", "--url", db_url)
    assert "line 2: timestamp: 2024-01-01T10:30:00+00:00 does not close a 1h bar" in line
    assert stored(db_url, "BTCUSDT", "1h") == []
    hourly.write_text("timestamp,open,high,low,close,volume\n2024-01-01 10:59:59.999999,1,2,0.5,1.5,10\n")
    ok("import", "ohlcv", hourly, *hour, "--align", "end", "--url", db_url)
    assert [b.timestamp for b in stored(db_url, "BTCUSDT", "1h")] == [datetime(2024, 1, 1, 10, tzinfo=UTC)]


def test_import_align_end_for_csv_and_ccxt_json(db_url: str, tmp_path: Path) -> None:
    monthly = tmp_path / "monthly.csv"
    monthly.write_text("date,open,high,low,close,volume\n2024-01-31,1,2,0.5,1.5,10\n2024-02-29 23:59:59,2,3,1,2,20\n")
    month = ("--exchange", "binance", "--symbol", "BTCUSDT", "--timeframe", "1M")
    assert "is not the start of a 1M bar" in fails("import", "ohlcv", monthly, *month, "--url", db_url)
    ok("import", "ohlcv", monthly, *month, "--align", "end", "--url", db_url)
    assert [b.timestamp for b in stored(db_url, "BTCUSDT", "1M")] == [T0, datetime(2024, 2, 1, tzinfo=UTC)]
    daily = tmp_path / "daily.json"
    daily.write_text(json.dumps([[1704153600000, 1, 2, 0.5, 1.5, 10]]))  # 2024-01-02 00:00: closes Jan 1
    bars = list(read_bars(daily, Series("binance", "ETHUSDT", "1d"), "ccxt-json", align="end"))
    assert [b.timestamp for b in bars] == [T0]
