"""``tradestore import ohlcv`` and ``tradestore export ohlcv``: files in, files out, bad rows refused."""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import cast

import pytest

from cli_runner import fails, ok, run, seed
from tradestore import DatabaseManager, OHLCVBar, OHLCVRepository
from tradestore.cli.console import Console
from tradestore.errors import ValidationError
from tradestore.files.ohlcv import parse_timestamp

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SERIES = ("--exchange", "binance", "--symbol", "BTCUSDT", "--timeframe", "1m")


def stored(url: str, symbol: str = "BTCUSDT") -> list[OHLCVBar]:
    async def read() -> list[OHLCVBar]:
        async with DatabaseManager(url) as db, db.get_session() as session:
            return await OHLCVRepository(session).get_range(symbol, "1m", T0, T0 + timedelta(days=1))

    return asyncio.run(read())


@pytest.fixture
def db_url(fresh_url: str) -> str:
    """A database with the schema, on each backend."""
    ok("db", "upgrade", "--url", fresh_url)
    return fresh_url


@pytest.fixture
def sqlite_url(new_database: Callable[[str], str]) -> str:
    """A SQLite database with the schema, for what does not depend on the backend (parsing files)."""
    url = new_database("sqlite")
    ok("db", "upgrade", "--url", url)
    return url


def test_import_csv_in_every_timestamp_form(db_url: str, tmp_path: Path) -> None:
    csv = tmp_path / "mixed.csv"
    csv.write_text(
        "Time,Open,High,Low,Close,Volume,Quote_Volume,Trades_Count,ignored\n"
        "2024-01-01T00:00:00Z,42000.50,42010,41990.25,42005,1.25,52506.25,10,x\n"
        "2024-01-01 00:01:00,42005,42020,42000,42015,0.00000001,,,x\n"
        "1704067320000,42015,42030,42010,42025,2.5,,3,x\n"
        "\n"
        "1704067380,42025,42040,42020,42030,3,,,x\n"
    )
    result = ok("import", "ohlcv", csv, *SERIES, "--url", db_url, "--json").json
    assert result["bars"] == 4 and result["files"][0]["format"] == "csv"
    bars = stored(db_url)
    assert [b.timestamp for b in bars] == [T0 + timedelta(minutes=m) for m in range(4)]
    assert bars[0].open == Decimal("42000.50") and bars[0].quote_volume == Decimal("52506.25")
    assert bars[0].trades_count == 10 and bars[1].volume == Decimal("0.00000001") and bars[2].trades_count == 3


def test_import_ccxt_json_keeps_every_digit(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "fetch_ohlcv.json"
    start = int(T0.timestamp() * 1000)
    path.write_text(json.dumps([[start + 60_000 * i, 0.1, 0.30000000000000004, 0.1, 0.2, 12] for i in range(3)]))
    text = ok("import", "ohlcv", path, *SERIES, "--url", db_url).out
    assert "ccxt-json" in text and "imported 3 1m bars of binance BTCUSDT" in text
    bar = stored(db_url)[0]
    assert (bar.open, bar.high, bar.volume) == (Decimal("0.1"), Decimal("0.30000000000000004"), Decimal(12))


def test_a_bad_row_stops_the_import_naming_file_line_field_and_value(db_url: str, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,100,101,99,100,1\n")
    bad = tmp_path / "bad.csv"
    rows = [f"2024-01-01T00:{m:02d}:00Z,100,101,99,100,1" for m in range(1, 30_000 // 1000 + 1)]
    rows.insert(7, "2024-01-01T01:00:00Z,100,99.5,99,100,1")  # high below open
    bad.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    line = fails("import", "ohlcv", good, bad, *SERIES, "--url", db_url, "--chunk-rows", "3")
    assert f"{bad} line 9: high: 99.5 is below open 100" in line
    assert "nothing of" in line and "1 earlier file(s) were imported" in line
    assert [b.timestamp for b in stored(db_url)] == [T0]  # good.csv kept, nothing of bad.csv


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("timestamp,open,high,low,close,volume\nyesterday,1,1,1,1,1\n", "line 2: timestamp: cannot read 'yesterday'"),
        ("timestamp,open,high,low,close,volume\n2024-01-01T00:00:30Z,1,1,1,1,1\n", "not the start of a 1m bar"),
        ("timestamp,open,high,low,close,volume\n2024-01-01,1,1,1,1,NaN\n", "volume: must be finite, got 'NaN'"),
        ("timestamp,open,high,low,close,volume\n2024-01-01,1,1,1,1\n", "line 2: expected 6 fields"),
        ("timestamp,open,high,low,close,volume\n2024-01-01,1,one,1,1,1\n", "high: not a number: 'one'"),
        ("time,open,high,low,volume\n", "line 1: the header has no close column"),
        ("", "line 1: the file is empty"),
    ],
)
def test_bad_csv_files(sqlite_url: str, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(content)
    assert message in fails("import", "ohlcv", path, *SERIES, "--url", sqlite_url)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"a": 1}', "top level: expected a list"),
        ("[[1704067200000, 1, 1, 1, 1]]", "row 1: ccxt row: expected [timestamp_ms"),
        ("[[1704067200000, 1, 1, 1, 1, 1], [1704067260000.5, 1, 1, 1, 1, 1]]", "row 2: timestamp: expected whole"),
        ("[[1704067200000, 1, 1, 1, 1, -1]]", "row 1: volume: must not be negative"),
        ("[[1704067200000, 1, 1, 1, 1, 1],", "line 1: not JSON"),
    ],
)
def test_bad_ccxt_files(sqlite_url: str, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bars.json"
    path.write_text(content)
    assert message in fails("import", "ohlcv", path, *SERIES, "--url", sqlite_url)
    assert stored(sqlite_url) == []


def test_import_needs_files_and_a_schema(fresh_url: str, tmp_path: Path) -> None:
    assert "no such file" in fails("import", "ohlcv", tmp_path / "none.csv", *SERIES, "--url", fresh_url)
    path = tmp_path / "bars.csv"
    path.write_text("timestamp,open,high,low,close,volume\n")
    assert "tradestore db upgrade" in fails("import", "ohlcv", path, *SERIES, "--url", fresh_url)


def test_export_csv_reads_back_into_the_same_bars(db_url: str, tmp_path: Path) -> None:
    seed(db_url, tmp_path, [0, 1, 2, 4])
    out = tmp_path / "out.csv"
    assert "exported 4 1m bars of binance BTCUSDT" in ok("export", "ohlcv", "binance", "BTCUSDT", "1m", "-o", out,
                                                         "--url", db_url).out  # fmt: skip
    assert out.read_text().splitlines()[:2] == [
        "timestamp,open,high,low,close,volume,quote_volume,trades_count",
        "2024-01-01T00:00:00Z,100,101,99,100.5,12.5,,",
    ]
    ok("import", "ohlcv", out, "--exchange", "binance", "--symbol", "COPY", "--timeframe", "1m", "--url", db_url)
    original, copy = stored(db_url), stored(db_url, "COPY")
    assert [(b.timestamp, b.open, b.close, b.volume) for b in copy] == [
        (b.timestamp, b.open, b.close, b.volume) for b in original
    ]


def test_export_a_window_to_stdout(db_url: str, tmp_path: Path) -> None:
    seed(db_url, tmp_path, list(range(10)))
    result = ok("export", "ohlcv", "binance", "BTCUSDT", "1m", "--start", "2024-01-01T00:03:00Z",
                "--end", "2024-01-01T00:05:00Z", "-o", "-", "--url", db_url)  # fmt: skip
    assert [line[:20] for line in result.out.splitlines()[1:]] == [
        "2024-01-01T00:03:00Z",
        "2024-01-01T00:04:00Z",
        "2024-01-01T00:05:00Z",
    ]


def test_export_refuses_to_overwrite_and_to_write_nothing(db_url: str, tmp_path: Path) -> None:
    seed(db_url, tmp_path, [0])
    out = tmp_path / "out.csv"
    out.write_text("precious")
    assert "already exists" in fails("export", "ohlcv", "binance", "BTCUSDT", "1m", "-o", out, "--url", db_url)
    assert out.read_text() == "precious"
    ok("export", "ohlcv", "binance", "BTCUSDT", "1m", "-o", out, "--force", "--url", db_url)
    assert out.read_text().startswith("timestamp,")
    line = fails("export", "ohlcv", "binance", "ETHUSDT", "1m", "-o", tmp_path / "e.csv", "--url", db_url)
    assert "nothing written" in line and not (tmp_path / "e.csv").exists()


def test_export_parquet_is_exact(db_url: str, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    seed(db_url, tmp_path, [0, 1])
    path = tmp_path / "ticks.json"
    path.write_text("[[1704067320000, 123456789012.12345678, 123456789013, 0.000000000000000001, 123456789012.5, 0]]")
    ok("import", "ohlcv", path, *SERIES, "--url", db_url)
    out = tmp_path / "out.parquet"
    result = ok("export", "ohlcv", "binance", "BTCUSDT", "1m", "-o", out, "--url", db_url, "--json").json
    assert result["bars"] == 3 and result["format"] == "parquet"
    table = pq.read_table(out)
    assert str(table.schema.field("open").type) == "decimal128(38, 18)"
    assert table.schema.metadata[b"tradestore.symbol"] == b"BTCUSDT"
    rows = table.to_pylist()
    assert rows[2]["open"] == Decimal("123456789012.12345678") and rows[2]["low"] == Decimal("1E-18")
    assert rows[0]["timestamp"] == T0 and rows[0]["quote_volume"] is None


def test_parse_timestamp_forms() -> None:
    expected = datetime(2024, 1, 1, 0, 1, tzinfo=UTC)
    for text in ("2024-01-01T00:01:00Z", "2024-01-01 00:01", "2024-01-01T01:01:00+01:00", "1704067260",
                 "1704067260000", "1704067260.0"):  # fmt: skip
        assert parse_timestamp(text) == expected, text
    with pytest.raises(ValidationError, match="more digits than microseconds"):
        parse_timestamp("1704067260000.0001")


def test_the_progress_bar_draws_only_on_a_terminal(db_url: str, tmp_path: Path) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert not Console(io.StringIO(), io.StringIO()).progress("x").enabled
    bar = Console(io.StringIO(), Terminal()).progress("importing bars.csv", 2_000, "bytes")
    bar.update(1_000)
    bar.update(2_000)
    shown = cast(io.StringIO, bar.stream).getvalue()
    bar.close()
    assert "importing bars.csv [" in shown and " 50%" in shown and "2,000/2,000 bytes" in shown
    assert cast(io.StringIO, bar.stream).getvalue().endswith("\r\x1b[K")
    seed(db_url, tmp_path, [0, 1])  # and a command run off a terminal writes nothing to stderr (ok() checks)
    assert run("series", "--url", db_url).err == ""


def test_export_reads_in_short_transactions(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tradestore.cli import file_commands

    monkeypatch.setattr(file_commands, "READ_BATCH", 3)
    seed(db_url, tmp_path, [0, 1, 2, 3, 4, 5, 7])  # 7 bars: batches of 3, 3 and 1
    out = tmp_path / "out.csv"
    assert "exported 7 1m bars" in ok("export", "ohlcv", "binance", "BTCUSDT", "1m", "-o", out, "--url", db_url).out
    assert [line[14:16] for line in out.read_text().splitlines()[1:]] == ["00", "01", "02", "03", "04", "05", "07"]


def test_import_reports_bars_written_not_rows_read(db_url: str, tmp_path: Path) -> None:
    csv = tmp_path / "repeats.csv"
    csv.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01T00:00:00Z,1,2,1,1,1\n"
        "2024-01-01T00:00:00Z,1,2,1,1.5,1\n"
        "2024-01-01T00:00:00Z,1,2,1,2,1\n"
    )
    result = ok("import", "ohlcv", csv, *SERIES, "--url", db_url, "--json").json
    assert (result["bars"], result["files"][0]["rows"], result["files"][0]["bars"]) == (1, 3, 1)
    assert [b.close for b in stored(db_url)] == [Decimal(2)]  # the last of the three
    text = ok("import", "ohlcv", csv, *SERIES, "--url", db_url, "--chunk-rows", "1").out  # across chunks too
    assert "imported 1 1m bars" in text and "2 rows repeated a timestamp" in text


def test_distinct_counter_against_a_set() -> None:
    from tradestore.cli.file_commands import DistinctCounter

    rng = random.Random(8)
    for values in ([1, 2, 3], [3, 2, 1], [1, 1, 2, 2], [5, 1, 5, 9, 1], [rng.randrange(50) for _ in range(500)]):
        counter = DistinctCounter()
        for minute in values:
            counter.add(T0 + timedelta(minutes=minute))
        assert (counter.added, counter.distinct) == (len(values), len(set(values))), values


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        ("latin1.csv", b"timestamp,open,high,low,close,volume\n2024-01-01,1,2,1,1,1\n2024-01-02,1,2,1,1,1 \xe9\n", 3),
        ("latin1.json", b'[[1704067200000, 1, 2, 1, 1, 1],\n "\xff"]', 2),
    ],
)
def test_a_file_that_is_not_utf8_names_file_and_line(
    sqlite_url: str, tmp_path: Path, name: str, content: bytes, where: int
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    line = fails("import", "ohlcv", path, *SERIES, "--url", sqlite_url)
    assert f"{path} line {where}: not UTF-8 text" in line and "UnicodeDecodeError" not in line
    assert stored(sqlite_url) == []


def test_export_force_through_a_symlink_replaces_the_file_it_points_to(db_url: str, tmp_path: Path) -> None:
    seed(db_url, tmp_path, [0, 1])
    real, link = tmp_path / "real.csv", tmp_path / "link.csv"
    real.write_text("old")
    link.symlink_to(real)
    ok("export", "ohlcv", "binance", "BTCUSDT", "1m", "-o", link, "--force", "--url", db_url)
    assert link.is_symlink() and real.read_text().startswith("timestamp,") and len(real.read_text().splitlines()) == 3


def test_export_force_into_a_fifo_writes_into_it(sqlite_url: str, tmp_path: Path) -> None:
    seed(sqlite_url, tmp_path, [0, 1, 2])
    fifo = tmp_path / "bars.fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    try:
        ok("export", "ohlcv", "binance", "BTCUSDT", "1m", "-o", fifo, "--force", "--url", sqlite_url)
    finally:
        if reader.is_alive():  # the export failed before opening it: let the reader go
            with fifo.open("w"):
                pass
        reader.join(10)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and len(received[0].splitlines()) == 4
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_export_errors_name_the_users_path(sqlite_url: str, tmp_path: Path) -> None:
    seed(sqlite_url, tmp_path, [0])
    missing = tmp_path / "no-such-folder" / "out.csv"
    line = fails("export", "ohlcv", "binance", "BTCUSDT", "1m", "-o", missing, "--url", sqlite_url)
    assert str(missing) in line and "does not exist" in line and ".partial" not in line
    assert "is a folder" in fails("export", "ohlcv", "binance", "BTCUSDT", "1m", "-o", tmp_path, "--force",
                                  "--url", sqlite_url)  # fmt: skip
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):  # root writes anywhere: the permission case cannot be made here
        return
    line = fails("export", "ohlcv", "binance", "BTCUSDT", "1m", "-o", locked / "out.csv", "--url", sqlite_url)
    assert str(locked / "out.csv") in line and ".partial" not in line
