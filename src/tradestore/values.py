"""Value coercion shared by the domain objects and the column types.

Money is ``Decimal`` and time is an aware UTC ``datetime`` everywhere. These helpers turn
what callers pass into those two forms, or raise a ``ValidationError`` that names the field
and the value. They also hold the exact text forms SQLite stores, so every path that talks
to SQLite (ORM types and the bulk paths) encodes values the same way, and the one helper
that cuts a stream of values into chunks.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation
from itertools import islice
from typing import Any, SupportsIndex, TypeAlias, TypeVar

from tradestore.errors import ValidationError

T = TypeVar("T")

#: Adds and subtracts without rounding, whatever the number of digits.
EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


#: What a money or quantity parameter accepts: numbers, and text holding one. numpy's
#: ``float64`` is a ``float``, its integers have ``__index__``; both are accepted.
DecimalInput: TypeAlias = Decimal | int | float | str | SupportsIndex
#: What a count or id parameter accepts (``int``, numpy integers).
IntInput: TypeAlias = int | SupportsIndex

#: The largest value a BIGINT column (and SQLite's INTEGER) holds.
BIGINT_MAX = 2**63 - 1
#: PostgreSQL's NUMERIC holds at most this many digits before the decimal point ...
_MAX_INTEGER_DIGITS = 131_072
#: ... and this many after it. Both backends refuse the same values.
_MAX_FRACTION_DIGITS = 16_383
#: JSON documents nest at most this deep (PostgreSQL parses them recursively).
MAX_JSON_DEPTH = 256
_ONE = Decimal(1)


def _as_int(value: object) -> int | None:
    """``value`` as an ``int`` if it is an integer (numpy's too), else ``None``; booleans are not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    # numpy's integer scalars are not ``int`` but have ``__index__``; numpy's bool has none.
    if not isinstance(value, float | str | Decimal) and isinstance(value, SupportsIndex):
        return operator.index(value)
    return None


def to_decimal(field: str, value: object) -> Decimal:
    """Return ``value`` as a finite ``Decimal`` in the one form both backends give back.

    ``int`` and ``str`` convert exactly; a ``float`` (numpy's ``float64`` too) converts
    through its shortest text, so ``0.1`` becomes ``Decimal('0.1')``; numpy integers and
    other numbers with ``__index__`` convert exactly. The result is normalised the way
    PostgreSQL's NUMERIC stores it, so it reads back identically on both backends: a
    positive exponent is written out (``Decimal('1E+5')`` → ``Decimal('100000')``) and
    negative zero is zero; trailing zeros are kept (``1.50`` stays ``1.50``).

    Raises:
        ValidationError: for NaN, sNaN, infinities, booleans, unparsable text, other types,
            or a number NUMERIC cannot hold (more than 131,072 digits before the point or
            16,383 after it).
    """
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise ValidationError(f"{field}: expected a number, got {value!r}")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        # float.__repr__: numpy's float64 repr is 'np.float64(0.1)', its float text is '0.1'.
        result = Decimal(float.__repr__(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValidationError(f"{field}: not a number: {value!r}") from None
    elif (whole := _as_int(value)) is not None:
        result = Decimal(whole)
    elif isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        # numpy's float32/float16: their str() is the shortest text of their own precision.
        try:
            result = Decimal(str(value))
        except InvalidOperation:
            raise ValidationError(f"{field}: not a number: {value!r}") from None
    else:
        raise ValidationError(f"{field}: expected a Decimal, int, str or float, got {value!r}")
    if not result.is_finite():
        raise ValidationError(f"{field}: must be finite, got {value!r}")
    return _canonical(field, result)


def _canonical(field: str, value: Decimal) -> Decimal:
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if not value.is_zero() and value.adjusted() >= _MAX_INTEGER_DIGITS:
        raise ValidationError(f"{field}: {value:.6E} has more than {_MAX_INTEGER_DIGITS} digits before the point")
    if exponent < -_MAX_FRACTION_DIGITS:
        raise ValidationError(f"{field}: {value:.6E} has more than {_MAX_FRACTION_DIGITS} digits after the point")
    if exponent > 0:
        value = value.quantize(_ONE, context=EXACT)
    if value.is_signed() and value.is_zero():
        value = value.copy_abs()
    return value


def to_optional_decimal(field: str, value: object) -> Decimal | None:
    """Like :func:`to_decimal`, letting ``None`` through."""
    return None if value is None else to_decimal(field, value)


def is_missing_time(value: object) -> bool:
    """Whether ``value`` is pandas' ``NaT`` ("not a time"), which is a ``datetime`` that equals nothing."""
    return isinstance(value, datetime) and value != value


def to_utc(field: str, value: object) -> datetime:
    """Return ``value`` as an aware UTC datetime; a naive one is taken as UTC.

    pandas ``Timestamp`` values are datetimes and are accepted (as plain ``datetime``).

    Raises:
        ValidationError: when ``value`` is not a ``datetime``, or is pandas' ``NaT``.
    """
    if not isinstance(value, datetime):
        raise ValidationError(f"{field}: expected a datetime, got {value!r}")
    if value != value:  # pandas.NaT: a datetime subclass that is no moment at all
        raise ValidationError(f"{field}: expected a datetime, got {value!r} (not a time)")
    if type(value) is not datetime:  # pandas.Timestamp and other subclasses: a plain datetime
        value = datetime(
            value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond,
            tzinfo=value.tzinfo, fold=value.fold,
        )  # fmt: skip
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        return value.replace(tzinfo=UTC)
    if value.tzinfo is UTC:
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValidationError(f"{field}: {value.isoformat()} is outside the years 1 to 9999 in UTC") from None


def to_optional_utc(field: str, value: object) -> datetime | None:
    """Like :func:`to_utc`, letting ``None`` through; pandas' ``NaT`` (a missing time) is ``None`` too."""
    return None if value is None or is_missing_time(value) else to_utc(field, value)


def to_text(field: str, value: object, *, choices: tuple[str, ...] | None = None, empty: bool = False) -> str:
    """Return ``value`` as a string both backends can store (one of ``choices`` if given).

    Args:
        field: the name errors give.
        value: what the caller passed.
        choices: the allowed values, if only some are.
        empty: whether ``""`` is allowed.

    Raises:
        ValidationError: for other types, empty text (unless ``empty``), a NUL character, text
            that is not valid Unicode (a lone surrogate), or a value not in ``choices``.
    """
    if not isinstance(value, str):
        raise ValidationError(f"{field}: expected a string, got {value!r}")
    if choices is not None and value not in choices:
        raise ValidationError(f"{field}: must be one of {', '.join(choices)}; got {value!r}")
    if not value and not empty:
        raise ValidationError(f"{field}: must not be empty")
    _storable(field, value)
    return value


def _storable(field: str, value: str) -> None:
    if "\x00" in value:
        raise ValidationError(f"{field}: must not contain a NUL character, got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{field}: not valid Unicode text (a lone surrogate), got {value!r}") from None


def to_optional_text(field: str, value: object) -> str | None:
    """Like :func:`to_text`, letting ``None`` through."""
    return None if value is None else to_text(field, value)


def to_count(field: str, value: object) -> int:
    """Return ``value`` as a non-negative ``int`` that fits a BIGINT (a limit, a count).

    numpy integers are accepted.

    Raises:
        ValidationError: for anything else, booleans included.
    """
    number = _as_int(value)
    if number is None:
        raise ValidationError(f"{field}: expected a non-negative int, got {value!r}")
    if not 0 <= number <= BIGINT_MAX:
        raise ValidationError(f"{field}: expected a non-negative int up to 2**63 - 1, got {value!r}")
    return number


def to_id(field: str, value: object) -> int:
    """Return ``value`` as an ``int`` database id (a BIGINT).

    Raises:
        ValidationError: for anything else, booleans included.
    """
    number = _as_int(value)
    if number is None:
        raise ValidationError(f"{field}: expected an integer id, got {value!r}")
    if not -BIGINT_MAX - 1 <= number <= BIGINT_MAX:
        raise ValidationError(f"{field}: {value!r} does not fit a 64-bit integer id")
    return number


def to_days(field: str, value: object) -> timedelta:
    """Return a number of days (``int``/``float``/``Decimal``, numpy's too) as a ``timedelta``.

    Raises:
        ValidationError: for a negative, non-finite or boolean value, other types, or more days
            than a date can go back (about 3.6 million).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal):
        raise ValidationError(f"{field}: expected a non-negative number of days or None, got {value!r}")
    try:
        days = float(value)
        if not math.isfinite(days) or days < 0:
            raise ValueError
        return timedelta(days=days)
    except (ValueError, OverflowError):
        raise ValidationError(f"{field}: expected a finite non-negative number of days, got {value!r}") from None


def since(field: str, days: object, now: datetime) -> datetime:
    """``now`` minus ``days`` days.

    Raises:
        ValidationError: as :func:`to_days`, or when that moment would be before year 1
            (``days=None`` is the way to say "all time").
    """
    span = to_days(field, days)
    try:
        return now - span
    except OverflowError:
        raise ValidationError(
            f"{field}: {days!r} days before {now:%Y-%m-%d} is before year 1; pass None for all time"
        ) from None


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return to_utc("json", value).isoformat()
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()  # numpy's int64, bool_, float32 …: the Python number or bool it holds
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_dumps(value: object) -> str:
    """Serialise to JSON text; Decimal and datetime become strings, NaN is refused."""
    return json.dumps(value, default=_json_default, allow_nan=False, ensure_ascii=False)


def to_json_object(field: str, value: object) -> dict[str, Any] | None:
    """Return ``value`` as plain JSON data (a dict), or ``None``, as both backends give it back.

    Decimal and datetime values inside become strings, exactly as they will be stored; numpy
    scalars become the Python numbers they hold. Numbers
    are stored the way PostgreSQL's JSONB keeps them, so both backends return the same: a
    float written with a positive exponent is the integer it equals (``1e16`` →
    ``10000000000000000``) and ``-0.0`` is ``0.0``.

    Raises:
        ValidationError: when ``value`` is not a dict, holds something JSON cannot carry (NaN,
            infinities, other types), a NUL character or a lone surrogate in a key or a string,
            or nests deeper than :data:`MAX_JSON_DEPTH`.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(f"{field}: expected a JSON object (dict), got {value!r}")
    try:
        _check_json(field, value, 0)
    except _TooDeep:
        raise  # repr() of the value itself would recurse too deep
    except ValidationError as exc:
        raise ValidationError(f"{exc}: {value!r}") from None
    try:
        text = json_dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{field}: not JSON serialisable ({exc}): {value!r}") from None
    result: dict[str, Any] = json.loads(text, parse_float=_json_float)
    return result


class _TooDeep(ValidationError):
    pass


def _check_json(field: str, value: object, depth: int) -> None:
    """Refuse what neither backend can store, before ``json.dumps`` recurses into it."""
    if depth > MAX_JSON_DEPTH:
        raise _TooDeep(f"{field}: nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, str):
        _storable(field, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                _storable(field, key)
            _check_json(field, item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_json(field, item, depth + 1)


def _json_float(text: str) -> float | int:
    number = float(text)
    if number == 0:
        return 0.0  # JSONB has no negative zero
    _, _, exponent = text.lower().partition("e")
    if exponent and int(exponent) > 0 and number.is_integer():
        return int(Decimal(text))  # JSONB prints 1e+16 as the integer it is
    return number


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
