"""Argument types: moments, durations and timeframes as a person types them."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

from tradestore import timeframes
from tradestore.errors import ValidationError
from tradestore.files.ohlcv import parse_timestamp

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def moment(text: str) -> datetime:
    """``2024-01-01``, ``2024-01-01T12:00``, ``2024-01-01T12:00:00Z`` or epoch seconds/milliseconds (UTC)."""
    try:
        return parse_timestamp(text)
    except ValidationError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: use ISO-8601 (2024-01-01 or 2024-01-01T12:00:00Z) or epoch seconds/ms"
        ) from None


def duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``30d`` or ``52w``."""
    found = _DURATION.match(text)
    if found is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: use a number and s, m, h, d or w (e.g. 30d)")
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


def age(text: str) -> timedelta:
    """A :func:`duration` that reaches back no further than the first day of year 1 (from now)."""
    try:
        span = duration(text)
        datetime.now(UTC) - span
    except OverflowError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is too long an age: it reaches back before the year 1 (e.g. 3650d is ten years)"
        ) from None
    return span


def timeframe(text: str) -> str:
    """One of the known timeframes."""
    try:
        return timeframes.check(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive(text: str) -> int:
    """A whole number of at least 1 (a chunk size)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value
