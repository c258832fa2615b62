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


class EquityPass:
    """``equity_summary(timestamp, equity)`` over rows in timestamp order: see ``Backend.equity_summary``.

    Returns JSON text ``{"count", "first", "closes", "peak", "trough", "recovered", "ordered"}``
    with timestamps and equities as the stored text. One call per row: the float of the
    equity decides most rows (float() never reverses the order of two decimals, it can only
    tie them), and only a possible new peak or new low is parsed as an exact ``Decimal``.
    ``ordered`` is false if the rows did not arrive in timestamp order (the caller then asks
    again); also used directly on rows in Python by that fallback.
    """

    def __init__(self) -> None:
        self.count = 0
        self.first: tuple[str, str] | None = None
        self.last_ts = ""
        self.last_eq = ""
        self.closes: list[tuple[str, str]] = []
        self.ordered = True
        self.peak: Decimal | None = None
        self.peak_ts = ""
        self.fpeak = -math.inf
        self.low = _ZERO
        self.flow = math.inf
        # (peak, drop, peak time, peak text, trough time, trough text) of the largest drawdown so far
        self.best: tuple[Decimal, Decimal, str, str, str, str] | None = None
        self.pending: Decimal | None = None
        self.recovered: str | None = None

    def step(self, ts: str, eq: str) -> None:
        self.count += 1
        last = self.last_ts
        if self.first is None:
            self.first = (ts, eq)
        elif ts[:10] != last[:10]:  # 'YYYY-MM-DD': a new UTC day, so the previous row closed one
            self.closes.append((last, self.last_eq))
            if ts < last:
                self.ordered = False
        elif ts <= last:
            self.ordered = False
        self.last_ts, self.last_eq = ts, eq
        f = float(eq)
        exact: Decimal | None = None
        if f >= self.fpeak:
            exact = Decimal(eq)
            peak = self.peak
            if peak is None or exact >= peak:
                if self.pending is not None and exact >= self.pending:
                    self.recovered, self.pending = ts, None
                if peak is None or exact > peak:
                    self.peak, self.fpeak = exact, f
                self.peak_ts, self.low, self.flow = ts, exact, f
                return
        if f <= self.flow:
            if exact is None:
                exact = Decimal(eq)
            if exact < self.low:
                self.low, self.flow = exact, f
                peak = self.peak
                assert peak is not None
                drop = EXACT.subtract(peak, exact)
                best = self.best
                # drop / peak > best drop / best peak, compared exactly (both peaks are positive)
                if peak > 0 and (best is None or EXACT.multiply(drop, best[0]) > EXACT.multiply(best[1], peak)):
                    self.best = (peak, drop, self.peak_ts, str(peak), ts, eq)
                    self.pending, self.recovered = peak, None

    def result(self) -> dict[str, Any] | None:
        if self.first is None:
            return None
        best = self.best
        return {
            "count": self.count,
            "first": self.first,
            "closes": [*self.closes, (self.last_ts, self.last_eq)],
            "peak": None if best is None else (best[2], best[3]),
            "trough": None if best is None else (best[4], best[5]),
            "recovered": self.recovered,
            "ordered": self.ordered,
        }

    def finalize(self) -> str | None:
        found = self.result()
        return None if found is None else json.dumps(found)


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
    connection.create_aggregate("equity_summary", 2, EquityPass)  # type: ignore[arg-type]
