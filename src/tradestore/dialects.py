"""The one place where SQL differs between SQLite and PostgreSQL.

Two kinds of difference live here:

* SQL constructs (``dec_sum``, ``dec_sub``, ``epoch_seconds`` …) that compile to native SQL
  on PostgreSQL and to tradestore's exact-decimal functions on SQLite, so a repository builds
  one statement for both backends;
* a :class:`Backend` per database for the bulk paths: how values are encoded for the
  driver, and how many rows are written or read in one round trip.

Repositories ask :func:`backend` for the right one and never test the dialect's name.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Column, Integer, Table, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, FunctionElement

from tradestore.types import DECIMAL_COLLATION, ExactDecimal
from tradestore.values import EXACT, datetime_from_sqlite, datetime_to_sqlite

# --- SQL constructs ---------------------------------------------------------------------


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


@compiles(epoch_seconds)
def _epoch_seconds(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    inner = compiler.process(element.clauses, **kw)
    if compiler.dialect.name == "sqlite":
        return f"unixepoch({inner})"
    return f"CAST(EXTRACT(EPOCH FROM {inner}) AS BIGINT)"


@compiles(month_index)
def _month_index(element: month_index, compiler: SQLCompiler, **kw: Any) -> str:
    inner = compiler.process(element.clauses, **kw)
    if compiler.dialect.name == "sqlite":
        # The stored text starts 'YYYY-MM-': no date parsing needed.
        return f"(CAST(substr({inner}, 1, 4) AS INTEGER) * 12 + CAST(substr({inner}, 6, 2) AS INTEGER) - 1)"
    utc = f"timezone('UTC', {inner})"
    return f"(CAST(EXTRACT(YEAR FROM {utc}) AS INTEGER) * 12 + CAST(EXTRACT(MONTH FROM {utc}) AS INTEGER) - 1)"


# --- SQLite's exact-decimal functions ---------------------------------------------------


def _compare(a: str, b: str) -> int:
    x, y = Decimal(a), Decimal(b)
    return (x > y) - (x < y)


def _sub(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return None
    return str(EXACT.subtract(Decimal(a), Decimal(b)))


def _sign(a: str | None) -> int | None:
    if a is None:
        return None
    value = Decimal(a)
    return (value > 0) - (value < 0)


class _Sum:
    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: str | None) -> None:
        if value is not None:
            number = Decimal(value)
            self.total = number if self.total is None else EXACT.add(self.total, number)

    def finalize(self) -> str | None:
        return None if self.total is None else str(self.total)


class _Max:
    def __init__(self) -> None:
        self.best: Decimal | None = None

    def step(self, value: str | None) -> None:
        if value is not None:
            number = Decimal(value)
            if self.best is None or self._better(number, self.best):
                self.best = number

    @staticmethod
    def _better(candidate: Decimal, best: Decimal) -> bool:
        return candidate > best

    def finalize(self) -> str | None:
        return None if self.best is None else str(self.best)


class _Min(_Max):
    @staticmethod
    def _better(candidate: Decimal, best: Decimal) -> bool:
        return candidate < best


def register_sqlite_functions(connection: sqlite3.Connection) -> None:
    """Give a SQLite connection the collation and functions exact decimals need."""
    connection.create_collation(DECIMAL_COLLATION, _compare)
    connection.create_function("decimal_sub", 2, _sub, deterministic=True)
    connection.create_function("decimal_sign", 1, _sign, deterministic=True)
    # typeshed's aggregate protocol wants int arguments; SQLite hands these text.
    connection.create_aggregate("decimal_sum", 1, _Sum)  # type: ignore[arg-type]
    connection.create_aggregate("decimal_max", 1, _Max)  # type: ignore[arg-type]
    connection.create_aggregate("decimal_min", 1, _Min)  # type: ignore[arg-type]


# --- bulk paths -------------------------------------------------------------------------


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Compiled:
    """Positional SQL text, its parameter names in order, and the values SQLAlchemy filled in."""

    sql: str
    names: tuple[str, ...]
    defaults: Mapping[str, Any]

    def positional(self, params: Mapping[str, Any]) -> list[Any]:
        """``params`` in the statement's order, defaults (e.g. ``OFFSET 0``) where not given."""
        return [params[n] if n in params else self.defaults[n] for n in self.names]


class Backend(ABC):
    """How the bulk paths talk to one kind of database.

    ``encode_*`` turn a ``Decimal``/aware ``datetime`` into what the driver stores, and
    ``decode_*`` turn what the driver returns back; on PostgreSQL the driver already speaks
    both types and these are the identity.
    """

    name: str
    #: The dialect's ``insert()``, the one with ``on_conflict_do_update``.
    insert: Callable[..., Any]
    #: Rows per write or keyset-read round trip; large enough to amortise the round trip.
    chunk_rows: int = 50_000
    #: Whether concurrent bulk writers lock rows one by one in the order they write them
    #: (PostgreSQL). They then write in key order, so two batches holding the same keys in
    #: different orders queue behind each other instead of deadlocking.
    writes_in_key_order: bool = False
    encode_decimal: Callable[[Decimal], Any] = staticmethod(_same)
    encode_datetime: Callable[[datetime], Any] = staticmethod(_same)
    decode_decimal: Callable[[Any], Decimal] = staticmethod(_same)
    decode_datetime: Callable[[Any], datetime] = staticmethod(_same)

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[Hashable, Compiled] = {}

    def compiled(self, key: Hashable, build: Callable[[], ClauseElement]) -> Compiled:
        """The statement ``build()`` makes, compiled for this dialect once per ``key``."""
        found = self._compiled.get(key)
        if found is None:
            done = cast(SQLCompiler, build().compile(dialect=self.dialect))
            found = self._compiled[key] = Compiled(done.string, tuple(done.positiontup or ()), done.params)
        return found

    @abstractmethod
    def upsert_statement(self, table: Table, columns: Sequence[str], keys: Sequence[str]) -> ClauseElement:
        """An insert of ``columns`` that updates the non-key columns of a row already there."""

    @abstractmethod
    def insert_statement(self, table: Table, columns: Sequence[str]) -> ClauseElement:
        """A plain insert of ``columns``, one row per parameter set."""

    @abstractmethod
    async def write(self, conn: AsyncConnection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Run one insert/upsert for ``rows`` (tuples in the statement's column order)."""

    async def fetch(
        self, conn: AsyncConnection, key: Hashable, build: Callable[[], ClauseElement], params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """Every row of a query, as the driver returns it (no per-row wrapping).

        ``params`` are already encoded for the driver (see ``encode_*``).
        """
        statement = self.compiled(key, build)
        raw = await conn.get_raw_connection()
        return await self._fetch(raw.driver_connection, statement.sql, statement.positional(params))

    @abstractmethod
    async def _fetch(self, driver: Any, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        """Every row of ``sql`` through the driver connection itself."""


def _update_set(statement: Any, columns: Sequence[str], keys: Sequence[str]) -> dict[str, Any]:
    return {c: statement.excluded[c] for c in columns if c not in keys and c != "created_at"}


class SQLiteBackend(Backend):
    """SQLite through aiosqlite: one prepared statement run over many rows (executemany)."""

    name = "sqlite"
    insert = staticmethod(sqlite_insert)
    encode_decimal = staticmethod(str)
    encode_datetime = staticmethod(datetime_to_sqlite)
    decode_decimal = staticmethod(Decimal)
    decode_datetime = staticmethod(datetime_from_sqlite)

    def _values(self, table: Table, columns: Sequence[str]) -> Any:
        return self.insert(table).values({c: bindparam(c) for c in columns})

    def upsert_statement(self, table: Table, columns: Sequence[str], keys: Sequence[str]) -> ClauseElement:
        statement = self._values(table, columns)
        upsert: ClauseElement = statement.on_conflict_do_update(
            index_elements=list(keys), set_=_update_set(statement, columns, keys)
        )
        return upsert

    def insert_statement(self, table: Table, columns: Sequence[str]) -> ClauseElement:
        insert: ClauseElement = self._values(table, columns)
        return insert

    async def write(self, conn: AsyncConnection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        await conn.exec_driver_sql(sql, list(rows))

    async def _fetch(self, driver: Any, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        return list(await driver.execute_fetchall(sql, tuple(params)))


class PostgresBackend(Backend):
    """PostgreSQL through asyncpg: a whole chunk travels as one array per column (``unnest``).

    One statement per chunk, with as many parameters as there are columns whatever the
    number of rows, so asyncpg's 32,767-parameter limit never applies.
    """

    name = "postgresql"
    insert = staticmethod(pg_insert)
    chunk_rows = 20_000
    writes_in_key_order = True

    def _from_arrays(self, table: Table, columns: Sequence[str]) -> Any:
        arrays = [bindparam(c, type_=ARRAY(table.c[c].type)) for c in columns]
        rows = func.unnest(*arrays).table_valued(*columns).render_derived(name="incoming")
        return self.insert(table).from_select(list(columns), select(*rows.c))

    def upsert_statement(self, table: Table, columns: Sequence[str], keys: Sequence[str]) -> ClauseElement:
        statement = self._from_arrays(table, columns)
        upsert: ClauseElement = statement.on_conflict_do_update(
            index_elements=list(keys), set_=_update_set(statement, columns, keys)
        )
        return upsert

    def insert_statement(self, table: Table, columns: Sequence[str]) -> ClauseElement:
        insert: ClauseElement = self._from_arrays(table, columns)
        return insert

    async def write(self, conn: AsyncConnection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        await conn.exec_driver_sql(sql, tuple(list(column) for column in zip(*rows, strict=True)))

    async def _fetch(self, driver: Any, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        return await driver.fetch(sql, *params)  # type: ignore[no-any-return]


_BACKENDS: dict[str, type[Backend]] = {"sqlite": SQLiteBackend, "postgresql": PostgresBackend}
_CACHE: dict[int, Backend] = {}


def backend(dialect: Dialect) -> Backend:
    """The :class:`Backend` for ``dialect`` (one instance per dialect object)."""
    found = _CACHE.get(id(dialect))
    if found is None or found.dialect is not dialect:
        found = _CACHE[id(dialect)] = _BACKENDS[dialect.name](dialect)
    return found


def column_list(table: Table) -> list[Column[Any]]:
    """The table's columns without its surrogate ``id`` key."""
    return [c for c in table.columns if c.name != "id"]
