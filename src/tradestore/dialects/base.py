"""The :class:`Backend` seam: how the bulk paths talk to one kind of database."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, ColumnElement, Select

from tradestore.dialects.functions import dec_max, dec_min, dec_sign, dec_sub, dec_sum, epoch_seconds, month_index
from tradestore.dialects.single_row import Driver, driver_of
from tradestore.types import ValueCodec

if TYPE_CHECKING:
    from tradestore.leases import Lease

Row = tuple[Any, ...]


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


@dataclass(frozen=True)
class EquitySummary:
    """One pass over an equity curve (see :meth:`Backend.equity_summary`); equity exact.

    Attributes:
        count: snapshots read.
        first: (timestamp, equity) of the oldest.
        closes: (timestamp, equity) of the last snapshot of each UTC day that has one, oldest first.
        peak: (timestamp, equity) where the largest drawdown started: the last time at the peak
            before the trough; ``None`` when the curve never falls.
        trough: (timestamp, equity) of the bottom of that drawdown (the first time, on ties).
        recovered: the first time after the trough that equity is back at the peak, or ``None``.
    """

    count: int
    first: tuple[datetime, Decimal]
    closes: list[tuple[datetime, Decimal]]
    peak: tuple[datetime, Decimal] | None
    trough: tuple[datetime, Decimal] | None
    recovered: datetime | None


class Backend(ABC):
    """How the bulk paths talk to one kind of database.

    Values go to the driver through each column type's own ``bulk_encoder`` and come back
    through its ``bulk_decoder`` (see :mod:`tradestore.types`), a column at a time: one
    definition of how a ``Decimal`` or a datetime is stored, beside the ORM's bind step.
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
    #: Whether :meth:`write` tells how many rows it inserted (overwritten or skipped ones aside);
    #: otherwise it returns ``None`` and a caller who needs the number counts for itself.
    counts_inserted: bool = False

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[Hashable, Compiled] = {}
        #: The single-row path's compiled statements (see :mod:`tradestore.dialects.single_row`).
        self._single_row: dict[Hashable, Any] = {}
        self._single_row_by_id: dict[Hashable, Any] = {}

    def encoder(self, column: ColumnElement[Any]) -> ValueCodec | None:
        """How the bulk paths store a validated value of ``column``; ``None``: as it is."""
        hook = getattr(column.type, "bulk_encoder", None)
        return None if hook is None else cast(ValueCodec | None, hook(self.dialect))

    def decoder(self, column: ColumnElement[Any]) -> ValueCodec | None:
        """How a value of ``column`` the driver returns becomes a Python value; ``None``: as it is."""
        hook = getattr(column.type, "bulk_decoder", None)
        return None if hook is None else cast(ValueCodec | None, hook(self.dialect))

    def encode(self, column: ColumnElement[Any], value: Any) -> Any:
        """One value of ``column`` as the driver takes it (``None`` stays ``None``)."""
        found = self.encoder(column)
        return value if found is None or value is None else found(value)

    def decode(self, column: ColumnElement[Any], value: Any) -> Any:
        """One value of ``column`` from the driver (``None`` stays ``None``)."""
        found = self.decoder(column)
        return value if found is None or value is None else found(value)

    def atomically(self, conn: AsyncConnection) -> AbstractAsyncContextManager[Any]:
        """A savepoint: what runs inside is kept whole or, on error, undone (the transaction goes on)."""
        return conn.begin_nested()

    @abstractmethod
    def lock_migrations(self, connection: Connection) -> None:
        """Make a second process that migrates the same database wait until this transaction ends."""

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
        ignore: bool = False,
        savepoint: bool = True,
    ) -> int | None:
        """Insert ``rows`` (encoded tuples in ``columns`` order): all of them or none.

        With ``upsert_on`` (the columns of a unique key, holding no key twice) a row whose key
        is stored overwrites the stored row, ``created_at`` excepted, or with ``ignore`` is
        left out (the stored row stays). Without it a stored or repeated key raises
        ``sqlalchemy.exc.IntegrityError``. The write runs in a savepoint of its own unless
        ``savepoint=False`` (the caller holds one, see :meth:`atomically`).

        Returns:
            How many rows were inserted (not overwritten or skipped) when the backend knows it
            without extra work (:attr:`counts_inserted`), else ``None``.
        """
        keys = None if upsert_on is None else tuple(upsert_on)
        if not savepoint:
            return await self._write(conn, table, tuple(columns), rows, keys, ignore)
        async with conn.begin_nested():
            return await self._write(conn, table, tuple(columns), rows, keys, ignore)

    async def write_rows(self, conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (column name → value, as SQLAlchemy takes them; the same columns in
        each) through the bulk path: all of them or none.

        Each value is converted by its column type, exactly as a single-row insert converts it.

        Raises:
            sqlalchemy.exc.IntegrityError: a unique key is already stored or repeated.
        """
        if not rows:
            return
        # In the table's column order, whatever the order of the rows' keys: the compiled
        # statement lists its columns in table order.
        columns = tuple(c.name for c in table.c if c.name in rows[0])
        processors = [(name, table.c[name].type._cached_bind_processor(self.dialect)) for name in columns]
        encoded = [
            tuple(row[name] if process is None else process(row[name]) for name, process in processors) for row in rows
        ]
        await self.write(conn, table, columns, encoded, upsert_on=None)

    @abstractmethod
    async def _write(
        self,
        conn: AsyncConnection,
        table: Table,
        columns: tuple[str, ...],
        rows: Iterable[Row],
        upsert_on: tuple[str, ...] | None,
        ignore: bool,
    ) -> int | None:
        """The body of :meth:`write`, already inside its savepoint."""

    def statement(
        self, table: Table, columns: tuple[str, ...], upsert_on: tuple[str, ...] | None, ignore: bool = False
    ) -> Compiled:
        """The portable write statement: an insert, or an upsert on ``upsert_on``.

        With ``ignore`` the upsert leaves stored keys alone instead of overwriting them.
        """

        return self.compiled(
            ("write", table.name, columns, upsert_on, ignore),
            lambda: cast(ClauseElement, self._write_statement(table, columns, upsert_on, ignore)),
        )

    def _write_statement(
        self, table: Table, columns: tuple[str, ...], upsert_on: tuple[str, ...] | None, ignore: bool
    ) -> Any:
        statement = self._insert_rows(table, columns)
        if upsert_on is None:
            return statement
        if ignore:
            return statement.on_conflict_do_nothing(index_elements=list(upsert_on))
        return statement.on_conflict_do_update(
            index_elements=list(upsert_on), set_=_update_set(statement, columns, upsert_on)
        )

    @abstractmethod
    def _insert_rows(self, table: Table, columns: Sequence[str]) -> Any:
        """The dialect's insert of ``columns`` taking the rows of one round trip."""

    async def fetch(
        self, on: AsyncConnection | Driver, key: Hashable, build: Callable[[], ClauseElement], params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """Every row of a query, as the driver returns it (no per-row wrapping).

        ``on``: a connection, or a session's driver connection (:func:`single_row.driver`).
        ``params`` are already encoded for the driver (see ``encode_*``).
        """
        statement = self.compiled(key, build)
        values = statement.positional(params)
        found = on if isinstance(on, Driver) else await driver_of(on)
        echo(found.engine, statement.sql, values)
        try:
            return await self._fetch(found.raw.driver_connection, statement.sql, values)
        except Exception as exc:
            # The driver's own errors skip SQLAlchemy's hooks: type them the same way here.
            typed = found.failed(exc)
            if typed is None:
                raise
            raise typed from exc  # the session's rollback then finds the connection gone and discards it
        except BaseException:
            found.cancelled()
            raise

    @abstractmethod
    async def _fetch(self, driver: Any, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        """Every row of ``sql`` through the driver connection itself."""

    def lease(self, engine: Engine, *, timeout: float | None = None) -> Lease | None:
        """A lease of ``engine``'s pool for a session's single-row calls (see :mod:`tradestore.leases`).

        ``None`` (here): they run on the session's own connection.
        """
        return None

    @abstractmethod
    async def run_single(self, raw: Any, sql: str, params: Sequence[Any]) -> tuple[list[Any], Iterable[Any], int]:
        """Run one statement of the single-row path on a pooled connection, inside its transaction.

        Args:
            raw: the pool's connection (``AsyncConnection.get_raw_connection()``).
            sql: the statement in the driver's parameter style.
            params: its positional values, already processed for the driver.

        Returns:
            Every row, the driver's type code of each column (for SQLAlchemy's result
            processors) and the number of rows the statement changed (-1 for a query).
        """

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

    @abstractmethod
    async def equity_summary(
        self,
        conn: AsyncConnection,
        timestamp: ColumnElement[datetime],
        equity: ColumnElement[Decimal],
        where: Sequence[ColumnElement[bool]],
    ) -> EquitySummary | None:
        """Daily closes and the largest drawdown of the rows matching ``where``, in one pass in the database.

        The drawdown of a row is ``(peak - equity) / peak``, ``peak`` being the largest equity up
        to that row (rows with a peak of 0 have none); the largest is chosen by exact comparison,
        the earliest trough winning a tie. ``None`` when no row matches.
        """

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


def echo(on: AsyncConnection | Engine, sql: str, params: object) -> None:
    """Log a statement sent to the driver directly as SQLAlchemy logs its own (``echo=True``)."""
    logger = (on.sync_engine if isinstance(on, AsyncConnection) else on).logger
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s", sql)
        logger.info("[driver] %r", params)


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
