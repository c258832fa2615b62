"""The installed ``tradestore`` command and ``python -m tradestore`` as real processes (the rest runs in-process)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import CSV_HEADER, minutes_csv
from tradestore import schema

SCRIPT = Path(sys.executable).with_name("tradestore")


def tradestore(*argv: str | Path, cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        pytest.skip(f"the console script is not installed beside {sys.executable}")
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE} | kwargs
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [str(SCRIPT), *map(str, argv)], cwd=cwd, text=True, check=False, timeout=60, **streams
    )


def test_the_console_script_end_to_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    assert f"-> {schema.head_revision()}" in tradestore("db", "upgrade", "--url", url, cwd=tmp_path).stdout
    csv = minutes_csv(tmp_path / "bars.csv", [0, 1, 4])
    done = tradestore(
        "import", "ohlcv", csv, "--exchange", "binance", "--symbol", "BTCUSDT", "--timeframe", "1m", "--url", url,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == ""  # not a terminal: no progress bar
    gaps = json.loads(tradestore("gaps", "binance", "BTCUSDT", "1m", "--json", "--url", url, cwd=tmp_path).stdout)
    assert gaps["gaps"] == [{"first": "2024-01-01T00:02:00Z", "last": "2024-01-01T00:03:00Z", "missing": 2}]


def test_python_dash_m_and_a_failure_as_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tradestore", "stats", "--url", "postgresql://bot:s3cr3t-pw@127.0.0.1:1/x"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: ") and "cannot connect" in done.stderr and done.stderr.count("\n") == 1
    assert "s3cr3t-pw" not in done.stderr


def test_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    tradestore("db", "upgrade", "--url", url, cwd=tmp_path)
    csv = minutes_csv(tmp_path / "bars.csv", list(range(600)))
    primary, secondary = pty.openpty()
    try:
        done = tradestore(
            "import", "ohlcv", csv, "--exchange", "binance", "--symbol", "BTCUSDT", "--timeframe", "1m", "--url", url,
            cwd=tmp_path, stderr=secondary,
        )  # fmt: skip
        os.close(secondary)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal is closed once everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
    assert done.returncode == 0 and "imported 600 1m bars" in done.stdout
    text = shown.decode()
    assert "importing bars.csv [" in text and "100%" in text and text.endswith("\r\x1b[K")


def test_export_into_a_pipe_closed_early_ends_quietly(tmp_path: Path) -> None:
    """``tradestore export … -o - | head``: the reader leaving is not an error."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    tradestore("db", "upgrade", "--url", url, cwd=tmp_path)
    csv = tmp_path / "bars.csv"  # 10,000 bars: far more than a pipe holds
    csv.write_text(CSV_HEADER + "".join(f"{1704067200 + 60 * i},100,101,99,100.5,12.5\n" for i in range(10_000)))
    tradestore("import", "ohlcv", csv, "--exchange", "binance", "--symbol", "BTCUSDT", "--timeframe", "1m", "--url",
               url, cwd=tmp_path)  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "tradestore", "export", "ohlcv", "binance", "BTCUSDT", "1m", "-o", "-", "--url", url],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    head = [process.stdout.readline() for _ in range(2)]
    process.stdout.close()  # what `head -n 2` does once it has its lines
    err = process.stderr.read()
    assert process.wait(timeout=60) == 0, err
    assert head[0].startswith(b"timestamp,") and err == b""
