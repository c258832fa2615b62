"""Run the ``tradestore`` command in-process, as a user would type it, and capture what it prints."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradestore.cli import main

CSV_HEADER = "timestamp,open,high,low,close,volume\n"


@dataclass
class Result:
    """Exit status and output of one run."""

    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.out)


def run(*argv: str | Path) -> Result:
    """``tradestore ARGV…`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], stdout=out, stderr=err)
    return Result(code, out.getvalue(), err.getvalue())


def ok(*argv: str | Path) -> Result:
    """Like :func:`run`, asserting success with nothing on stderr."""
    result = run(*argv)
    assert result.code == 0, result.err
    assert result.err == "", result.err
    return result


def fails(*argv: str | Path) -> str:
    """Like :func:`run`, asserting failure with one line ``error: …`` on stderr; returns that line."""
    result = run(*argv)
    assert result.code == 1, (result.code, result.out, result.err)
    assert result.err.startswith("error: ") and result.err.count("\n") == 1, result.err
    return result.err.strip()


def minutes_csv(path: Path, minutes: list[int], *, close: str = "100.5") -> Path:
    """A CSV of 1m BTCUSDT-like bars at the given minutes after 2024-01-01 00:00 UTC."""
    lines = [CSV_HEADER]
    for m in minutes:
        lines.append(f"2024-01-01T{m // 60:02d}:{m % 60:02d}:00Z,100,101,99,{close},12.5\n")
    path.write_text("".join(lines))
    return path


def seed(url: str, path: Path, minutes: list[int], *, symbol: str = "BTCUSDT") -> None:
    """Create the schema at ``url`` and import 1m bars of binance ``symbol`` at ``minutes``."""
    ok("db", "upgrade", "--url", url)
    csv = minutes_csv(path / f"{symbol}.csv", minutes)
    ok("import", "ohlcv", csv, "--exchange", "binance", "--symbol", symbol, "--timeframe", "1m", "--url", url)
