"""The reliability suite: what tradestore promises under concurrency, crashes, cancellation,
dropped connections and hostile input (issue #4), on SQLite and PostgreSQL.

CI runs every trial a modest number of times; ``--reliability-runs N`` repeats the trials
(kills, cancellations, hypothesis examples) N times each. ``--pg-restart`` adds the test that
restarts the local PostgreSQL server for real. The figures of the run (tasks, trials, bad
inputs tried) are printed at the end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

FIGURES: Counter[str] = Counter()


@pytest.fixture
def runs(request: pytest.FixtureRequest) -> Callable[[int], int]:
    """``runs(n)``: how many times to repeat a trial that CI repeats ``n`` times."""
    wanted: int | None = request.config.getoption("--reliability-runs")

    def count(ci_default: int) -> int:
        return ci_default if wanted is None else wanted

    return count


@pytest.fixture
def figures() -> Counter[str]:
    """Counters reported at the end of the run, e.g. ``figures["kill trials (sqlite)"] += 1``."""
    return FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        for name, value in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {value:,}")
