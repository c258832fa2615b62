"""What every dataclass shares: the allowed values of its enumerations and the checks of its fields."""

from __future__ import annotations

from decimal import Decimal

from tradestore.errors import ValidationError
from tradestore.values import (
    to_count,
    to_id,
    to_optional_decimal,
)

SIDES = ("long", "short")
ACTIONS = ("open", "close", "liquidated")
MODES = ("live", "paper", "backtest", "optimization", "test")
TRADE_STATUSES = ("open", "closed", "cancelled")
SEVERITIES = ("debug", "info", "warning", "error", "critical")
POSITION_STATUSES = ("open", "closed")
BOT_STATUSES = ("starting", "running", "stopped", "error")


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


def _optional_positive(field: str, value: object) -> Decimal | None:
    """``value`` as an exact decimal greater than 0, or ``None``."""
    found = to_optional_decimal(field, value)
    return None if found is None else _positive(field, found)


def _not_negative(field: str, value: Decimal) -> Decimal:
    if value < 0:
        raise ValidationError(f"{field}: must not be negative, got {value!r}")
    return value


def _optional_id(value: object) -> int | None:
    return None if value is None else to_id("id", value)
