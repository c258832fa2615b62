"""The example scripts run as a user runs them, on both backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_decisions_and_approvals(fresh_url: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "decisions_and_approvals.py"), "--url", fresh_url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "was caused by decision" in done.stdout and "net P&L 118.8" in done.stdout
    assert "second reviewer: proposal 1: cannot move approved → rejected" in done.stdout
    assert done.stdout.rstrip().endswith("executed at 150.25")
