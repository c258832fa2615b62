"""bar_ranges against a plain-Python reference: every range as the set of bar starts it holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tradestore import bar_ranges, timeframes

T0 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
TIMEFRAMES = ("1m", "1h", "12h", "1d", "3d", "1M")


def bar(timeframe: str, n: int) -> datetime:
    return timeframes.shift(timeframe, T0, n)


def starts(timeframe: str, ranges: list[tuple[datetime, datetime]]) -> set[datetime]:
    """Every bar start inside ``ranges`` (the reference form)."""
    found = set()
    for first, last in ranges:
        moment = first
        while moment <= last:
            found.add(moment)
            moment = timeframes.shift(timeframe, moment, 1)
    return found


def as_ranges(timeframe: str, bars: set[datetime]) -> list[tuple[datetime, datetime]]:
    """The reference: sorted maximal runs of a set of bar starts."""
    ordered = sorted(bars)
    out: list[tuple[datetime, datetime]] = []
    for moment in ordered:
        if out and timeframes.shift(timeframe, out[-1][1], 1) == moment:
            out[-1] = (out[-1][0], moment)
        else:
            out.append((moment, moment))
    return out


indexes = st.lists(st.integers(0, 60), max_size=25)
pairs = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=8)


def ranges_of(timeframe: str, spans: list[tuple[int, int]]) -> list[tuple[datetime, datetime]]:
    return [(bar(timeframe, a), bar(timeframe, a + n)) for a, n in spans]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(TIMEFRAMES), indexes)
def test_runs_are_the_maximal_runs(timeframe: str, picked: list[int]) -> None:
    bars = sorted({bar(timeframe, i) for i in picked})
    assert bar_ranges.runs(timeframe, bars) == as_ranges(timeframe, set(bars))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(TIMEFRAMES), pairs, pairs)
def test_merge_and_subtract_match_set_arithmetic(
    timeframe: str, spans: list[tuple[int, int]], cuts: list[tuple[int, int]]
) -> None:
    ranges, holes = ranges_of(timeframe, spans), ranges_of(timeframe, cuts)
    assert bar_ranges.merge(timeframe, ranges) == as_ranges(timeframe, starts(timeframe, ranges))
    expected = starts(timeframe, ranges) - starts(timeframe, holes)
    assert bar_ranges.subtract(timeframe, ranges, holes) == as_ranges(timeframe, expected)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(("1m", "15m", "1h", "12h", "1d", "3d", "1w", "1M")), pairs)
def test_weekdays_only_drops_exactly_the_bars_inside_weekends(timeframe: str, spans: list[tuple[int, int]]) -> None:
    base = timeframes.floor(timeframe, datetime(2024, 1, 5, 20, tzinfo=UTC))  # a Friday evening
    step = {"1m": 53, "15m": 5}.get(timeframe, 1)  # minute bars reach the weekend too
    ranges = [
        (timeframes.shift(timeframe, base, a * step), timeframes.shift(timeframe, base, (a + n) * step))
        for a, n in spans
    ]

    def weekend(moment: datetime) -> bool:
        if timeframe == "1M":
            return False
        end = moment + timedelta(seconds=timeframes.FIXED_SECONDS[timeframe])
        saturday = (moment - timedelta(days=(moment.weekday() - 5) % 7)).replace(hour=0, minute=0)
        return moment.weekday() >= 5 and end <= saturday + timedelta(days=2)

    expected = {m for m in starts(timeframe, ranges) if not weekend(m)}
    assert bar_ranges.weekdays_only(timeframe, ranges) == as_ranges(timeframe, expected)


def test_weekdays_only_at_the_calendars_ends() -> None:
    """The weekend before year 1 and the one after 9999 are not computed (they would overflow)."""
    lo, hi = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, tzinfo=UTC)
    assert bar_ranges.weekdays_only("1h", [(lo, lo + timedelta(hours=4))]) == [(lo, lo + timedelta(hours=4))]
    saturday = datetime(9999, 12, 25, tzinfo=UTC)
    assert bar_ranges.weekdays_only("1d", [(saturday, hi.replace(hour=0))]) == [
        (datetime(9999, 12, 27, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC))
    ]
    assert bar_ranges.weekdays_only("1h", [(hi - timedelta(hours=2), hi)]) == [(hi - timedelta(hours=2), hi)]
