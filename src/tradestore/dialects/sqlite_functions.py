"""SQLite's exact-decimal functions and aggregates, registered on every connection."""

from __future__ import annotations

import json
import math
import sqlite3
from decimal import Decimal
from typing import Any

from tradestore.types import DECIMAL_COLLATION
from tradestore.values import EXACT


def _compare(a: str, b: str) -> int:
    x, y = Decimal(a), Decimal(b)
    return (x > y) - (x < y)


def _sub(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return None
    return str(EXACT.subtract(Decimal(a), Decimal(b)))


def _sign(a: str | None) -> int | None:
    if a is None:
        return None
    value = Decimal(a)
    return (value > 0) - (value < 0)


class _Sum:
    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: str | None) -> None:
        if value is not None:
            number = Decimal(value)
            self.total = number if self.total is None else EXACT.add(self.total, number)

    def finalize(self) -> str | None:
        return None if self.total is None else str(self.total)


class _Max:
    def __init__(self) -> None:
        self.best: Decimal | None = None

    def step(self, value: str | None) -> None:
        if value is not None:
            number = Decimal(value)
            if self.best is None or self._better(number, self.best):
                self.best = number

    @staticmethod
    def _better(candidate: Decimal, best: Decimal) -> bool:
        return candidate > best

    def finalize(self) -> str | None:
        return None if self.best is None else str(self.best)


class _Min(_Max):
    @staticmethod
    def _better(candidate: Decimal, best: Decimal) -> bool:
        return candidate < best


class _NetBySign:
    """``decimal_net_by_sign(gain, cost)``: per sign of ``net = gain - cost``, as JSON text.

    ``{"-1" | "0" | "1": [rows, sum of net, largest net, smallest net, sum of cost], …}``,
    decimals as exact text. One call per row where ``dec_sub``, ``dec_sign`` and four
    aggregates would make six.
    """

    def __init__(self) -> None:
        self.groups: dict[int, list[Any]] = {}

    def step(self, gain: str | None, cost: str | None) -> None:
        if gain is None or cost is None:
            return
        paid = Decimal(cost)
        net = EXACT.subtract(Decimal(gain), paid)
        sign = 1 if net > _ZERO else -1 if net < _ZERO else 0
        group = self.groups.get(sign)
        if group is None:
            self.groups[sign] = [1, net, net, net, paid]
            return
        group[0] += 1
        group[1] = EXACT.add(group[1], net)
        if net > group[2]:
            group[2] = net
        elif net < group[3]:
            group[3] = net
        group[4] = EXACT.add(group[4], paid)

    def finalize(self) -> str:
        return json.dumps({sign: [g[0], *map(str, g[1:])] for sign, g in self.groups.items()})


class _StepGaps:
    """``step_gaps(value, ordinal, step)`` over rows in ``value`` order: the gaps, as JSON text.

    ``[[previous value, value], …]`` for neighbours whose ordinals differ by more than
    ``step``; ``null`` if the rows did not arrive in order (SQL does not promise the order rows
    reach an aggregate; the caller then asks again with ``LAG()``). No rows give SQL NULL.
    """

    def __init__(self) -> None:
        self.previous: tuple[Any, int] | None = None
        self.found: list[tuple[Any, Any]] = []
        self.ordered = True

    def step(self, value: Any, ordinal: int, step: int) -> None:
        previous = self.previous
        if previous is not None:
            distance = ordinal - previous[1]
            if distance > step:
                self.found.append((previous[0], value))
            elif distance < 0:
                self.ordered = False
        self.previous = (value, ordinal)

    def finalize(self) -> str:
        return json.dumps(self.found if self.ordered else None)


class EquityScan:
    """``equity_scan(timestamp, equity)``: the rows of an equity curve that matter, as JSON text.

    One call per row, deciding on the float of the equity: most rows neither reach the running
    peak nor fall far enough below it to be the largest drawdown, and a float says so. The rows
    that might (and the first row, and the last of each UTC day) are kept by timestamp text,
    for the caller to read exactly and replay through :class:`Drawdown`. Returns ``{"closes",
    "kept", "ordered"}``, the first row being the first kept; ``ordered`` is false if the rows
    did not arrive in timestamp order (SQL does not promise the order rows reach an aggregate:
    the caller then asks again).

    Why no row that matters is lost: ``float()`` of a decimal text is correctly rounded, so it
    never reverses the order of two decimals, only ties them (ties are kept unless the texts
    are equal); a float drawdown short of the best one by more than a relative 1e-12 (far above
    the rounding of two floats and a division) is short of it exactly; and of a run of rows with
    the same text at the peak, the first and the last say all the middle ones would.
    """

    MARGIN = 1e-12

    def __init__(self) -> None:
        self.last_ts = ""
        self.day_end = ""  # the timestamp texts of the current UTC day are below it
        self.closes: list[str] = []
        self.kept: list[str] = []
        self.ordered = True
        self.peak = -math.inf  # the running peak, as a float: rows at or above it may be at the peak
        self.tail = ("", "")  # (timestamp, equity) texts of the last row at the peak
        self.replace_tail = False  # the last kept row is inside a run of one text at the peak
        self.low = math.inf  # the lowest float since the peak: rows at or below it may be a new low
        self.low_text = ""
        self.worst = -math.inf  # the largest float drawdown of a kept row, less the margin
        self.keep_all = False  # a float overflowed: no float decides any more, every row is kept

    def step(self, ts: str, eq: str) -> None:
        if ts >= self.day_end:
            self._new_day(ts)
        elif ts <= self.last_ts:
            self.ordered = False
        f = float(eq)
        if f >= self.peak:
            self._peak(ts, eq, f)
        elif f <= self.low:
            self._low(ts, eq, f)
        self.last_ts = ts

    def _new_day(self, ts: str) -> None:
        if self.last_ts:
            self.closes.append(self.last_ts)
        self.day_end = ts[:10] + "~"  # 'YYYY-MM-DD~' is above every time text of that day

    def _peak(self, ts: str, eq: str, f: float) -> None:
        if self.keep_all:
            self.kept.append(ts)
            return
        previous = self.tail
        self.tail = (ts, eq)
        if previous[0] == self.last_ts and previous[1] == eq:  # the same as the row before
            if self.replace_tail:
                self.kept[-1] = ts
            else:
                self.kept.append(ts)
                self.replace_tail = True
            return
        self.kept.append(ts)
        self.replace_tail = False
        if f == math.inf:  # beyond a float's range: from here on every row comes here (f >= -inf)
            self.keep_all, self.peak = True, -math.inf
            return
        self.peak = max(self.peak, f)
        self.low, self.low_text = f, eq

    def _low(self, ts: str, eq: str, f: float) -> None:
        if eq == self.low_text:  # equal to the lowest so far: not lower
            return
        self.low, self.low_text = f, eq
        peak = self.peak
        if peak <= 0:  # no drawdown in floats, but perhaps exactly (a peak too small for a float)
            self.kept.append(ts)
            return
        drawdown = (peak - f) / peak
        if drawdown >= self.worst:
            self.kept.append(ts)
            self.worst = max(self.worst, drawdown - (1 + drawdown) * self.MARGIN)

    def result(self) -> dict[str, Any] | None:
        if not self.last_ts:
            return None
        return {"closes": [*self.closes, self.last_ts], "kept": self.kept, "ordered": self.ordered}

    def finalize(self) -> str | None:
        found = self.result()
        return None if found is None else json.dumps(found)


class Drawdown:
    """The largest drawdown of an equity curve fed row by row in timestamp order, exactly.

    See ``Backend.equity_summary``: ``peak`` is the last time at the running peak before the
    trough, ``trough`` the first time at the lowest equity, ``recovered`` the first time after
    the trough back at the peak. Rows that can neither be at the peak nor a new low may be
    left out (see :class:`EquityScan`): the result is the same.
    """

    def __init__(self) -> None:
        self.peak: tuple[Any, Decimal] | None = None  # (time, equity) of the last row at the running peak
        self.low = _ZERO
        # (peak, drop, trough) of the largest drawdown so far; the peak as (time, equity)
        self.best: tuple[tuple[Any, Decimal], Decimal, tuple[Any, Decimal]] | None = None
        self.pending: Decimal | None = None  # the peak of the best drawdown, until recovered
        self.recovered: Any = None

    def step(self, ts: Any, equity: Decimal) -> None:
        peak = self.peak
        if peak is None or equity >= peak[1]:
            if self.pending is not None and equity >= self.pending:
                self.recovered, self.pending = ts, None
            self.peak, self.low = (ts, equity if peak is None or equity > peak[1] else peak[1]), equity
            return
        if equity < self.low:
            self.low = equity
            top = peak[1]
            drop = EXACT.subtract(top, equity)
            best = self.best
            # drop / top > best drop / best peak, compared exactly (both peaks are positive)
            if top > 0 and (best is None or EXACT.multiply(drop, best[0][1]) > EXACT.multiply(best[1], top)):
                self.best = (peak, drop, (ts, equity))
                self.pending, self.recovered = top, None


_ZERO = Decimal(0)


def register_sqlite_functions(connection: sqlite3.Connection) -> None:
    """Give a SQLite connection the collation and functions exact decimals need."""
    connection.create_collation(DECIMAL_COLLATION, _compare)
    connection.create_function("decimal_sub", 2, _sub, deterministic=True)
    connection.create_function("decimal_sign", 1, _sign, deterministic=True)
    # typeshed's aggregate protocol wants int arguments; SQLite hands these text.
    connection.create_aggregate("decimal_sum", 1, _Sum)  # type: ignore[arg-type]
    connection.create_aggregate("decimal_max", 1, _Max)  # type: ignore[arg-type]
    connection.create_aggregate("decimal_min", 1, _Min)  # type: ignore[arg-type]
    connection.create_aggregate("decimal_net_by_sign", 2, _NetBySign)  # type: ignore[arg-type]
    connection.create_aggregate("step_gaps", 3, _StepGaps)  # type: ignore[arg-type]
    connection.create_aggregate("equity_scan", 2, EquityScan)  # type: ignore[arg-type]
