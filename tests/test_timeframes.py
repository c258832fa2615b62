"""Timeframe alignment and stepping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tradestore import timeframes
from tradestore.errors import ValidationError


def test_known_timeframes() -> None:
    assert timeframes.TIMEFRAMES == (
        "1m",
        "3m",
        "5m",
        "15m",
        "30m",
        "1h",
        "2h",
        "4h",
        "6h",
        "8h",
        "12h",
        "1d",
        "3d",
        "1w",
        "1M",
    )
    with pytest.raises(ValidationError, match="'2w'"):
        timeframes.check("2w")


@pytest.mark.parametrize(
    ("timeframe", "moment", "aligned"),
    [
        ("1m", datetime(2024, 5, 5, 3, 7, tzinfo=UTC), True),
        ("5m", datetime(2024, 5, 5, 3, 7, tzinfo=UTC), False),
        ("4h", datetime(2024, 5, 5, 4, tzinfo=UTC), True),
        ("1d", datetime(2024, 5, 5, tzinfo=UTC), True),
        ("3d", datetime(2024, 1, 3, tzinfo=UTC), True),
        ("3d", datetime(2024, 1, 2, tzinfo=UTC), False),
        ("1w", datetime(2024, 1, 1, tzinfo=UTC), True),  # a Monday
        ("1w", datetime(2024, 1, 7, tzinfo=UTC), False),
        ("1M", datetime(2024, 2, 1, tzinfo=UTC), True),
        ("1M", datetime(2024, 2, 1, 0, 1, tzinfo=UTC), False),
    ],
)
def test_alignment(timeframe: str, moment: datetime, aligned: bool) -> None:
    assert timeframes.is_aligned(timeframe, moment) is aligned


def test_months_step_by_the_calendar() -> None:
    jan = datetime(2024, 1, 1, tzinfo=UTC)
    assert timeframes.shift("1M", jan, 1) == datetime(2024, 2, 1, tzinfo=UTC)
    assert timeframes.shift("1M", jan, -1) == datetime(2023, 12, 1, tzinfo=UTC)
    assert timeframes.shift("1M", jan, 14) == datetime(2025, 3, 1, tzinfo=UTC)
    assert timeframes.count_between("1M", datetime(2023, 11, 1, tzinfo=UTC), jan) == 3


def test_floor_and_ceil() -> None:
    t = datetime(2024, 1, 3, 10, 30, tzinfo=UTC)  # a Wednesday
    assert timeframes.floor("1w", t) == datetime(2024, 1, 1, tzinfo=UTC)
    assert timeframes.ceil("1w", t) == datetime(2024, 1, 8, tzinfo=UTC)
    assert timeframes.floor("1h", t) == datetime(2024, 1, 3, 10, tzinfo=UTC)
    assert timeframes.ceil("1h", datetime(2024, 1, 3, 10, tzinfo=UTC)) == datetime(2024, 1, 3, 10, tzinfo=UTC)
    assert timeframes.ceil("1M", t) == datetime(2024, 2, 1, tzinfo=UTC)
