"""PostgreSQL through asyncpg: COPY, arrays and the bulk paths."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from itertools import repeat
from operator import is_, itemgetter
from typing import TYPE_CHECKING, Any, cast

import asyncpg
from sqlalchemy import Table, and_, bindparam, func, literal_column, select, true
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import ClauseElement, ColumnElement
from sqlalchemy.types import JSON, TypeDecorator, TypeEngine

from tradestore.dialects.base import Backend, EquitySummary, Row, _update_set, echo
from tradestore.dialects.errors import end_interrupted_begin, interrupted_begin
from tradestore.values import EXACT, chunked

if TYPE_CHECKING:
    from tradestore.leases import Lease

_NAIVE_MIN = datetime.min
#: Where a pooled connection keeps its prepared single-row statements (``raw.info``).
_PREPARED = "tradestore.prepared"
_PREPARED_MAX = 500


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
    #: Key of the advisory lock that lets one migration run at a time.
    migration_lock = 0x7472_6164_6573  # "trades"
    insert = staticmethod(pg_insert)
    chunk_rows = 20_000
    writes_in_key_order = True
    counts_inserted = True
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
        ignore: bool,
    ) -> int:
        rows = rows if isinstance(rows, list) else list(rows)
        if len(rows) >= self.copy_min_rows:
            copied = await self._copied(conn, table, columns, rows, upsert_on, ignore)
            if copied is not None:
                return copied
        sql = self.compiled(
            ("counted write", table.name, columns, upsert_on, ignore),
            lambda: _counted(self._write_statement(table, columns, upsert_on, ignore)),
        ).sql
        inserted = 0
        for chunk in chunked(rows, self.chunk_rows):
            result = await conn.exec_driver_sql(sql, tuple(list(column) for column in zip(*chunk, strict=True)))
            inserted += int(result.scalar() or 0)
        return inserted

    async def _copied(
        self,
        conn: AsyncConnection,
        table: Table,
        columns: tuple[str, ...],
        rows: list[Row],
        upsert_on: tuple[str, ...] | None,
        ignore: bool = False,
    ) -> int | None:
        """Write ``rows`` with ``COPY``; returns the rows inserted, or ``None``, with nothing written, when that fails.

        Whatever stops it (a key stored or repeated after all, a value the table refuses, a
        lock) is rolled back to the savepoint, and the caller writes the rows again with the
        portable statement, which succeeds or raises the error SQLAlchemy raises everywhere
        else. Only an error rolling back (a lost connection) escapes from here.
        """
        if self._copy_kinds(table, columns) is None:
            return None
        overwrite = upsert_on is not None and await self._any_stored(conn, table, columns, rows, upsert_on)
        inserted = len(rows)
        async with conn.begin_nested() as savepoint:
            echo(conn, f"COPY {table.name} ({', '.join(columns)}) FROM STDIN", f"{len(rows)} rows")
            driver: Any = (await conn.get_raw_connection()).driver_connection
            try:
                if overwrite:
                    assert upsert_on is not None
                    inserted = await self._upsert_through_temporary_table(
                        conn, driver, table, columns, rows, upsert_on, ignore
                    )
                else:
                    await self._copy(driver, table.name, table, columns, rows, schema=table.schema)
            except Exception:
                await savepoint.rollback()
                return None
        return inserted

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
        ignore: bool = False,
    ) -> int:
        """Rows through a temporary table and one ``INSERT … SELECT … ON CONFLICT``; returns the rows inserted."""
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
            ("upsert from", table.name, columns, keys, ignore),
            lambda: _counted(_upsert_from(table, incoming, columns, keys, ignore)),
        )
        inserted = int((await conn.exec_driver_sql(statement.sql)).scalar() or 0)
        await conn.exec_driver_sql(f"DROP TABLE {quote(incoming)}")
        return inserted

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

    def lock_migrations(self, connection: Connection) -> None:
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({self.migration_lock:d})")

    async def equity_summary(
        self,
        conn: AsyncConnection,
        timestamp: ColumnElement[datetime],
        equity: ColumnElement[Decimal],
        where: Sequence[ColumnElement[bool]],
    ) -> EquitySummary | None:
        # One ordered index scan computes the running peak; one hash aggregate reduces the curve
        # to a row per peak (its lowest equity: the only drawdown candidate of that peak).
        curve = (
            select(
                timestamp.label("ts"),
                equity.label("e"),
                func.max(equity).over(order_by=timestamp, rows=(None, 0)).label("pk"),
            )
            .where(*where)
            .subquery("curve")
        )
        groups = (
            await conn.execute(
                select(curve.c.pk, func.min(curve.c.e), func.min(curve.c.ts), func.count()).group_by(curve.c.pk)
            )
        ).all()
        if not groups:
            return None
        # An episode: the rows under one running peak, from its first time at that peak (the
        # running peak never falls, so ascending peaks are episodes in time order).
        episodes = sorted((peak, low, start) for peak, low, start, _ in groups)
        best: tuple[int, Decimal] | None = None  # the deepest episode, its drop
        for n, (peak, low, _) in enumerate(episodes):
            drop = EXACT.subtract(peak, low)
            # drop / peak > best drop / best peak, compared exactly (both peaks are positive)
            if (
                peak > 0
                and drop > 0
                and (best is None or EXACT.multiply(drop, episodes[best[0]][0]) > EXACT.multiply(best[1], peak))
            ):
                best = (n, drop)
        first = episodes[0]
        # The last row of each UTC day from the first to the last: one index probe per day.
        bounds = select(func.min(timestamp).label("lo"), func.max(timestamp).label("hi")).where(*where).subquery()
        one_day: ColumnElement[Any] = literal_column("interval '1 day'")
        days = select(func.generate_series(_utc_day(bounds.c.lo), bounds.c.hi, one_day).label("d")).subquery()
        last = (
            select(timestamp.label("ts"), equity.label("e"))
            .where(*where, timestamp >= days.c.d, timestamp < days.c.d + one_day)
            .order_by(timestamp.desc())
            .limit(1)
            .lateral("last")
        )
        by_day = select(last.c.ts, last.c.e).select_from(days.join(last, true())).order_by(last.c.ts)
        closes = (await conn.execute(by_day)).all()
        summary = EquitySummary(
            count=sum(row[3] for row in groups),
            first=(first[2], first[0]),  # the first row is its own running peak
            closes=[(row[0], row[1]) for row in closes],
            peak=None,
            trough=None,
            recovered=None,
        )
        if best is None:
            return summary
        peak, low, start = episodes[best[0]]
        following = episodes[best[0] + 1][2] if best[0] + 1 < len(episodes) else None
        episode = [*where, timestamp >= start] + ([] if following is None else [timestamp < following])
        trough_ts = (await conn.execute(select(func.min(timestamp)).where(*episode, equity == low))).scalar_one()
        peak_ts = (
            await conn.execute(select(func.max(timestamp)).where(*episode, timestamp < trough_ts, equity == peak))
        ).scalar_one()
        # back at the peak: within the episode (equal to it), or when the next, higher one begins
        again = select(func.min(timestamp)).where(*episode, timestamp > trough_ts, equity >= peak)
        recovered = (await conn.execute(again)).scalar_one() or following
        return dataclasses.replace(summary, peak=(peak_ts, peak), trough=(trough_ts, low), recovered=recovered)

    async def _fetch(self, driver: Any, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        return await driver.fetch(sql, *params)  # type: ignore[no-any-return]

    def lease(self, engine: Engine, *, timeout: float | None = None) -> Lease:
        from tradestore.leases import Lease

        return Lease(engine, timeout=timeout)

    async def run_single(self, raw: Any, sql: str, params: Sequence[Any]) -> tuple[list[Any], Iterable[Any], int]:
        driver, adapter = raw.driver_connection, raw.dbapi_connection
        if adapter._transaction is None and not adapter.autocommit:
            # SQLAlchemy's adapter begins lazily, at its first statement: begin it the same way
            # (BEGIN, with the isolation, read-only and deferrable settings of the connection).
            if interrupted_begin(adapter):  # a caller caught the cancellation of the last BEGIN
                await end_interrupted_begin(adapter)
            try:
                await adapter._start_transaction()
            except Exception as exc:
                raise (exc.__cause__ if isinstance(exc.__cause__, Exception) else exc) from None
        # Prepared once per connection and statement, like SQLAlchemy's adapter does; kept in
        # the pool's record of the connection, so a new connection starts with none.
        cache: dict[str, tuple[Any, list[int]]] = raw.info.setdefault(_PREPARED, {})
        found = cache.get(sql)
        if found is None:
            if len(cache) >= _PREPARED_MAX:
                cache.clear()
            statement = await driver.prepare(sql)
            found = cache[sql] = (statement, [a.type.oid for a in statement.get_attributes()])
        statement, oids = found
        try:
            rows = await statement.fetch(*params)
        except asyncpg.InvalidCachedStatementError:
            del cache[sql]  # the table changed under it: prepare it again next time
            raise
        status = statement.get_statusmsg() or ""
        count = status.rsplit(" ", 1)[-1]
        return rows, oids, int(count) if count.isdigit() and not status.startswith("SELECT") else -1

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


def _utc_day(moment: ColumnElement[datetime]) -> ColumnElement[datetime]:
    """The UTC midnight starting the day of ``moment`` (integer arithmetic, whatever the session's time zone)."""
    return func.date_bin(
        literal_column("interval '1 day'"), moment, literal_column("timestamptz '2000-01-01 00:00:00+00'")
    )


def _python_type(type_: TypeEngine[Any]) -> type:
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    if isinstance(type_, JSON):
        return str  # the writers hand JSON columns their text, which COPY passes through as it is
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


def _counted(statement: Any) -> ClauseElement:
    """``statement`` (an insert) returning how many rows it inserted, overwritten or skipped ones aside.

    A row a statement inserts has ``xmax = 0``; one ``ON CONFLICT DO UPDATE`` rewrote carries the
    writing transaction's id there, and one ``DO NOTHING`` skipped is not returned at all.
    """
    written = statement.returning(literal_column("xmax = 0").label("inserted")).cte("written")
    return select(func.count()).select_from(written).where(written.c.inserted)


def _upsert_from(table: Table, incoming: str, columns: Sequence[str], keys: Sequence[str], ignore: bool) -> Any:
    source = sql_table(incoming, *(sql_column(c) for c in columns))
    statement = pg_insert(table).from_select(list(columns), select(*source.c))
    if ignore:
        return statement.on_conflict_do_nothing(index_elements=list(keys))
    return statement.on_conflict_do_update(index_elements=list(keys), set_=_update_set(statement, columns, keys))
