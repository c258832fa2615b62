"""The single-row fast path: a Core statement compiled once per dialect, run on the driver itself.

A bot's per-tick calls are one short statement each (an insert, a conditional update, a short
read). Through ``AsyncSession.execute`` each one pays for SQLAlchemy's execution context,
cursor wrapper and, on aiosqlite, three or four hops to the driver's thread where the statement
needs one. :func:`execute` keeps what SQLAlchemy does that matters here and drops the rest:

* the statement is compiled once per dialect and shape, keyed by SQLAlchemy's own cache key
  (so its literal values, e.g. those of ``.values(...)``, are new parameters, not a new
  compilation), and its column types' bind and result processors are looked up once;
* it runs on the driver connection of the session's transaction (:func:`driver`: on PostgreSQL
  the session's lease, see :mod:`tradestore.leases`, else ``session.connection()``): one
  aiosqlite call (one thread hop) or one asyncpg prepared statement (one round trip);
* a cancelled statement marks a PostgreSQL transaction failed: its commit then raises
  ``TransactionAbortedError`` rather than end a transaction the server may have aborted;
* errors are typed as on SQLAlchemy's path: a lock not granted is ``StorageBusyError``, a broken
  connection ``ConnectionLostError``, a unique-key violation ``DuplicateError`` (an
  ``IntegrityError``), any other database error the ``sqlalchemy.exc`` class SQLAlchemy raises;
* with ``echo=True`` each statement and its parameters are logged like SQLAlchemy logs them.

Statements it does not take (textual SQL, ORM statements returning entities, tuple-typed
parameters) return ``None`` and the caller runs them through the session as before.

This relies on a few SQLAlchemy internals that its own execution uses (the compiled cache key,
``construct_params`` with extracted parameters, the compiled bind processors and result
columns, the asyncpg adapter's transaction start). ``tests/test_single_row.py`` checks every
one against ``session.execute`` on both backends, so an upgrade that changes them fails there.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from sqlalchemy.engine import Dialect, Engine, Result
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import Delete, Executable, Insert, Select, Update
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from tradestore.dialects.errors import is_unique_violation, note_failure, translate
from tradestore.errors import ConnectionLostError, DuplicateError, StorageError
from tradestore.leases import Lease, leased_connection

if TYPE_CHECKING:
    from tradestore.dialects.base import Backend

#: How many compiled statements a backend keeps; a bot uses a few dozen.
CACHE_SIZE = 500

Processor = Callable[[Any], Any]


@dataclass
class Prepared:
    """One statement shape compiled for one dialect, with its type processors."""

    compiled: SQLCompiler
    sql: str
    names: tuple[str, ...]
    binds: dict[str, Processor]
    expanding: bool
    table: str | None
    #: Every bind's own value (``None`` when escaped names make ``construct_params`` necessary),
    #: and the names a call must give: the statement's own values merged with ``params`` quickly.
    defaults: dict[str, Any] | None
    required: frozenset[str]
    #: Result keys and processors, filled on the first run (asyncpg tells the column types then).
    keys: tuple[str, ...] | None = None
    results: list[tuple[int, Processor]] | None = field(default=None)

    def arguments(self, params: Mapping[str, Any] | None, extracted: Sequence[Any] | None) -> tuple[str, list[Any]]:
        """The SQL text and its positional driver values for ``params``."""
        defaults = self.defaults
        values: Mapping[str, Any]
        if extracted is None and defaults is not None and self.required <= (params or {}).keys():
            values = {**defaults, **params} if params else dict(defaults)
        else:  # another statement of this shape (its values come from its cache key), or an error to raise
            values = self.compiled.construct_params(params, extracted_parameters=extracted, escape_names=True)
        sql, names, binds = self.sql, self.names, self.binds
        if self.expanding:  # IN (…) lists: the SQL depends on their lengths
            state = self.compiled._process_parameters_for_postcompile(values)
            sql, names, values = state.statement, tuple(state.positiontup or ()), state.parameters
            binds = {**binds, **cast(dict[str, Processor], state.processors)}
        return sql, [binds[n](values[n]) if n in binds else values[n] for n in names]

    def result_processors(self, coltypes: Iterable[Any], dialect: Any) -> list[tuple[int, Processor]]:
        """The column types' conversions of each result column that has one (found once)."""
        if self.results is None:
            columns = self.compiled._result_columns
            self.keys = tuple(c.keyname for c in columns)
            found: list[tuple[int, Processor]] = []
            for i, (column, coltype) in enumerate(zip(columns, coltypes, strict=False)):
                processor = column.type._cached_result_processor(dialect, coltype)
                if processor is not None:
                    found.append((i, cast(Processor, processor)))
            self.results = found
        return self.results


class FastResult(IteratorResult[Any]):
    """A ``Result`` of rows already fetched, with the driver's ``rowcount``."""

    def __init__(self, keys: tuple[str, ...], rows: list[tuple[Any, ...]], rowcount: int) -> None:
        super().__init__(_metadata(keys), iter(rows))
        self.rowcount = rowcount


@functools.lru_cache(maxsize=CACHE_SIZE)
def _metadata(keys: tuple[str, ...]) -> SimpleResultMetaData:
    """The result metadata of rows with ``keys``: built once (its key map costs more than a row)."""
    return SimpleResultMetaData(list(keys))


def _returns_entities(statement: Executable) -> bool:
    """Whether the ORM would hand back mapped objects rather than plain rows."""
    if isinstance(statement, Select):
        descriptions = statement.column_descriptions
    elif isinstance(statement, Insert | Update | Delete):
        descriptions = statement.returning_column_descriptions
    else:
        return True
    return any(d.get("entity") is not None and d.get("expr") is d.get("entity") for d in descriptions)


def prepare(db: Backend, statement: Executable, params: Mapping[str, Any] | None) -> tuple[Prepared, Any] | None:
    """The compiled form of ``statement`` and its extracted literal values, or ``None`` (not taken).

    A statement object used again (built once, values passed as ``params``) is found by
    identity, for nothing; one built anew on each call by SQLAlchemy's cache key, which costs
    a walk over the statement, and its literal values are then taken from that key.
    """
    keys = tuple(sorted(params)) if params and not isinstance(statement, Select) else ()
    same: dict[Hashable, tuple[Executable, Prepared | None, Any]] = db._single_row_by_id
    found = same.get((id(statement), keys))
    if found is not None and found[0] is statement:
        return None if found[1] is None else (found[1], found[2])
    if not isinstance(statement, Select | Insert | Update | Delete):
        return None
    cache_key = statement._generate_cache_key()
    if cache_key is None:
        return None
    cache: dict[Hashable, Prepared | None] = db._single_row
    key: Hashable = (cache_key.key, keys)
    prepared = cache.get(key, False)
    if prepared is False:
        prepared = _compile(db, statement, keys, cache_key)
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[key] = prepared
    if len(same) >= CACHE_SIZE:
        same.clear()
    # Keeps the statement alive, so its id cannot be reused by another one while it is here.
    if prepared is None:
        same[(id(statement), keys)] = (statement, None, None)
        return None
    assert isinstance(prepared, Prepared)
    # The statement compiled holds its own values; another of its shape takes them from its key.
    extracted = None if prepared.compiled.statement is statement else cache_key.bindparams
    same[(id(statement), keys)] = (statement, prepared, extracted)
    return prepared, extracted


def _compile(db: Backend, statement: Executable, keys: tuple[str, ...], cache_key: Any) -> Prepared | None:
    if _returns_entities(statement):
        return None
    compiled = cast(
        SQLCompiler,
        cast(ClauseElement, statement).compile(dialect=db.dialect, column_keys=list(keys) or None, cache_key=cache_key),
    )
    binds = compiled._bind_processors
    if any(not callable(p) for p in binds.values()):  # tuple types: leave them to SQLAlchemy
        return None
    table = getattr(getattr(statement, "table", None), "name", None)
    escaped = bool(getattr(compiled, "escaped_bind_names", None))
    return Prepared(
        compiled=compiled,
        sql=compiled.string,
        names=tuple(compiled.positiontup or ()),
        binds=cast(dict[str, Processor], dict(binds)),
        expanding=bool(compiled.post_compile_params or compiled.literal_execute_params),
        table=table,
        defaults=None if escaped else dict(compiled.construct_params(_check=False)),
        required=frozenset(compiled.bind_names[b] for b in compiled.bind_names if b.required),
    )


async def run(
    session: AsyncSession, statement: Executable, params: Mapping[str, Any] | None = None
) -> tuple[tuple[str, ...], list[Any], int] | None:
    """Run ``statement`` on the driver inside the session's transaction; ``None`` if not taken.

    Returns:
        The result's keys, its rows (values converted by the column types, as SQLAlchemy
        converts them) and the number of rows changed (-1 for a query).

    Raises:
        StorageBusyError, ConnectionLostError: as on SQLAlchemy's path.
        DuplicateError: a unique key is already stored (also an ``IntegrityError``).
        sqlalchemy.exc.DBAPIError: any other database error, of the class SQLAlchemy would raise.
    """
    on = await driver(session)
    dialect, engine, raw = on.dialect, on.engine, on.raw
    from tradestore.dialects import backend  # the package imports this module

    db = backend(dialect)
    found = prepare(db, statement, params)
    if found is None:
        return None
    prepared, extracted = found
    sql, args = prepared.arguments(params, extracted)
    if engine.echo:
        engine.logger.info(sql)
        engine.logger.info("[single-row path] %r", tuple(args))
    try:
        rows, coltypes, rowcount = await db.run_single(raw, sql, args)
    except Exception as exc:
        raise _typed(exc, on, prepared, sql, args) from exc
    except BaseException:
        on.cancelled()
        raise
    processors = prepared.result_processors(coltypes, dialect)
    if processors and rows:
        out = []
        for row in rows:
            values = list(row)
            for i, processor in processors:
                values[i] = processor(values[i])
            out.append(tuple(values))
        rows = out
    return prepared.keys or (), rows, rowcount


async def execute(
    session: AsyncSession, statement: Executable, params: Mapping[str, Any] | None = None
) -> Result[Any] | None:
    """:func:`run` as a SQLAlchemy ``Result`` (with ``rowcount``); ``None`` if not taken."""
    found = await run(session, statement, params)
    return None if found is None else FastResult(*found)


class Driver(NamedTuple):
    """Where a statement sent to the driver directly runs: the pool connection of a transaction."""

    dialect: Dialect
    engine: Engine
    #: The pool's connection: ``driver_connection``, ``dbapi_connection`` (the adapter) and ``info``.
    raw: Any
    #: The session's :class:`~tradestore.leases.Lease` when the connection is leased.
    lease: Lease | None = None

    def check_open(self) -> None:
        """For a read taken up again later (a stream's next page): its transaction must still be open.

        Raises:
            StorageError: the transaction it was found in has ended (its session committed, rolled
                back or closed), and the connection may now serve another session.
        """
        adapter = self.raw.dbapi_connection
        lease = self.lease
        if adapter is None or (
            lease is not None and (lease.ended or lease.record is not self.raw or adapter._transaction is None)
        ):
            raise StorageError(
                "the transaction this read began in has ended (its session committed, rolled back or "
                "closed): read it whole inside one session, or start it again in a new one"
            )

    def cancelled(self) -> None:
        """A statement sent here was cancelled: note its transaction as failed (PostgreSQL).

        The server may have run the statement, or aborted the transaction at the cancel
        request. A caller who catches the cancellation must not see the unit commit as if
        neither had happened: the commit then raises ``TransactionAbortedError``.
        """
        note_failure(self.dialect.name, self.raw.info, None)

    def failed(self, error: Exception) -> StorageError | None:
        """The typed error for the driver's ``error``, or ``None``; a lost leased connection is discarded."""
        typed = translate(error, self.engine.url)
        note_failure(self.dialect.name, self.raw.info, typed)
        if self.lease is not None and isinstance(typed, ConnectionLostError):
            self.lease.discard(error)
        return typed


#: The connection of each session transaction the single-row path has used (forgotten with it).
_DRIVERS: weakref.WeakKeyDictionary[Any, Driver] = weakref.WeakKeyDictionary()


async def driver(session: AsyncSession) -> Driver:
    """The pool connection of the session's transaction, beginning the transaction if needed.

    On PostgreSQL the session's :class:`~tradestore.leases.Lease` gives it while SQLAlchemy has
    not taken the unit over. Otherwise asking the session costs two trips through SQLAlchemy's
    greenlet bridge; a unit of work asks once per transaction, then finds the answer here.
    """
    leased = await leased_connection(session)
    if leased is not None:
        lease, record = leased
        return Driver(lease.engine.dialect, lease.engine, record, lease)
    sync_session = session.sync_session
    # The innermost transaction: a savepoint (begin_nested) is emitted when it first asks for its
    # connection, so one opened since the last statement must ask, not find the outer one's.
    transaction = sync_session.get_nested_transaction() or sync_session.get_transaction()
    found = _DRIVERS.get(transaction) if transaction is not None else None
    if found is not None and found.raw.dbapi_connection is not None:
        return found
    found = await driver_of(await session.connection())  # begins the transaction (SQLite: BEGIN IMMEDIATE)
    transaction = sync_session.get_nested_transaction() or sync_session.get_transaction()
    if transaction is not None:
        _DRIVERS[transaction] = found
    return found


async def driver_of(conn: AsyncConnection) -> Driver:
    """The pool connection of ``conn``."""
    sync = conn.sync_connection
    # Checked out and valid: the pool's connection is an attribute (no trip through the bridge).
    raw = sync.connection if sync is not None and not sync.invalidated else await conn.get_raw_connection()
    return Driver(conn.dialect, conn.sync_engine, raw)


def _typed(error: Exception, found: Driver, prepared: Prepared, sql: str, args: list[Any]) -> Exception:
    """The exception SQLAlchemy's path raises for the driver's ``error``."""
    typed = found.failed(error)
    if typed is not None:
        return typed  # the session's rollback then finds a lost connection gone and discards it
    if is_unique_violation(error):
        where = f" in {prepared.table}" if prepared.table else ""
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return DuplicateError(f"a row with this unique key already exists{where} ({detail})", orig=error)
    return adapted(error, found.raw, found.dialect, sql, args)


def adapted(error: Exception, raw: Any, dialect: Dialect, sql: str, args: list[Any]) -> Exception:
    """The driver's ``error`` as the ``sqlalchemy.exc`` error SQLAlchemy's cursor would raise."""
    orig: Exception = error
    try:  # the driver's error as the adapter's DB-API error
        raw.dbapi_connection._handle_exception(error)
    except Exception as adapter_error:
        orig = adapter_error
    dbapi = dialect.loaded_dbapi
    return cast(Exception, DBAPIError.instance(sql, args, orig, dbapi.Error, dialect=dialect))
