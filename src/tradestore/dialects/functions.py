"""SQL constructs that compile to native SQL on PostgreSQL and to tradestore's exact-decimal
functions on SQLite, so a repository builds one statement for both backends."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import SQLCoreOperations
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from tradestore import timeframes
from tradestore.types import BarTime, ExactDecimal


class _DecimalFunction(FunctionElement[Decimal]):
    type = ExactDecimal()
    inherit_cache = True
    native: str
    sqlite: str


def _compile_function(element: _DecimalFunction, compiler: SQLCompiler, **kw: Any) -> str:
    name = element.sqlite if compiler.dialect.name == "sqlite" else element.native
    return f"{name}({compiler.process(element.clauses, **kw)})"


class dec_sum(_DecimalFunction):
    """Exact ``SUM`` of a decimal expression."""

    inherit_cache = True
    native, sqlite = "sum", "decimal_sum"


class dec_max(_DecimalFunction):
    """Numeric ``MAX`` of a decimal expression."""

    inherit_cache = True
    native, sqlite = "max", "decimal_max"


class dec_min(_DecimalFunction):
    """Numeric ``MIN`` of a decimal expression."""

    inherit_cache = True
    native, sqlite = "min", "decimal_min"


class dec_sub(FunctionElement[Decimal]):
    """Exact ``a - b`` of two decimal expressions."""

    type = ExactDecimal()
    inherit_cache = True


class dec_sign(FunctionElement[int]):
    """-1, 0 or 1: the sign of a decimal expression."""

    type = Integer()
    inherit_cache = True


class epoch_seconds(FunctionElement[int]):
    """Whole seconds since the Unix epoch of a UTC timestamp column."""

    type = Integer()
    inherit_cache = True


class month_index(FunctionElement[int]):
    """``year * 12 + month - 1`` of a UTC timestamp column: consecutive months differ by 1."""

    type = Integer()
    inherit_cache = True


for _cls in (dec_sum, dec_max, dec_min):
    compiles(_cls)(_compile_function)


@compiles(dec_sub)
def _dec_sub(element: dec_sub, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = (compiler.process(c, **kw) for c in element.clauses)
    if compiler.dialect.name == "sqlite":
        return f"decimal_sub({a}, {b})"
    return f"({a} - {b})"


@compiles(dec_sign)
def _dec_sign(element: dec_sign, compiler: SQLCompiler, **kw: Any) -> str:
    name = "decimal_sign" if compiler.dialect.name == "sqlite" else "sign"
    inner = compiler.process(element.clauses, **kw)
    return f"{name}({inner})" if name == "decimal_sign" else f"CAST(sign({inner}) AS INTEGER)"


def _stored_as_seconds(element: FunctionElement[Any], compiler: SQLCompiler) -> bool:
    """Whether the argument is a ``BarTime`` column on SQLite: epoch seconds already."""
    (argument,) = element.clauses.clauses
    return compiler.dialect.name == "sqlite" and isinstance(argument.type, BarTime)


@compiles(epoch_seconds)
def _epoch_seconds(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    inner = compiler.process(element.clauses, **kw)
    if _stored_as_seconds(element, compiler):
        return inner
    if compiler.dialect.name == "sqlite":
        return f"unixepoch({inner})"
    return f"CAST(EXTRACT(EPOCH FROM {inner}) AS BIGINT)"


@compiles(month_index)
def _month_index(element: month_index, compiler: SQLCompiler, **kw: Any) -> str:
    inner = compiler.process(element.clauses, **kw)
    if _stored_as_seconds(element, compiler):
        year, month = (f"CAST(strftime('{part}', {inner}, 'unixepoch') AS INTEGER)" for part in ("%Y", "%m"))
        return f"({year} * 12 + {month} - 1)"
    if compiler.dialect.name == "sqlite":
        # The stored text starts 'YYYY-MM-': no date parsing needed.
        return f"(CAST(substr({inner}, 1, 4) AS INTEGER) * 12 + CAST(substr({inner}, 6, 2) AS INTEGER) - 1)"
    utc = f"timezone('UTC', {inner})"
    return f"(CAST(EXTRACT(YEAR FROM {utc}) AS INTEGER) * 12 + CAST(EXTRACT(MONTH FROM {utc}) AS INTEGER) - 1)"


class epoch_floor(FunctionElement[int]):
    """Whole seconds since the Unix epoch of a UTC timestamp column, rounded down (never to nearest)."""

    type = Integer()
    inherit_cache = True


@compiles(epoch_floor)
def _epoch_floor(element: epoch_floor, compiler: SQLCompiler, **kw: Any) -> str:
    inner = compiler.process(element.clauses, **kw)
    if compiler.dialect.name == "sqlite":
        return f"unixepoch({inner})"
    return f"CAST(floor(EXTRACT(EPOCH FROM {inner})) AS BIGINT)"


#: Seconds from the Unix epoch (a Thursday) to the first Monday: where ``1w`` periods start.
_WEEK_ORIGIN = 4 * 86_400


def period_index(column: SQLCoreOperations[datetime], timeframe: str) -> ColumnElement[int]:
    """The number of the ``timeframe`` period (see :mod:`tradestore.timeframes`) holding each timestamp.

    Consecutive periods have consecutive numbers; fixed timeframes count from the epoch (``1w``
    from the first Monday), ``1M`` counts calendar months. Integer arithmetic only, so the
    boundaries are exact on both backends, before 1970 too.
    """
    if timeframe == timeframes.MONTH:
        return month_index(column)
    step = timeframes.FIXED_SECONDS[timeframe]
    seconds = epoch_floor(column) - (_WEEK_ORIGIN if timeframe == "1w" else 0)
    # floor division of a possibly negative number: SQL's % and / truncate towards zero
    remainder = ((seconds % step) + step) % step
    return (seconds - remainder) // step  # exact: the difference is a multiple of step
