"""Column types that keep time in UTC and money exact on every backend.

``UTCDateTime`` is ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL and fixed-width ISO-8601 text
on SQLite (text order is time order). ``ExactDecimal`` is unconstrained ``NUMERIC`` on
PostgreSQL and text on SQLite, whose NUMERIC affinity would turn money into floats; the
text column uses the ``decimal`` collation that every tradestore SQLite connection
registers, so ``ORDER BY``, ``MIN``/``MAX`` and comparisons stay numeric.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

from tradestore.values import (
    datetime_from_sqlite,
    datetime_to_sqlite,
    decimal_from_db,
    to_decimal,
    to_utc,
)

#: Name of the SQLite collation that orders decimal text numerically.
DECIMAL_COLLATION = "decimal"


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

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal


#: JSON documents: JSONB on PostgreSQL, JSON text on SQLite.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")
