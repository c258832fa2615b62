"""What every dataclass shares: the allowed values of its enumerations and the checks of its fields."""

from __future__ import annotations

from decimal import Decimal

from tradestore.errors import ValidationError
from tradestore.values import (
    to_count,
    to_id,
)

SIDES = ("long", "short")
ACTIONS = ("open", "close", "liquidated")
MODES = ("live", "paper", "backtest", "optimization", "test")
TRADE_STATUSES = ("open", "closed", "cancelled")
SEVERITIES = ("debug", "info", "warning", "error", "critical")
POSITION_STATUSES = ("open", "closed")


def _optional_count(field: str, value: object) -> int | None:
    """A count field: an ``int`` (numpy's too), or a whole float, which is what a row of a
    DataFrame with a float column next to it (``iterrows()``) holds."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():  # numpy's float64 is a float
        value = int(value)
    return to_count(field, value)


def _positive(field: str, value: Decimal) -> Decimal:
    if value <= 0:
        raise ValidationError(f"{field}: must be greater than 0, got {value!r}")
    return value


def _not_negative(field: str, value: Decimal) -> Decimal:
    if value < 0:
        raise ValidationError(f"{field}: must not be negative, got {value!r}")
    return value


def _optional_id(value: object) -> int | None:
    return None if value is None else to_id("id", value)
