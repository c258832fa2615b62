"""Column types that keep time in UTC and money exact on every backend.

``UTCDateTime`` is ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL and fixed-width ISO-8601 text
on SQLite (text order is time order). ``BarTime`` (a candle's start) is ``TIMESTAMP WITH TIME
ZONE`` on PostgreSQL and whole seconds since the Unix epoch (an ``INTEGER``, 4 to 6 bytes) on
SQLite. ``ExactDecimal`` is unconstrained ``NUMERIC`` on
PostgreSQL and text on SQLite, whose NUMERIC affinity would turn money into floats; the
text column uses the ``decimal`` collation that every tradestore SQLite connection
registers, so ``ORDER BY``, ``MIN``/``MAX`` and comparisons stay numeric.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

from tradestore.values import (
    datetime_from_epoch,
    datetime_from_sqlite,
    datetime_to_sqlite,
    decimal_from_db,
    epoch_seconds,
    to_decimal,
    to_utc,
)

#: Name of the SQLite collation that orders decimal text numerically.
DECIMAL_COLLATION = "decimal"

#: How the bulk paths convert one value (not ``None``, already validated) to what the driver
#: takes, or back from what it returns: C callables where possible (``str``, ``Decimal``),
#: else one small function.
ValueCodec = Callable[[Any], Any]


def _whole_seconds(value: datetime) -> int:
    # Bar starts are whole seconds: the float of ``timestamp()`` is exact for them.
    return int(value.timestamp())


def _from_seconds(value: int) -> datetime:
    # A function, not partial(..., tz=UTC): a partial's keyword costs a dict per call.
    return datetime.fromtimestamp(value, UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; a naive datetime given to it is taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        moment = to_utc("datetime", value)
        return datetime_to_sqlite(moment) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None or value == "NaT":  # pandas' "no time", as earlier versions stored it
            return None
        if isinstance(value, str):
            return datetime_from_sqlite(value)
        return to_utc("datetime", value)

    def bulk_encoder(self, dialect: Dialect) -> ValueCodec | None:
        """What the bulk paths store for an aware UTC datetime (the bind step, minus validation)."""
        return datetime_to_sqlite if dialect.name == "sqlite" else None

    def bulk_decoder(self, dialect: Dialect) -> ValueCodec | None:
        """An aware UTC datetime from what the driver returns; ``None``: the driver's value already is."""
        return datetime_from_sqlite if dialect.name == "sqlite" else None


class BarTime(TypeDecorator[datetime]):
    """A bar start: ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL, whole epoch seconds on SQLite.

    Bar starts are whole seconds (every timeframe is whole minutes), so the integer is exact;
    a bound given with a fraction of a second is cut to the whole second, so compare bars
    with bounds rounded by :func:`tradestore.values.ceil_second` / ``floor_second``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        moment = to_utc("datetime", value)
        return epoch_seconds(moment) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, int):
            return datetime_from_epoch(value)
        return to_utc("datetime", value)

    def bulk_encoder(self, dialect: Dialect) -> ValueCodec | None:
        """What the bulk paths store for an aware UTC bar start (a whole second); ``None``: as it is."""
        return _whole_seconds if dialect.name == "sqlite" else None

    def bulk_decoder(self, dialect: Dialect) -> ValueCodec | None:
        """An aware UTC datetime from what the driver returns; ``None``: the driver's value already is."""
        return _from_seconds if dialect.name == "sqlite" else None


class ExactDecimal(TypeDecorator[Decimal]):
    """Exact decimals: what goes in as ``Decimal('0.1')`` comes back as ``Decimal('0.1')``."""

    impl = Numeric(asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(collation=DECIMAL_COLLATION))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        number = to_decimal("decimal", value)
        return str(number) if dialect.name == "sqlite" else number

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else decimal_from_db(value)

    def bulk_encoder(self, dialect: Dialect) -> ValueCodec | None:
        """What the bulk paths store for a ``Decimal`` (the bind step, minus validation)."""
        return str if dialect.name == "sqlite" else None

    def bulk_decoder(self, dialect: Dialect) -> ValueCodec | None:
        """A ``Decimal`` from what the driver returns (text on SQLite; asyncpg decodes NUMERIC itself)."""
        return Decimal if dialect.name == "sqlite" else None

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal


#: JSON documents: JSONB on PostgreSQL, JSON text on SQLite.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")
