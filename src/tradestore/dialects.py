"""The one place where SQL differs between SQLite and PostgreSQL.

Two kinds of difference live here:

* SQL constructs (``dec_sum``, ``dec_sub``, ``epoch_seconds`` …) that compile to native SQL
  on PostgreSQL and to tradestore's exact-decimal functions on SQLite, so a repository builds
  one statement for both backends;
* a :class:`Backend` per database for the bulk paths: how values are encoded for the
  driver, how rows are written (``executemany`` on SQLite; ``COPY`` or arrays on
  PostgreSQL) and read, and the few queries whose fastest form differs by backend (gaps
  between bars, sums by sign).

Repositories ask :func:`backend` for the right one and never test the dialect's name.
"""

from __future__ import annotations

import json
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import repeat
from operator import attrgetter, is_, itemgetter
from typing import Any, cast

from sqlalchemy import Integer, Table, and_, bindparam, func, literal_column, select
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, ColumnElement, FunctionElement, Select
from sqlalchemy.types import TypeDecorator, TypeEngine

from tradestore.types import DECIMAL_COLLATION, ExactDecimal
from tradestore.values import EXACT, chunked, datetime_from_sqlite, datetime_to_sqlite

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


class _NetBySign:
    """``decimal_net_by_sign(gain, cost)``: per sign of ``net = gain - cost``, as JSON text.

    ``{"-1" | "0" | "1": [rows, sum of net, largest net, smallest net, sum of cost], …}``,
    decimals as exact text. One call per row where ``dec_sub``, ``dec_sign`` and four
    aggregates would make six.
    """

    def __init__(self) -> None:
        self.groups: dict[int, list[Any]] = {}

    def step(self, gain: str | None, cost: str | None) -> None:
        if gain is None or cost is None:
            return
        paid = Decimal(cost)
        net = EXACT.subtract(Decimal(gain), paid)
        sign = 1 if net > _ZERO else -1 if net < _ZERO else 0
        group = self.groups.get(sign)
        if group is None:
            self.groups[sign] = [1, net, net, net, paid]
            return
        group[0] += 1
        group[1] = EXACT.add(group[1], net)
        if net > group[2]:
            group[2] = net
        elif net < group[3]:
            group[3] = net
        group[4] = EXACT.add(group[4], paid)

    def finalize(self) -> str:
        return json.dumps({sign: [g[0], *map(str, g[1:])] for sign, g in self.groups.items()})


class _StepGaps:
    """``step_gaps(value, ordinal, step)`` over rows in ``value`` order: the gaps, as JSON text.

    ``[[previous value, value], …]`` for neighbours whose ordinals differ by more than
    ``step``; ``null`` if the rows did not arrive in order (SQL does not promise the order rows
    reach an aggregate; the caller then asks again with ``LAG()``). No rows give SQL NULL.
    """

    def __init__(self) -> None:
        self.previous: tuple[Any, int] | None = None
        self.found: list[tuple[Any, Any]] = []
        self.ordered = True

    def step(self, value: Any, ordinal: int, step: int) -> None:
        previous = self.previous
        if previous is not None:
            distance = ordinal - previous[1]
            if distance > step:
                self.found.append((previous[0], value))
            elif distance < 0:
                self.ordered = False
        self.previous = (value, ordinal)

    def finalize(self) -> str:
        return json.dumps(self.found if self.ordered else None)


_ZERO = Decimal(0)


def register_sqlite_functions(connection: sqlite3.Connection) -> None:
    """Give a SQLite connection the collation and functions exact decimals need."""
    connection.create_collation(DECIMAL_COLLATION, _compare)
    connection.create_function("decimal_sub", 2, _sub, deterministic=True)
    connection.create_function("decimal_sign", 1, _sign, deterministic=True)
    # typeshed's aggregate protocol wants int arguments; SQLite hands these text.
    connection.create_aggregate("decimal_sum", 1, _Sum)  # type: ignore[arg-type]
    connection.create_aggregate("decimal_max", 1, _Max)  # type: ignore[arg-type]
    connection.create_aggregate("decimal_min", 1, _Min)  # type: ignore[arg-type]
    connection.create_aggregate("decimal_net_by_sign", 2, _NetBySign)  # type: ignore[arg-type]
    connection.create_aggregate("step_gaps", 3, _StepGaps)  # type: ignore[arg-type]


# --- bulk paths -------------------------------------------------------------------------

Row = tuple[Any, ...]


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


@dataclass(frozen=True)
class NetGroup:
    """The rows of one sign of ``net = gain - cost`` (see :meth:`Backend.net_by_sign`)."""

    count: int
    total: Decimal
    largest: Decimal
    smallest: Decimal
    cost: Decimal


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

    def decode_datetimes(self, values: list[Any]) -> list[datetime]:
        """``decode_datetime`` of each of ``values`` (none of them NULL), in one pass."""
        return [self.decode_datetime(value) for value in values]

    def compiled(self, key: Hashable, build: Callable[[], ClauseElement]) -> Compiled:
        """The statement ``build()`` makes, compiled for this dialect once per ``key``."""
        found = self._compiled.get(key)
        if found is None:
            done = cast(SQLCompiler, build().compile(dialect=self.dialect))
            found = self._compiled[key] = Compiled(done.string, tuple(done.positiontup or ()), done.params)
        return found

    async def write(
        self,
        conn: AsyncConnection,
        table: Table,
        columns: Sequence[str],
        rows: Iterable[Row],
        *,
        upsert_on: Sequence[str] | None,
    ) -> None:
        """Insert ``rows`` (encoded tuples in ``columns`` order) inside a savepoint: all of them or none.

        With ``upsert_on`` (the columns of a unique key, holding no key twice) a row whose key
        is stored overwrites the stored row, ``created_at`` excepted. Without it a stored or
        repeated key raises ``sqlalchemy.exc.IntegrityError``.
        """
        async with conn.begin_nested():
            await self._write(conn, table, tuple(columns), rows, None if upsert_on is None else tuple(upsert_on))

    @abstractmethod
    async def _write(
        self,
        conn: AsyncConnection,
        table: Table,
        columns: tuple[str, ...],
        rows: Iterable[Row],
        upsert_on: tuple[str, ...] | None,
    ) -> None:
        """The body of :meth:`write`, already inside its savepoint."""

    def statement(self, table: Table, columns: tuple[str, ...], upsert_on: tuple[str, ...] | None) -> Compiled:
        """The portable write statement: an insert, or an upsert on ``upsert_on``."""

        def build() -> ClauseElement:
            statement = self._insert_rows(table, columns)
            if upsert_on is None:
                return cast(ClauseElement, statement)
            return cast(
                ClauseElement,
                statement.on_conflict_do_update(
                    index_elements=list(upsert_on), set_=_update_set(statement, columns, upsert_on)
                ),
            )

        return self.compiled(("write", table.name, columns, upsert_on), build)

    @abstractmethod
    def _insert_rows(self, table: Table, columns: Sequence[str]) -> Any:
        """The dialect's insert of ``columns`` taking the rows of one round trip."""

    async def fetch(
        self, conn: AsyncConnection, key: Hashable, build: Callable[[], ClauseElement], params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """Every row of a query, as the driver returns it (no per-row wrapping).

        ``params`` are already encoded for the driver (see ``encode_*``).
        """
        statement = self.compiled(key, build)
        raw = await conn.get_raw_connection()
        try:
            return await self._fetch(raw.driver_connection, statement.sql, statement.positional(params))
        except Exception as exc:
            # The driver's own errors skip SQLAlchemy's hooks: type them the same way here.
            from tradestore.engine import translate  # engine imports this module

            typed = translate(exc, conn.engine.url)
            if typed is None:
                raise
            raise typed from exc  # the session's rollback then finds the connection gone and discards it

    @abstractmethod
    async def _fetch(self, driver: Any, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        """Every row of ``sql`` through the driver connection itself."""

    async def gaps(
        self,
        conn: AsyncConnection,
        key: Hashable,
        column: ColumnElement[datetime],
        where: Callable[[], Sequence[ColumnElement[bool]]],
        params: Mapping[str, Any],
        *,
        monthly: bool,
    ) -> list[tuple[Any, Any]]:
        """``(previous, next)`` pairs of consecutive stored values of a bar-start ``column`` more than one bar apart.

        The rows are those matching ``where()``, ordered by ``column``. ``params`` hold the
        parameters of ``where()`` and ``step``: the bar length, in seconds for a fixed
        timeframe (``monthly=False``) or in months. Values come back as the driver returns them.
        """
        rows = await self.fetch(conn, ("gaps", key), lambda: _lag_gaps(column, where(), monthly), params)
        return [(prev, ts) for prev, ts in rows]

    async def net_by_sign(
        self,
        conn: AsyncConnection,
        gain: Any,
        cost: Any,
        where: Sequence[ColumnElement[bool]],
    ) -> dict[int, NetGroup]:
        """Rows matching ``where``, grouped by the sign (-1, 0, 1) of ``net = gain - cost``.

        Per sign: how many rows, the sum, largest and smallest ``net``, and the sum of
        ``cost`` (exact). Rows where either value is NULL are left out. One pass in the database.
        """
        net = dec_sub(gain, cost)
        closed = select(net.label("net"), cost.label("cost")).where(*where).cte("closed").prefix_with("MATERIALIZED")
        signed = (
            select(closed.c.net, closed.c.cost, dec_sign(closed.c.net).label("sign"))
            .where(closed.c.net.is_not(None))
            .cte("signed")
            .prefix_with("MATERIALIZED")
        )
        statement = select(
            signed.c.sign,
            func.count(),
            dec_sum(signed.c.net),
            dec_max(signed.c.net),
            dec_min(signed.c.net),
            dec_sum(signed.c.cost),
        ).group_by(signed.c.sign)
        return {
            sign: NetGroup(count, total, largest, smallest, costs)
            for sign, count, total, largest, smallest, costs in (await conn.execute(statement)).all()
        }


def _update_set(statement: Any, columns: Sequence[str], keys: Sequence[str]) -> dict[str, Any]:
    return {c: statement.excluded[c] for c in columns if c not in keys and c != "created_at"}


def _lag_gaps(column: ColumnElement[datetime], where: Sequence[ColumnElement[bool]], monthly: bool) -> Select[Any]:
    """(previous, next) pairs further apart than ``:step`` bars, found with ``LAG()`` in the database."""
    ordinal = month_index(column) if monthly else epoch_seconds(column)
    ordered = (
        select(
            column.label("ts"),
            ordinal.label("o"),
            func.lag(column).over(order_by=column).label("prev_ts"),
            func.lag(ordinal).over(order_by=column).label("prev_o"),
        )
        .where(*where)
        .subquery()
    )
    return (
        select(ordered.c.prev_ts, ordered.c.ts)
        .where(ordered.c.o - ordered.c.prev_o > bindparam("step"))
        .order_by(ordered.c.ts)
    )


class SQLiteBackend(Backend):
    """SQLite through aiosqlite: one prepared statement run over many rows (executemany).

    Gaps and trade statistics take one pass of a registered aggregate (one Python call per
    row) instead of SQLite's window functions and several decimal functions per row.
    """

    name = "sqlite"
    insert = staticmethod(sqlite_insert)
    encode_decimal = staticmethod(str)
    encode_datetime = staticmethod(datetime_to_sqlite)
    decode_decimal = staticmethod(Decimal)
    decode_datetime = staticmethod(datetime_from_sqlite)

    def decode_datetimes(self, values: list[Any]) -> list[datetime]:
        # fromisoformat is C code and yields UTC exactly for the '+00:00' text tradestore
        # writes; any other text (no offset, another offset) takes the careful path.
        parsed = list(map(datetime.fromisoformat, values))
        if set(map(_tzinfo, parsed)) <= {UTC}:
            return parsed
        return list(map(datetime_from_sqlite, values))

    def _insert_rows(self, table: Table, columns: Sequence[str]) -> Any:
        return self.insert(table).values({c: bindparam(c) for c in columns})

    async def _write(
        self,
        conn: AsyncConnection,
        table: Table,
        columns: tuple[str, ...],
        rows: Iterable[Row],
        upsert_on: tuple[str, ...] | None,
    ) -> None:
        sql = self.statement(table, columns, upsert_on).sql
        for chunk in chunked(rows, self.chunk_rows):
            await conn.exec_driver_sql(sql, chunk)

    async def _fetch(self, driver: Any, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        return list(await driver.execute_fetchall(sql, tuple(params)))

    async def gaps(
        self,
        conn: AsyncConnection,
        key: Hashable,
        column: ColumnElement[datetime],
        where: Callable[[], Sequence[ColumnElement[bool]]],
        params: Mapping[str, Any],
        *,
        monthly: bool,
    ) -> list[tuple[Any, Any]]:
        def build() -> ClauseElement:
            ordinal = month_index(column) if monthly else epoch_seconds(column)
            ordered = select(column.label("ts"), ordinal.label("o")).where(*where()).order_by(column).subquery()
            return select(func.step_gaps(ordered.c.ts, ordered.c.o, bindparam("step")))

        ((found,),) = await self.fetch(conn, ("step_gaps", key), build, params)
        pairs = [] if found is None else json.loads(found)  # SQL NULL: no rows at all
        if pairs is None:  # the rows did not arrive in order after all: let LAG() sort them
            return await super().gaps(conn, key, column, where, params, monthly=monthly)
        return [(prev, ts) for prev, ts in pairs]

    async def net_by_sign(
        self,
        conn: AsyncConnection,
        gain: Any,
        cost: Any,
        where: Sequence[ColumnElement[bool]],
    ) -> dict[int, NetGroup]:
        found = (await conn.execute(select(func.decimal_net_by_sign(gain, cost)).where(*where))).scalar_one()
        if found is None:  # no rows at all
            return {}
        return {
            int(sign): NetGroup(count, Decimal(total), Decimal(largest), Decimal(smallest), Decimal(costs))
            for sign, (count, total, largest, smallest, costs) in json.loads(found).items()
        }


_tzinfo = attrgetter("tzinfo")


class PostgresBackend(Backend):
    """PostgreSQL through asyncpg.

    A large write is a ``COPY``: straight into the table when an index probe shows none of
    its keys can be stored yet (a backfill), else into a temporary table followed by one
    ``INSERT … SELECT … ON CONFLICT``. A small one, and any write ``COPY`` could not finish,
    is one statement per chunk taking an array per column (``unnest``): as many parameters as
    columns whatever the number of rows, so asyncpg's 32,767-parameter limit never applies,
    and its errors are SQLAlchemy's own.
    """

    name = "postgresql"
    insert = staticmethod(pg_insert)
    chunk_rows = 20_000
    writes_in_key_order = True
    #: From this many rows on, ``COPY`` beats one array statement despite its extra round trips.
    copy_min_rows = 1_000

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self._text_copy: dict[Hashable, tuple[type, ...] | None] = {}

    def _insert_rows(self, table: Table, columns: Sequence[str]) -> Any:
        arrays = [bindparam(c, type_=ARRAY(table.c[c].type)) for c in columns]
        rows = func.unnest(*arrays).table_valued(*columns).render_derived(name="incoming")
        return self.insert(table).from_select(list(columns), select(*rows.c))

    async def _write(
        self,
        conn: AsyncConnection,
        table: Table,
        columns: tuple[str, ...],
        rows: Iterable[Row],
        upsert_on: tuple[str, ...] | None,
    ) -> None:
        rows = rows if isinstance(rows, list) else list(rows)
        if len(rows) >= self.copy_min_rows and await self._copied(conn, table, columns, rows, upsert_on):
            return
        sql = self.statement(table, columns, upsert_on).sql
        for chunk in chunked(rows, self.chunk_rows):
            await conn.exec_driver_sql(sql, tuple(list(column) for column in zip(*chunk, strict=True)))

    async def _copied(
        self,
        conn: AsyncConnection,
        table: Table,
        columns: tuple[str, ...],
        rows: list[Row],
        upsert_on: tuple[str, ...] | None,
    ) -> bool:
        """Write ``rows`` with ``COPY``; ``False``, with nothing written, when that fails.

        Whatever stops it (a key stored or repeated after all, a value the table refuses, a
        lock) is rolled back to the savepoint, and the caller writes the rows again with the
        portable statement, which succeeds or raises the error SQLAlchemy raises everywhere
        else. Only an error rolling back (a lost connection) escapes from here.
        """
        if self._copy_kinds(table, columns) is None:
            return False
        overwrite = upsert_on is not None and await self._any_stored(conn, table, columns, rows, upsert_on)
        async with conn.begin_nested() as savepoint:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            try:
                if overwrite:
                    assert upsert_on is not None
                    await self._upsert_through_temporary_table(conn, driver, table, columns, rows, upsert_on)
                else:
                    await self._copy(driver, table.name, table, columns, rows, schema=table.schema)
            except Exception:
                await savepoint.rollback()
                return False
        return True

    async def _any_stored(
        self, conn: AsyncConnection, table: Table, columns: tuple[str, ...], rows: list[Row], keys: tuple[str, ...]
    ) -> bool:
        """Whether a stored row may share a key with ``rows``: one index probe per series.

        The last key column is a range (the timestamp); the others are compared for equality.
        A ``False`` is certain (barring a concurrent writer, which ``COPY`` then runs into);
        a ``True`` may be a stored row between two of the new ones, not one of their keys.
        """
        *equal, ranged = keys
        series = sorted(set(map(itemgetter(*(columns.index(k) for k in equal)), rows)))
        if len(equal) == 1:
            series = [(value,) for value in series]
        position = columns.index(ranged)
        params: dict[str, Any] = {k: [s[i] for s in series] for i, k in enumerate(equal)}
        params.update(lo=min(map(itemgetter(position), rows)), hi=max(map(itemgetter(position), rows)))
        statement = self.compiled(("any stored", table.name, keys), lambda: _any_stored(table, equal, ranged))
        result = await conn.exec_driver_sql(statement.sql, tuple(statement.positional(params)))
        return result.first() is not None

    async def _upsert_through_temporary_table(
        self,
        conn: AsyncConnection,
        driver: Any,
        table: Table,
        columns: tuple[str, ...],
        rows: list[Row],
        keys: tuple[str, ...],
    ) -> None:
        quote = self.dialect.identifier_preparer.quote
        incoming = f"tradestore_incoming_{table.name}"
        names = ", ".join(quote(c) for c in columns)
        target = self.dialect.identifier_preparer.format_table(table)
        # Only the written columns, no constraints; dropped at commit even if a later step fails.
        await conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {quote(incoming)} ON COMMIT DROP AS SELECT {names} FROM {target} WITH NO DATA"
        )
        await self._copy(driver, incoming, table, columns, rows)
        statement = self.compiled(
            ("upsert from", table.name, columns, keys), lambda: _upsert_from(table, incoming, columns, keys)
        )
        await conn.exec_driver_sql(statement.sql)
        await conn.exec_driver_sql(f"DROP TABLE {quote(incoming)}")

    async def _copy(
        self, driver: Any, name: str, table: Table, columns: tuple[str, ...], rows: list[Row], schema: str | None = None
    ) -> None:
        """``COPY`` ``rows`` into table ``name`` (columns shaped like ``table``'s) in text format.

        ``str()`` of a decimal, integer or datetime is text PostgreSQL reads back exactly, and
        costs the client several times less than asyncpg's binary encoding of ``Decimal``.
        """
        kinds = self._copy_kinds(table, columns)
        assert kinds is not None
        await driver.copy_to_table(
            name, source=_copy_text(rows, kinds, self.chunk_rows), columns=columns, schema_name=schema
        )

    def _copy_kinds(self, table: Table, columns: tuple[str, ...]) -> tuple[type, ...] | None:
        """The Python type of each column, or ``None`` when one has no exact ``str()`` text."""
        key = (table.name, columns)
        if key not in self._text_copy:
            kinds = tuple(_python_type(table.c[name].type) for name in columns)
            self._text_copy[key] = kinds if all(k in (str, int, Decimal, datetime) for k in kinds) else None
        return self._text_copy[key]

    def decode_datetimes(self, values: list[Any]) -> list[datetime]:
        return values  # asyncpg already returns aware UTC datetimes

    async def _fetch(self, driver: Any, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        return await driver.fetch(sql, *params)  # type: ignore[no-any-return]

    async def gaps(
        self,
        conn: AsyncConnection,
        key: Hashable,
        column: ColumnElement[datetime],
        where: Callable[[], Sequence[ColumnElement[bool]]],
        params: Mapping[str, Any],
        *,
        monthly: bool,
    ) -> list[tuple[Any, Any]]:
        # Interval arithmetic on the timestamps themselves: cheaper than two EXTRACT(EPOCH)s a row.
        def build() -> ClauseElement:
            previous = func.lag(column).over(order_by=column)
            ordered = select(column.label("ts"), previous.label("prev_ts")).where(*where()).subquery()
            zero: ColumnElement[int] = literal_column("0")
            step = func.make_interval(zero, bindparam("months"), zero, zero, zero, zero, bindparam("seconds"))
            return (
                select(ordered.c.prev_ts, ordered.c.ts)
                .where(ordered.c.ts > ordered.c.prev_ts + step)
                .order_by(ordered.c.ts)
            )

        step = params["step"]
        found = await self.fetch(
            conn,
            ("interval gaps", key),
            build,
            {**params, "months": step if monthly else 0, "seconds": 0 if monthly else step},
        )
        return [(prev, ts) for prev, ts in found]


def _python_type(type_: TypeEngine[Any]) -> type:
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    try:
        return cast(type, type_.python_type)
    except NotImplementedError:
        return object


#: COPY's text format: these characters stand for themselves only after a backslash.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: Any) -> str:
    """One value in COPY's text format (``\\N`` is NULL)."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    return str(value)


def _column_text(values: tuple[Any, ...], kind: type) -> Iterable[str]:
    """A column of a chunk in COPY's text format, with as little work per value as it allows."""
    first = values[0]
    if values[-1] is first and all(map(is_, values, repeat(first))):
        return repeat(_text(first), len(values))  # one object in every row (created_at): once
    if kind is str:  # few distinct names: escape each once
        texts = {value: _text(value) for value in set(values)}
        return map(texts.__getitem__, values)
    if any(map(is_, values, repeat(None))):
        return map(_text, values)
    return map(str, values)


async def _copy_text(rows: list[Row], kinds: tuple[type, ...], size: int) -> AsyncIterator[bytes]:
    """COPY's text format a chunk at a time: tab-separated, a line per row."""
    for chunk in chunked(rows, size):
        columns = [_column_text(values, kind) for values, kind in zip(zip(*chunk, strict=True), kinds, strict=True)]
        yield ("\n".join(map("\t".join, zip(*columns, strict=True))) + "\n").encode()


def _any_stored(table: Table, equal: Sequence[str], ranged: str) -> ClauseElement:
    arrays = [bindparam(c, type_=ARRAY(table.c[c].type)) for c in equal]
    wanted = func.unnest(*arrays).table_valued(*equal).render_derived(name="wanted")
    return (
        select(literal_column("1"))
        .select_from(wanted.join(table, and_(*(table.c[c] == wanted.c[c] for c in equal))))
        .where(table.c[ranged] >= bindparam("lo", type_=table.c[ranged].type))
        .where(table.c[ranged] <= bindparam("hi", type_=table.c[ranged].type))
        .limit(1)
    )


def _upsert_from(table: Table, incoming: str, columns: Sequence[str], keys: Sequence[str]) -> ClauseElement:
    source = sql_table(incoming, *(sql_column(c) for c in columns))
    statement = pg_insert(table).from_select(list(columns), select(*source.c))
    return cast(
        ClauseElement,
        statement.on_conflict_do_update(index_elements=list(keys), set_=_update_set(statement, columns, keys)),
    )


_BACKENDS: dict[str, type[Backend]] = {"sqlite": SQLiteBackend, "postgresql": PostgresBackend}
_CACHE: dict[int, Backend] = {}


def backend(dialect: Dialect) -> Backend:
    """The :class:`Backend` for ``dialect`` (one instance per dialect object)."""
    found = _CACHE.get(id(dialect))
    if found is None or found.dialect is not dialect:
        found = _CACHE[id(dialect)] = _BACKENDS[dialect.name](dialect)
    return found
