"""Build the ``AsyncEngine``: a pool suited to each backend and SQLite set up per connection."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Dialect, ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolResetState, StaticPool

from tradestore.dialects.errors import (
    ABORTED_ADVICE,
    FAILED,
    end_interrupted_begin,
    interrupted_begin,
    note_failure,
    translate,
)
from tradestore.dialects.sqlite_functions import register_sqlite_functions
from tradestore.errors import ConfigurationError, ConnectionLostError, TransactionAbortedError
from tradestore.urls import describe, is_memory, is_sqlite, mask
from tradestore.values import json_dumps
from tradestore.write_queue import Checkpointer, WriteQueue

#: How long a SQLite writer waits for another one's lock before failing, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 5_000
#: The execution option that makes a connection's transactions read-only (see ``readonly_engine``).
READONLY = "tradestore_readonly"


class TradestoreSQLiteConnection(sqlite3.Connection):
    """A ``sqlite3`` connection set up the way tradestore needs, whoever opens it.

    Set up in the constructor, so it happens in aiosqlite's worker thread, on every new
    connection: WAL for file databases, ``synchronous=NORMAL``, foreign keys, a busy timeout,
    a larger page cache, the exact-decimal collation and functions, and no implicit BEGIN
    (tradestore begins every transaction itself, see :meth:`begin`).
    """

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self.isolation_level = None
        memory = str(database) in ("", ":memory:") or "mode=memory" in str(database)
        self._queue = None if memory else WriteQueue(str(database))
        self._checkpointer = None if memory else Checkpointer.of(str(database))
        self._query_only = False
        # The busy timeout first: switching a new file to WAL needs a lock that connections
        # opening it at the same moment must wait for, not fail on.
        self.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        if not memory:
            self.execute("PRAGMA journal_mode=WAL")
        self.execute("PRAGMA synchronous=NORMAL")
        self.execute("PRAGMA foreign_keys=ON")
        self.execute("PRAGMA cache_size=-65536")  # 64 MiB
        if not memory:  # checkpoints run in a thread of their own (see Checkpointer)
            self.execute("PRAGMA wal_autocheckpoint=0")
        register_sqlite_functions(self)

    #: Whether this connection holds the write lock: its transaction began ``BEGIN IMMEDIATE``
    #: (set by the engine's begin hook, cleared at commit and rollback). Statements of such a
    #: transaction never wait for a lock, so the single-row path may run them on the event
    #: loop's thread instead of waking aiosqlite's (see ``SQLiteBackend.run_single``).
    write_locked = False
    #: Whether the last transaction begun has ended (committed or rolled back, in aiosqlite's
    #: thread). A ``BEGIN`` whose caller was cancelled may still be queued there: until it has
    #: run and been rolled back, the connection must not go back to the pool as it is.
    ended = True
    #: Whether the current transaction began on the event loop's thread and nothing of it has
    #: gone to aiosqlite's thread since: then its commit is made there too (see ``begin_here``).
    here = False

    def begin_here(self, readonly: bool) -> bool:
        """Begin on the calling thread if nothing has to be waited for; ``False`` if something has.

        The event loop's thread calls it while aiosqlite's thread is idle: a unit of work that
        finds the writers' turn and SQLite's write lock free (SQLite's busy timeout set to 0 for
        its ``BEGIN IMMEDIATE``) begins in microseconds, instead of waking aiosqlite's thread and
        waiting for its answer; one that would have to wait is left to :meth:`begin` there.
        """
        if readonly or (self._queue is not None and not self._queue.try_acquire()):
            return False
        self.execute("PRAGMA busy_timeout=0")
        try:
            if self._query_only:
                self.execute("PRAGMA query_only=OFF")
                self._query_only = False
            self.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            self._release()
            if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
                return False
            raise
        finally:
            self.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        self.here = True
        return True

    def begin(self, readonly: bool) -> None:
        """Begin a transaction: a write transaction in its turn, or a read that never waits.

        Write: wait for this writer's turn in the file's :class:`WriteQueue` (writers of every
        process in arrival order), then ``BEGIN IMMEDIATE``, so that a read-then-write unit of
        work never fails half-way with "database is locked". Read-only: ``PRAGMA query_only``
        and a deferred ``BEGIN``; in WAL mode its reads see the last commit and never wait for
        a writer, and a write raises ``SQLITE_READONLY``.
        """
        if readonly != self._query_only:
            self.execute("PRAGMA query_only=ON" if readonly else "PRAGMA query_only=OFF")
            self._query_only = readonly
        if readonly:
            self.execute("BEGIN DEFERRED")
            return
        if self._queue is not None:
            self._queue.acquire(SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._release()
            raise

    def commit(self) -> None:
        """Commit, then let the next writer in (and the checkpointer know)."""
        self.write_locked = self.here = False
        try:
            super().commit()
        finally:
            self._release()
        self.ended = True
        if self._checkpointer is not None and not self._query_only:
            self._checkpointer.committed()

    def rollback(self) -> None:
        """Roll back, then let the next writer in."""
        self.write_locked = self.here = False
        try:
            super().rollback()
        finally:
            self._release()
        self.ended = True

    def _release(self) -> None:
        if self._queue is not None and not self.in_transaction:
            self._queue.release()

    def close(self) -> None:
        """Roll back any open transaction, then close.

        A connection dropped in the middle of a transaction (its task was cancelled) may
        still have statements alive; ``sqlite3`` would then keep it open as a zombie,
        holding the write lock, until they are garbage-collected. Rolling back first
        releases the lock with the close.
        """
        try:
            if self.in_transaction:
                self.rollback()
        finally:
            if self._queue is not None:
                self._queue.close()
            super().close()


def prepare_sqlite_file(url: URL) -> None:
    """Create the folder of a SQLite file, and the file itself readable by its owner only."""
    if is_memory(url) or not url.database:
        return
    path = Path(url.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)  # whatever the umask


def check_pool(pool_size: object, max_overflow: object) -> tuple[int, int]:
    """Return ``(pool_size, max_overflow)`` if they make a pool: at least one connection, no negative overflow.

    Raises:
        ConfigurationError: naming the setting and the value.
    """
    for name, value, least in (("pool_size", pool_size, 1), ("max_overflow", max_overflow, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigurationError(f"{name}: expected an int of at least {least}, got {value!r}")
    return pool_size, max_overflow  # type: ignore[return-value]


def build_engine(
    url: URL,
    *,
    pool_size: int,
    max_overflow: int,
    echo: bool,
    postgres_settings: dict[str, Any] | None = None,
    checkout_timeout: float | None = None,
) -> AsyncEngine:
    """An engine for ``url`` (an async-driver URL from :func:`tradestore.urls.resolve`).

    SQLite: every write transaction waits for its turn among the file's writers, then starts
    with ``BEGIN IMMEDIATE``, taking the write lock up front so that a read-then-write unit of
    work never fails half-way with "database is locked" (see
    :meth:`TradestoreSQLiteConnection.begin`); an in-memory database is one connection shared
    by the manager (``StaticPool``).
    PostgreSQL: a ``pool_size`` + ``max_overflow`` pool whose connections begin their transaction
    when checked out, which also proves them alive (see :func:`_begin_on_checkout`); sessions in UTC.
    Both: :func:`readonly_engine` gives the same pool with read-only transactions.
    Both: a lock not granted in time raises :class:`StorageBusyError` and a broken or
    impossible connection :class:`ConnectionLostError`, instead of the driver's error.

    ``postgres_settings``: more asyncpg ``connect()`` arguments for PostgreSQL (its
    ``server_settings`` are added to tradestore's own), e.g. those of a replica's connections.
    ``checkout_timeout``: seconds the ``BEGIN`` of a PostgreSQL checkout may take before the
    connection counts as dead (``None``: no limit), for a server that stops answering without
    closing its connections.

    Raises:
        ConfigurationError: ``pool_size`` below 1 or ``max_overflow`` below 0.
    """
    pool_size, max_overflow = check_pool(pool_size, max_overflow)
    # The pool's own reset rolls back every connection it is handed back, even one whose
    # session has just committed: on aiosqlite a needless trip to its thread per unit of work.
    # ``_reset`` below rolls back only a connection still in a transaction.
    common: dict[str, Any] = {"echo": echo, "json_serializer": json_dumps, "pool_reset_on_return": None}
    if is_sqlite(url):
        prepare_sqlite_file(url)
        connect_args = {"factory": TradestoreSQLiteConnection, "check_same_thread": False}
        if is_memory(url):
            engine = create_async_engine(url, poolclass=StaticPool, connect_args=connect_args, **common)
            event.listen(engine.sync_engine, "handle_error", _keep_the_memory_database)
        else:
            engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=max_overflow, connect_args=connect_args, **common
            )
        event.listen(engine.sync_engine, "connect", _commit_here)
        event.listen(engine.sync_engine, "begin", _begin_sqlite)
    else:
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            connect_args=_postgres_connect_args(postgres_settings or {}),
            **common,
        )
        event.listen(engine.sync_engine, "do_connect", _connect_or_lost(url))
        event.listen(engine.sync_engine, "connect", _numeric_as_text)
        event.listen(engine.sync_engine, "checkout", _begin_on_checkout(checkout_timeout))
        event.listen(engine.sync_engine, "begin", _begin_postgres)
        event.listen(engine.sync_engine, "begin", _begin_postgres_read_only)
        event.listen(engine.sync_engine, "commit", _refuse_an_aborted_commit)
        if (postgres_settings or {}).get("server_settings", {}).get("default_transaction_read_only") == "on":
            event.listen(engine.sync_engine, "connect", _read_only_server)
        for ended in ("rollback", "rollback_savepoint"):
            event.listen(engine.sync_engine, ended, _forget_the_failure)
    event.listen(engine.sync_engine, "handle_error", _translate_error, retval=True)
    event.listen(engine.sync_engine.pool, "reset", _reset)
    return engine


def _postgres_connect_args(extra: dict[str, Any]) -> dict[str, Any]:
    settings = {"timezone": "UTC", "application_name": "tradestore", **extra.get("server_settings", {})}
    return {**extra, "server_settings": settings}


def readonly_engine(engine: AsyncEngine) -> AsyncEngine:
    """``engine``'s pool, with every transaction read-only.

    SQLite: a deferred read (see :meth:`TradestoreSQLiteConnection.begin`); PostgreSQL:
    ``SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`` first thing in the transaction
    begun at checkout (one round trip, where asking for ``BEGIN READ ONLY`` would cost a
    ``ROLLBACK`` and a ``BEGIN``). Either way every read of the session sees one snapshot. A
    write in such a transaction raises :class:`ReadOnlyError`.
    """
    return engine.execution_options(**{READONLY: True})


def _reset(dbapi_connection: Any, record: ConnectionPoolEntry, state: PoolResetState) -> None:
    """A pool ``reset`` hook: roll back a connection handed back inside a transaction.

    The same guarantee as the pool's default reset (no transaction outlives its session, no
    lock is kept), without the round trip when the session already committed or rolled back.
    A failure here makes the pool discard the connection.
    """
    if not state.asyncio_safe:
        return  # garbage collection outside the event loop: the pool terminates it instead
    if interrupted_begin(dbapi_connection):
        dbapi_connection.run_async(lambda _: end_interrupted_begin(dbapi_connection))
    elif _may_be_in_transaction(dbapi_connection.driver_connection):
        dbapi_connection.rollback()


def _may_be_in_transaction(driver: Any) -> bool:
    if isinstance(driver, asyncpg.Connection):
        return not driver.is_closed() and bool(driver.is_in_transaction())
    # aiosqlite: sqlite3's own flags, read without a trip to its thread; a BEGIN still queued
    # there (its caller cancelled) counts, and the rollback is queued after it.
    connection = driver._conn
    return bool(connection.in_transaction or not getattr(connection, "ended", False))


def _begin_sqlite(conn: Connection) -> None:
    """The ``begin`` hook: take this writer's turn and begin, in one hop to aiosqlite's thread.

    SQLAlchemy's cursor takes a hop to open a cursor, one to execute and one to close it; this
    hook runs at the start of every transaction, so the difference is paid on every unit of work.
    Waiting for the writer queue happens in that thread too, leaving the event loop free.
    """
    readonly = bool(conn.get_execution_options().get(READONLY, False))
    if conn.engine.echo:
        conn.engine.logger.info("BEGIN DEFERRED (read-only)" if readonly else "BEGIN IMMEDIATE")
    adapter: Any = conn.connection.dbapi_connection
    driver = adapter.driver_connection
    connection = driver._conn
    idle = connection.ended and driver._tx.empty()  # nothing of an earlier unit still runs in its thread
    connection.write_locked = False
    connection.ended = False
    try:
        if not (idle and connection.begin_here(readonly)):
            adapter.run_async(lambda driver: driver._execute(connection.begin, readonly))
    except Exception as exc:
        typed = translate(exc, conn.engine.url, busy_ms=SQLITE_BUSY_TIMEOUT_MS)
        if typed is None:
            raise
        raise typed from exc
    connection.write_locked = not readonly


def _commit_here(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    """A ``connect`` hook: commit a transaction that ran wholly on the event loop's thread there too.

    A unit of work that began on the event loop's thread (see
    :meth:`TradestoreSQLiteConnection.begin_here`) and ran only single-row statements there
    (see ``SQLiteBackend.run_single``) has nothing in aiosqlite's thread: its commit, a few
    pages appended to the write-ahead log, is made in place instead of waking that thread.
    Anything sent to that thread during the transaction sends the commit there as well.
    """
    driver = dbapi_connection.driver_connection
    send = driver._execute

    async def execute(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if driver._connection is not None:
            driver._connection.here = False
        return await send(fn, *args, **kwargs)

    async def commit() -> None:
        connection = driver._conn
        if connection.here:
            connection.commit()
        else:
            await send(connection.commit)

    driver._execute = execute
    driver.commit = commit


#: Where a pooled PostgreSQL connection notes the settings of the transaction begun at checkout.
BEGUN_AS = "tradestore.begun_as"


def _begin_on_checkout(timeout: float | None) -> Callable[[Any, ConnectionPoolEntry, Any], None]:
    """A ``checkout`` hook: begin the transaction, which also proves the connection answers.

    A pooled connection may have died while it waited (server restart, network cut); the pool's
    own pre-ping finds out with three round trips on asyncpg (``BEGIN``, a query, ``ROLLBACK``).
    The ``BEGIN`` the unit of work needs anyway answers the same question in one: if it fails
    (or takes more than ``timeout`` seconds: a server that stopped answering but kept the
    connection open), the pool discards the connection and checks out another (a new one when
    the server is back). Connections set to autocommit or read-only afterwards are rolled back
    and begun again (see :func:`_begin_postgres`), so every transaction still has the settings
    asked for.
    """

    def begin(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if driver.is_closed() or interrupted_begin(dbapi_connection):
            raise DisconnectionError("the connection was closed, or left unusable, while it was in the pool")
        record.info.pop(FAILED, None)
        record.info.pop(READ_ONLY_BEGUN, None)
        if dbapi_connection._transaction is not None or dbapi_connection.autocommit:
            return
        start = dbapi_connection._start_transaction
        try:
            dbapi_connection.run_async(lambda _: start() if timeout is None else asyncio.wait_for(start(), timeout))
        except Exception as exc:
            raise DisconnectionError(f"the connection did not answer: {type(exc).__name__}") from exc
        record.info[BEGUN_AS] = settings_of(dbapi_connection)

    return begin


def _refuse_an_aborted_commit(conn: Connection) -> None:
    """A ``commit`` hook: raise instead of committing a transaction PostgreSQL has aborted.

    The server would answer the ``COMMIT`` with ``ROLLBACK`` and no error: a caller that caught
    an error inside the session would see it end normally with nothing written. A read-only
    transaction has nothing to lose and just ends.
    """
    info = _pooled_info(conn)
    if info is not None and aborted(info, readonly=conn.get_execution_options().get(READONLY, False)):
        raise TransactionAbortedError(f"{mask(conn.engine.url)}: {ABORTED_ADVICE}")


def aborted(info: dict[Any, Any], *, readonly: bool) -> bool:
    """Whether PostgreSQL aborted the write transaction of the pooled connection with ``info``; forgets the failure.

    A read-only transaction (of a read-only session, or on a replica) has no writes to lose: it just ends.
    """
    return bool(info.pop(FAILED, False)) and not readonly and not info.get(_READ_ONLY_SERVER)


#: Set in the ``info`` of a connection whose every transaction is read-only (a replica's).
_READ_ONLY_SERVER = "tradestore.read_only_server"


def _read_only_server(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    """A ``connect`` hook of engines whose connections are read-only from the start (replicas)."""
    record.info[_READ_ONLY_SERVER] = True


def _forget_the_failure(conn: Connection, *args: Any) -> None:
    """A ``rollback`` / ``rollback_savepoint`` hook: the failed statement is undone."""
    info = _pooled_info(conn)
    if info is not None:
        info.pop(FAILED, None)


def _pooled_info(conn: Connection) -> dict[Any, Any] | None:
    """The ``info`` of ``conn``'s pooled connection; ``None`` once it is invalidated or closed (it goes)."""
    if conn.invalidated or conn.closed:
        return None
    return conn.info


def _begin_postgres(conn: Connection) -> None:
    """A ``begin`` hook: a transaction begun at checkout with other settings is begun again.

    One whose last ``BEGIN`` was interrupted (a caught cancellation) is rolled back first, or
    SQLAlchemy's ``BEGIN`` would be a ``SAVEPOINT`` inside it and its commit would end nothing.
    """
    adapter: Any = conn.connection.dbapi_connection
    if interrupted_begin(adapter):
        adapter.run_async(lambda _: end_interrupted_begin(adapter))
    elif adapter._transaction is not None and conn.connection.info.get(BEGUN_AS) != settings_of(adapter):
        adapter.rollback()  # SQLAlchemy's adapter then begins with the settings now asked for


#: A read-only session is one snapshot on PostgreSQL too, as a SQLite read transaction is: every
#: statement of it sees the same commits (a read-only transaction never fails to serialize).
READ_ONLY_SQL = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
#: In a pooled connection's ``info``: the asyncpg transaction a lease began read-only already.
READ_ONLY_BEGUN = "tradestore.read_only_begun"


def _begin_postgres_read_only(conn: Connection) -> None:
    """A ``begin`` hook after :func:`_begin_postgres`: make a session of :func:`readonly_engine` read-only."""
    adapter: Any = conn.connection.dbapi_connection
    begun = conn.connection.info.pop(READ_ONLY_BEGUN, None)
    if (begun is not None and begun is adapter._transaction) or not conn.get_execution_options().get(READONLY, False):
        return
    if adapter._transaction is None:  # not begun at checkout: SQLAlchemy's adapter begins it first
        conn.exec_driver_sql(READ_ONLY_SQL)
        return
    try:
        adapter.run_async(lambda driver: driver.execute(READ_ONLY_SQL))
    except Exception as exc:
        typed = translate(exc, conn.engine.url)
        if typed is None:
            raise
        raise typed from exc


def settings_of(adapter: Any) -> tuple[Any, ...]:
    return (adapter.isolation_level, adapter.readonly, adapter.deferrable)


def _numeric_as_text(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    """Read NUMERIC as PostgreSQL writes it, so ``Decimal('50000')`` comes back as ``50000``.

    asyncpg's binary decoder returns multiples of 10,000 in exponent form (``5E+4``): equal,
    but printed differently from what was stored (asyncpg issue #1113). Decoding PostgreSQL's
    own text form is exact and, measured here, no slower.
    """
    dbapi_connection.run_async(
        lambda conn: conn.set_type_codec("numeric", schema="pg_catalog", encoder=str, decoder=Decimal, format="text")
    )


def _keep_the_memory_database(context: ExceptionContext) -> None:
    """A ``handle_error`` hook for ``:memory:``: a cancellation never discards its one connection.

    SQLAlchemy invalidates a connection whose statement was interrupted (a cancelled task),
    as its state is unknown; for an in-memory database that closes the database itself, and
    the next session finds an empty one. aiosqlite runs every call to the end in its own
    thread, in order, so the rollback that follows finds the connection in a known state.
    """
    if not isinstance(context.original_exception, Exception):
        context.is_disconnect = False


def _connect_or_lost(url: URL) -> Any:
    """A ``do_connect`` hook: a server that cannot be reached raises :class:`ConnectionLostError`.

    asyncpg raises plain ``OSError`` (refused, reset, unreachable, timed out) when it cannot
    open a connection; SQLAlchemy lets those through untranslated.
    """

    def connect(dialect: Dialect, record: ConnectionPoolEntry, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except OSError as exc:
            raise ConnectionLostError(
                f"{mask(url)}: cannot connect: {describe(exc, url)}; retry when the server is back", exc
            ) from exc

    return connect


def _translate_error(context: ExceptionContext) -> BaseException | None:
    """A ``handle_error`` hook: a lock not granted or a broken connection becomes a typed error.

    The driver's exception stays chained as ``__cause__``; SQLAlchemy still invalidates a
    broken connection (and the pool's older ones) before the new error is raised.
    """
    error = context.original_exception
    if context.is_pre_ping or not isinstance(error, Exception):
        return None  # pre-ping reconnects by itself; cancellation stays cancellation
    url = context.engine.url if context.engine is not None else None
    typed = translate(error, url, disconnect=context.is_disconnect, busy_ms=SQLITE_BUSY_TIMEOUT_MS)
    if isinstance(typed, ConnectionLostError):
        context.is_disconnect = True
    elif context.connection is not None:
        note_failure(context.dialect.name, _pooled_info(context.connection), typed)
    return typed


__all__ = [
    "READONLY",
    "SQLITE_BUSY_TIMEOUT_MS",
    "TradestoreSQLiteConnection",
    "build_engine",
    "check_pool",
    "prepare_sqlite_file",
    "readonly_engine",
    "translate",
]
