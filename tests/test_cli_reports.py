"""``tradestore health | stats | series | gaps``, on both backends."""

from __future__ import annotations

from pathlib import Path

from cli_runner import fails, ok, seed
from tradestore import schema

HEAD = schema.head_revision()


def test_health(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [0, 1])
    report = ok("health", "--url", fresh_url, "--json").json
    assert report["status"] == "healthy" and report["latency_ms"] >= 0 and report["server_version"]
    assert (report["schema_revision"], report["schema_head"], report["schema_status"]) == (HEAD, HEAD, "current")
    assert report["size_bytes"] > 0
    text = ok("health", "--url", fresh_url).out
    assert "healthy" in text and f"{HEAD} (current" in text


def test_stats_counts_rows_per_table_and_series(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [0, 1, 2, 5])
    seed(fresh_url, tmp_path, [0, 1], symbol="ETHUSDT")
    stats = ok("stats", "--url", fresh_url, "--json").json
    assert stats["rows"] == {
        "fills": 0,
        "ohlcv": 6,
        "ohlcv_fetched": 3,
        "ohlcv_series": 2,
        "order_history": 0,
        "orders": 0,
        "positions": 0,
        "system_events": 0,
        "trades": 0,
    }
    assert stats["series"] == 2 and stats["schema_status"] == "current" and stats["size_bytes"] > 0
    text = ok("stats", "--url", fresh_url).out
    assert "ohlcv             6" in text and "series    2" in text


def test_stats_of_an_empty_database(fresh_url: str) -> None:
    stats = ok("stats", "--url", fresh_url, "--json").json
    assert stats["rows"] == {} and stats["series"] == 0 and stats["schema_status"] == "empty"


def test_series_lists_spans_bars_and_gaps(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [0, 1, 2, 5, 6, 9])  # gaps: 3-4 and 7-8
    seed(fresh_url, tmp_path, [0, 1], symbol="ETHUSDT")
    rows = ok("series", "--url", fresh_url, "--json").json
    assert [(r["symbol"], r["bars"], r["gaps"], r["missing"]) for r in rows] == [
        ("BTCUSDT", 6, 2, 4),
        ("ETHUSDT", 2, 0, 0),
    ]
    assert rows[0]["first"] == "2024-01-01T00:00:00Z" and rows[0]["last"] == "2024-01-01T00:09:00Z"
    lines = ok("series", "--url", fresh_url).out.splitlines()
    assert lines[0].split() == ["exchange", "symbol", "timeframe", "first", "last", "bars", "gaps", "missing"]
    assert lines[2].split()[-3:] == ["6", "2", "4"]
    assert ok("series", "--exchange", "kraken", "--url", fresh_url).out == "no candles stored for kraken\n"


def test_gaps_with_and_without_a_window(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [2, 3, 4, 8, 9])
    found = ok("gaps", "binance", "BTCUSDT", "1m", "--url", fresh_url, "--json").json
    assert found["gaps"] == [{"first": "2024-01-01T00:05:00Z", "last": "2024-01-01T00:07:00Z", "missing": 3}]
    window = ok(
        "gaps", "binance", "BTCUSDT", "1m", "--start", "2024-01-01", "--end", "2024-01-01T00:11:00Z",
        "--url", fresh_url, "--json",
    ).json  # fmt: skip
    assert [(g["first"][11:16], g["last"][11:16], g["missing"]) for g in window["gaps"]] == [
        ("00:00", "00:01", 2),
        ("00:05", "00:07", 3),
        ("00:10", "00:11", 2),
    ]
    assert window["missing"] == 7
    text = ok("gaps", "binance", "BTCUSDT", "1m", "--url", fresh_url).out
    assert "2024-01-01 00:05:00Z  2024-01-01 00:07:00Z     3" in text and "1 gap, 3 missing bars" in text


def test_gaps_of_a_series_without_holes_and_of_an_unknown_series(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [0, 1, 2])
    assert ok("gaps", "binance", "BTCUSDT", "1m", "--url", fresh_url).out == "binance BTCUSDT 1m: no gaps\n"
    assert "no 1m bars stored for binance DOGEUSDT" in fails("gaps", "binance", "DOGEUSDT", "1m", "--url", fresh_url)


def test_reading_commands_refuse_a_database_without_schema(fresh_url: str) -> None:
    assert "no tradestore schema yet" in fails("series", "--url", fresh_url)


def test_gaps_of_an_unknown_series_is_an_error_with_or_without_a_window(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [0, 1, 2], symbol="DOGEUSDT")
    windows = [(), ("--start", "2024-01-01"), ("--end", "2024-01-02"), ("--start", "2024-01-01", "--end", "2024-01-02")]
    for window in windows:
        line = fails("gaps", "binance", "DOGEUSTD", "1m", *window, "--url", fresh_url)  # misspelt
        assert "no 1m bars stored for binance DOGEUSTD on any exchange" in line, window
        line = fails("gaps", "kraken", "DOGEUSDT", "1m", *window, "--url", fresh_url)  # stored elsewhere
        assert "no 1m bars stored for kraken DOGEUSDT; DOGEUSDT 1m is stored for binance" in line, window
    known = ok("gaps", "binance", "DOGEUSDT", "1m", "--end", "2024-01-01T00:04:00Z", "--url", fresh_url, "--json")
    assert known.json["missing"] == 2  # a known series: its missing bars, as before
