"""Value coercion shared by the domain objects and the column types.

Money is ``Decimal`` and time is an aware UTC ``datetime`` everywhere. These helpers turn
what callers pass into those two forms, or raise a ``ValidationError`` that names the field
and the value. They also hold the exact text forms SQLite stores, so every path that talks
to SQLite (ORM types and the bulk paths) encodes values the same way, and the one helper
that cuts a stream of values into chunks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation
from itertools import islice
from typing import Any, TypeVar

from tradestore.errors import ValidationError

T = TypeVar("T")

#: Adds and subtracts without rounding, whatever the number of digits.
EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def to_decimal(field: str, value: object) -> Decimal:
    """Return ``value`` as a finite ``Decimal``.

    ``int`` and ``str`` convert exactly; a ``float`` converts through its shortest
    ``repr``, so ``0.1`` becomes ``Decimal('0.1')``.

    Raises:
        ValidationError: for NaN, sNaN, infinities, booleans, unparsable text or other types.
    """
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise ValidationError(f"{field}: expected a number, got {value!r}")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValidationError(f"{field}: not a number: {value!r}") from None
    else:
        raise ValidationError(f"{field}: expected a Decimal, int, str or float, got {value!r}")
    if not result.is_finite():
        raise ValidationError(f"{field}: must be finite, got {value!r}")
    return result


def to_optional_decimal(field: str, value: object) -> Decimal | None:
    """Like :func:`to_decimal`, letting ``None`` through."""
    return None if value is None else to_decimal(field, value)


def to_utc(field: str, value: object) -> datetime:
    """Return ``value`` as an aware UTC datetime; a naive one is taken as UTC.

    Raises:
        ValidationError: when ``value`` is not a ``datetime``.
    """
    if not isinstance(value, datetime):
        raise ValidationError(f"{field}: expected a datetime, got {value!r}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        return value.replace(tzinfo=UTC)
    if value.tzinfo is UTC:
        return value
    return value.astimezone(UTC)


def to_optional_utc(field: str, value: object) -> datetime | None:
    """Like :func:`to_utc`, letting ``None`` through."""
    return None if value is None else to_utc(field, value)


def to_text(field: str, value: object, *, choices: tuple[str, ...] | None = None) -> str:
    """Return ``value`` as a non-empty string without NUL bytes (one of ``choices`` if given).

    Raises:
        ValidationError: for other types, empty text, a NUL byte or a value not in ``choices``.
    """
    if not isinstance(value, str):
        raise ValidationError(f"{field}: expected a string, got {value!r}")
    if choices is not None and value not in choices:
        raise ValidationError(f"{field}: must be one of {', '.join(choices)}; got {value!r}")
    if not value:
        raise ValidationError(f"{field}: must not be empty")
    if "\x00" in value:
        raise ValidationError(f"{field}: must not contain a NUL byte, got {value!r}")
    return value


def to_optional_text(field: str, value: object) -> str | None:
    """Like :func:`to_text`, letting ``None`` through."""
    return None if value is None else to_text(field, value)


def to_count(field: str, value: object) -> int:
    """Return ``value`` if it is a non-negative ``int`` (a limit, a count).

    Raises:
        ValidationError: for anything else, booleans included.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{field}: expected a non-negative int, got {value!r}")
    return value


def to_id(field: str, value: object) -> int:
    """Return ``value`` if it is an ``int`` database id.

    Raises:
        ValidationError: for anything else, booleans included.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{field}: expected an integer id, got {value!r}")
    return value


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return to_utc("json", value).isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_dumps(value: object) -> str:
    """Serialise to JSON text; Decimal and datetime become strings, NaN is refused."""
    return json.dumps(value, default=_json_default, allow_nan=False, ensure_ascii=False)


def to_json_object(field: str, value: object) -> dict[str, Any] | None:
    """Return ``value`` as plain JSON data (a dict), or ``None``.

    Decimal and datetime values inside become strings, exactly as they will be stored.

    Raises:
        ValidationError: when ``value`` is not a dict or holds something JSON cannot carry.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(f"{field}: expected a JSON object (dict), got {value!r}")
    try:
        text = json_dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{field}: not JSON serialisable ({exc}): {value!r}") from None
    if "\\u0000" in text:
        raise ValidationError(f"{field}: must not contain a NUL character: {value!r}")
    result: dict[str, Any] = json.loads(text)
    return result


# --- the exact text forms SQLite stores -------------------------------------------------


def datetime_to_sqlite(value: datetime) -> str:
    """Fixed-width ISO-8601 text, so text order is time order: ``2024-01-02 03:04:05.000000+00:00``."""
    return value.isoformat(" ", "microseconds")


def datetime_from_sqlite(value: str) -> datetime:
    """Parse the text written by :func:`datetime_to_sqlite` into an aware UTC datetime."""
    result = datetime.fromisoformat(value)
    if result.tzinfo is None:
        return result.replace(tzinfo=UTC)
    return result if result.tzinfo is UTC else result.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def epoch_seconds(value: datetime) -> int:
    """Whole seconds since the Unix epoch of an aware datetime, rounded down."""
    return (value - _EPOCH) // _SECOND


def datetime_from_epoch(value: int) -> datetime:
    """The aware UTC datetime ``value`` whole seconds after the Unix epoch."""
    return datetime.fromtimestamp(value, UTC)


def floor_second(value: datetime) -> datetime:
    """``value`` without its fraction of a second (the last whole second at or before it)."""
    return value.replace(microsecond=0)


def ceil_second(value: datetime) -> datetime:
    """The first whole second at or after ``value``."""
    return value if not value.microsecond else value.replace(microsecond=0) + _SECOND


def decimal_from_db(value: Any) -> Decimal:
    """Read a stored decimal: text on SQLite, ``Decimal`` already on PostgreSQL."""
    return value if isinstance(value, Decimal) else Decimal(value)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last may be shorter), read lazily."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
