"""Ranges of bars: ``(first bar start, last bar start)`` pairs, both inclusive. No database code.

Runs of consecutive bars, merging, subtracting, and leaving out the weekend: the arithmetic
behind the coverage ledger (``mark_fetched``, ``missing_ranges``) and ``get_gaps``' options.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from itertools import pairwise
from operator import sub

from tradestore import timeframes

BarRange = tuple[datetime, datetime]
_SATURDAY = 5
_DAY = timedelta(days=1)


def step(timeframe: str, bar_start: datetime, bars: int) -> datetime:
    """:func:`tradestore.timeframes.shift`, held at the calendar's ends instead of overflowing."""
    try:
        return timeframes.shift(timeframe, bar_start, bars)
    except (OverflowError, ValueError):
        return bar_start


def runs(timeframe: str, stamps: Sequence[datetime]) -> list[BarRange]:
    """The runs of consecutive bars among sorted, distinct bar starts."""
    if not stamps:
        return []
    if timeframe == timeframes.MONTH:
        breaks = [i for i in range(1, len(stamps)) if step(timeframe, stamps[i - 1], 1) != stamps[i]]
    else:
        bar = timedelta(seconds=timeframes.FIXED_SECONDS[timeframe])
        breaks = [i for i, d in enumerate(map(sub, stamps[1:], stamps[:-1]), 1) if d != bar]
    edges = [0, *breaks, len(stamps)]
    return [(stamps[a], stamps[b - 1]) for a, b in pairwise(edges)]


def merge(timeframe: str, ranges: Iterable[BarRange]) -> list[BarRange]:
    """``ranges`` as few sorted ranges as cover the same bars (overlapping or touching ones joined)."""
    merged: list[BarRange] = []
    for first, last in sorted(ranges):
        if merged and first <= step(timeframe, merged[-1][1], 1):
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def subtract(timeframe: str, ranges: Iterable[BarRange], cuts: Iterable[BarRange]) -> list[BarRange]:
    """The bars of ``ranges`` that are in none of ``cuts``, as sorted ranges."""
    holes = merge(timeframe, cuts)
    left: list[BarRange] = []
    for first, last in merge(timeframe, ranges):
        start, used_up = first, False
        for cut_first, cut_last in holes:
            if cut_last < start:
                continue
            if cut_first > last:
                break
            if cut_first > start:
                left.append((start, step(timeframe, cut_first, -1)))
            if cut_last >= last:
                used_up = True
                break
            start = step(timeframe, cut_last, 1)
        if not used_up:
            left.append((start, last))
    return left


def weekdays_only(timeframe: str, ranges: Iterable[BarRange]) -> list[BarRange]:
    """``ranges`` without the bars that lie wholly in a weekend (Saturday 00:00 to Monday 00:00 UTC).

    Bars longer than two days (``3d``, ``1w``, ``1M``) always hold a weekday and are kept.
    """
    ranges = merge(timeframe, ranges)
    if timeframe == timeframes.MONTH or timeframes.FIXED_SECONDS[timeframe] > 2 * 86_400:
        return ranges
    length = timedelta(seconds=timeframes.FIXED_SECONDS[timeframe])
    weekends: list[BarRange] = []
    for first, last in ranges:
        # The Saturday 00:00 on or before ``first``, then every week until ``last``.
        midnight = first.replace(hour=0, minute=0, second=0, microsecond=0)
        try:
            saturday = midnight - timedelta(days=(first.weekday() - _SATURDAY) % 7)
        except OverflowError:  # before year 1: that weekend holds no bar, start at the next one
            saturday = midnight + timedelta(days=(_SATURDAY - first.weekday()) % 7)
        while saturday <= last:
            # Bars starting at or after Saturday 00:00 and ending by Monday 00:00.
            inside = (timeframes.ceil(timeframe, saturday), timeframes.floor(timeframe, saturday + 2 * _DAY - length))
            if inside[0] <= inside[1]:
                weekends.append(inside)
            try:
                saturday += 7 * _DAY
            except OverflowError:  # past 9999-12-31: no later weekend
                break
    return subtract(timeframe, ranges, weekends)
