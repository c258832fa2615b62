"""Candle timeframes: which exist, where their bars start, and how to step between bars.

Fixed timeframes are aligned to the Unix epoch (``1d`` bars start at 00:00 UTC, ``3d`` bars
every third day counted from 1970-01-01), ``1w`` bars start on Monday 00:00 UTC and ``1M``
bars on the first day of a calendar month, 00:00 UTC. No database code lives here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradestore.errors import ValidationError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)  # the first Monday after the epoch

#: Seconds per bar of each fixed timeframe; ``1M`` (a calendar month) is handled apart.
FIXED_SECONDS: dict[str, int] = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1_800,
    "1h": 3_600,
    "2h": 7_200,
    "4h": 14_400,
    "6h": 21_600,
    "8h": 28_800,
    "12h": 43_200,
    "1d": 86_400,
    "3d": 259_200,
    "1w": 604_800,
}
MONTH = "1M"
TIMEFRAMES: tuple[str, ...] = (*FIXED_SECONDS, MONTH)


def check(timeframe: object) -> str:
    """Return ``timeframe`` if it is known.

    Raises:
        ValidationError: naming the value and the known timeframes.
    """
    if not isinstance(timeframe, str) or timeframe not in TIMEFRAMES:
        raise ValidationError(f"timeframe: unknown timeframe {timeframe!r}; known: {' '.join(TIMEFRAMES)}")
    return timeframe


def _origin(timeframe: str) -> datetime:
    return _MONDAY if timeframe == "1w" else EPOCH


def is_aligned(timeframe: str, moment: datetime) -> bool:
    """Whether an aware ``moment`` is the start of a ``timeframe`` bar."""
    if timeframe == MONTH:
        return moment.day == 1 and moment.timetz().replace(tzinfo=None) == datetime.min.time()
    offset = moment - _origin(timeframe)
    return offset % timedelta(seconds=FIXED_SECONDS[timeframe]) == timedelta(0)


def floor(timeframe: str, moment: datetime) -> datetime:
    """The start of the bar that contains an aware UTC ``moment``."""
    if timeframe == MONTH:
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    origin = _origin(timeframe)
    step = timedelta(seconds=FIXED_SECONDS[timeframe])
    return origin + (moment - origin) // step * step


def ceil(timeframe: str, moment: datetime) -> datetime:
    """The start of the first bar at or after an aware UTC ``moment``."""
    start = floor(timeframe, moment)
    return start if start == moment else shift(timeframe, start, 1)


def shift(timeframe: str, bar_start: datetime, bars: int) -> datetime:
    """The start of the bar ``bars`` bars after (or before, if negative) ``bar_start``."""
    if timeframe == MONTH:
        months = bar_start.year * 12 + bar_start.month - 1 + bars
        return bar_start.replace(year=months // 12, month=months % 12 + 1)
    return bar_start + bars * timedelta(seconds=FIXED_SECONDS[timeframe])


def ordinal_step(timeframe: str) -> int:
    """Distance between two neighbouring bars in the units of ``ordinal``.

    Seconds for fixed timeframes, one for months.
    """
    return 1 if timeframe == MONTH else FIXED_SECONDS[timeframe]


def count_between(timeframe: str, first: datetime, last: datetime) -> int:
    """How many bars start in ``[first, last]``, both aligned starts; 0 when ``last < first``."""
    if last < first:
        return 0
    if timeframe == MONTH:
        return (last.year - first.year) * 12 + last.month - first.month + 1
    return (last - first) // timedelta(seconds=FIXED_SECONDS[timeframe]) + 1
