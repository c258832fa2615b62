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
MODES = ("live", "paper", "backtest")
SEVERITIES = ("debug", "info", "warning", "error", "critical")
POSITION_STATUSES = ("open", "closed")
BOT_STATUSES = ("starting", "running", "stopped", "error")


#: The largest count a BIGINT column (and SQLite's INTEGER) holds.
_BIGINT_MAX = 2**63 - 1


def _optional_count(field: str, value: object) -> int | None:
    if value is None:
        return None
    count = to_count(field, value)
    if count > _BIGINT_MAX:
        raise ValidationError(f"{field}: {value!r} does not fit a 64-bit integer column")
    return count


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
