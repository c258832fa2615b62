"""A PostgreSQL unit of work on a pooled connection leased directly, until it needs SQLAlchemy.

A bot's unit of work is usually one or two single-row calls in a session. On PostgreSQL the
layers around them cost more than the round trips (``python -m benchmarks.frame``): the
pool's checkout and check-in through SQLAlchemy's greenlet bridge, a ``Connection`` and its
transaction objects, and the session's own transaction. A :class:`Lease` skips them: the
first single-row call of a session takes a connection from the same pool without waking
SQLAlchemy, begins the transaction on the driver (one ``BEGIN``, with the session's read-only
settings), and :meth:`Lease.commit` ends it the same way; the connection goes back to the pool.

Nothing else changes for the session: the moment SQLAlchemy connects (``session.execute``,
``session.connection()``, ``begin_nested()``, a flush, an explicit ``session.commit()``),
:class:`LeasingSession` hands it that same connection, already in its transaction, and
SQLAlchemy runs the unit for as long as its transaction on it lasts; after an explicit commit
or rollback the lease runs the next one, until SQLAlchemy connects again. So every statement
of a session runs in one transaction on one connection, whichever way it went. A rollback or
close of the session rolls a transaction still held by the lease back.

A ``BEGIN`` interrupted by a cancellation the caller caught leaves asyncpg counting a
transaction nothing else knows of; it is rolled back before the connection is used again or
goes back to the pool (:func:`~tradestore.dialects.errors.end_interrupted_begin`).

When the pool has no idle, current connection at hand (all in use, one to recycle, a dead one
found by its ``BEGIN``), the lease takes SQLAlchemy's own checkout, which waits, reconnects
and retries as for any session.

This relies on a few SQLAlchemy pool internals (the pool's queue, a connection record's
start time, the asyncpg adapter's transaction); ``tests/test_leases.py`` and the cancellation
trials of ``tests/reliability/test_cancellation.py`` check the behaviour they give on
PostgreSQL, so an upgrade that changes them fails there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import ConnectionPoolEntry, Pool, PoolProxiedConnection
from sqlalchemy.pool.base import _ConnectionFairy
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.concurrency import await_
from sqlalchemy.util.queue import Empty

from tradestore.dialects.errors import ABORTED_ADVICE, FAILED, end_interrupted_begin, interrupted_begin, translate
from tradestore.engine import (
    BEGUN_AS,
    READ_ONLY_BEGUN,
    READ_ONLY_SQL,
    READONLY,
    aborted,
    settings_of,
)
from tradestore.errors import ConnectionLostError, TransactionAbortedError
from tradestore.urls import mask


def _no_callback(ref: Any) -> None:
    """A record's reference to its checked-out connection needs no callback (as SQLAlchemy's own)."""


class Lease:
    """One session's pooled PostgreSQL connection and transaction, begun without SQLAlchemy.

    Args:
        engine: the (sync) engine the session is bound to; its pool lends the connection, and
            its execution options say whether the transaction is read-only.
        timeout: seconds the ``BEGIN`` may take before the connection counts as dead (a
            replica's), ``None`` for no limit.
    """

    __slots__ = ("connection", "ended", "engine", "fairy", "lost", "readonly", "record", "timeout")

    def __init__(self, engine: Engine, *, timeout: float | None = None) -> None:
        self.engine = engine
        self.readonly = bool(engine.get_execution_options().get(READONLY, False))
        self.timeout = timeout
        #: The pool's entry of the leased connection, from the first single-row call to the end
        #: of the session (what the single-row path runs on: ``dbapi_connection``, ``info``).
        self.record: ConnectionPoolEntry | None = None
        #: SQLAlchemy's checked-out proxy of it, when SQLAlchemy's checkout lent it or took it over.
        self.fairy: PoolProxiedConnection | None = None
        #: SQLAlchemy's connection around it, once SQLAlchemy took the unit over.
        self.connection: Connection | None = None
        #: Why the connection was discarded in the middle of the session.
        self.lost: BaseException | None = None
        #: Set when the session's block is over: a session used after it is SQLAlchemy's alone.
        self.ended = False

    @property
    def held(self) -> bool:
        """Whether the lease runs the unit itself: it holds its live connection, SQLAlchemy no transaction on it.

        SQLAlchemy's ``Connection`` on it (see :meth:`adopt`) takes the unit over for as long as
        SQLAlchemy's transaction on it lasts; an explicit commit or rollback ends that, and the
        lease runs the next transaction until SQLAlchemy asks again. A ``Connection`` SQLAlchemy
        found broken (and replaced) is SQLAlchemy's alone from then on.
        """
        if self.record is None:
            return False
        connection = self.connection
        return connection is None or (
            not connection.in_transaction()
            and connection._dbapi_connection is self.fairy
            and self.fairy is not None
            and self.fairy.dbapi_connection is not None
        )

    @property
    def in_transaction(self) -> bool:
        """Whether the lease holds a transaction it must still commit or roll back."""
        record: Any = self.record
        return self.held and record.dbapi_connection._transaction is not None

    async def begin(self) -> ConnectionPoolEntry:
        """Check a connection out and begin its transaction (``BEGIN``, read-only if the session is).

        Raises:
            ConnectionLostError, StorageBusyError: as SQLAlchemy's checkout raises them (no
                connection could be made; none was free in time).
        """
        pool = self.engine.pool
        record = _checkout_idle(pool)
        if record is not None:
            self.record = record  # held from here: a cancelled BEGIN is ended when the session ends
            try:
                await self._begin(record)
            except Exception as exc:  # it died in the pool: discard it, as the checkout hook does
                self.record = None
                _discard(record, DisconnectionError(f"the connection did not answer: {type(exc).__name__}"))
                record = None
        if record is None:
            self.fairy = await self._checkout(pool)
            record = self.fairy._connection_record
        self.record = record
        return record

    async def _checkout(self, pool: Pool) -> PoolProxiedConnection:
        """SQLAlchemy's checkout: it waits, reconnects and retries; its hook begins the transaction."""
        fairy = await greenlet_spawn(pool.connect)
        if self.readonly:
            driver: Any = fairy.driver_connection
            try:
                await driver.execute(READ_ONLY_SQL)
            except BaseException as exc:
                fairy.invalidate(exc if isinstance(exc, Exception) else None)
                raise _typed_lost(self.engine, exc) from exc
            adapter: Any = fairy.dbapi_connection
            fairy.info[READ_ONLY_BEGUN] = adapter._transaction
        return fairy

    async def begin_again(self) -> None:
        """Begin a new transaction on the leased connection, after the session ended the last one.

        Raises:
            ConnectionLostError: the connection broke (it is discarded).
        """
        assert self.record is not None
        try:
            await self._begin(self.record)
        except Exception as exc:
            self.discard(exc)
            raise _typed_lost(self.engine, exc) from exc

    async def _begin(self, record: ConnectionPoolEntry) -> None:
        """``BEGIN`` on ``record``; cancelled, it leaves an interrupted ``BEGIN`` the next one (or the release) ends."""
        adapter: Any = record.dbapi_connection
        if interrupted_begin(adapter):  # a caller caught the cancellation of the last one
            await end_interrupted_begin(adapter)
        info = record.info
        info.pop(FAILED, None)
        info.pop(READ_ONLY_BEGUN, None)
        if self.readonly:
            transaction = adapter._connection.transaction(isolation="repeatable_read", readonly=True)
            start: Any = transaction.start()
        else:
            transaction, start = None, adapter._start_transaction()
        _log(self.engine, "BEGIN (leased)")
        await (start if self.timeout is None else asyncio.wait_for(start, self.timeout))
        if transaction is not None:
            adapter._transaction = transaction
            info[READ_ONLY_BEGUN] = transaction
        info[BEGUN_AS] = settings_of(adapter)

    def adopt(self) -> Connection:
        """SQLAlchemy's ``Connection`` on the leased connection (made once), its transaction still open."""
        if self.connection is None:
            record = self.record
            assert record is not None
            if self.fairy is None:  # as SQLAlchemy's checkout makes it, without the checkout hooks
                pool = self.engine.pool
                fairy = _ConnectionFairy(pool, record.dbapi_connection, record, pool._should_log_debug())  # type: ignore[arg-type]
                fairy._counter = 1
                record.fairy_ref = weakref.ref(fairy, _no_callback)  # type: ignore[attr-defined]
                self.fairy = fairy
            self.connection = Connection(self.engine, connection=self.fairy)
        return self.connection

    async def commit(self) -> None:
        """Commit the lease's transaction.

        Raises:
            TransactionAbortedError: a statement of a write transaction failed, so PostgreSQL
                aborted it (the caller rolls back).
            ConnectionLostError, StorageBusyError, sqlalchemy.exc.DBAPIError: as a commit
                through SQLAlchemy raises them.
        """
        if not self.in_transaction:
            return
        record: Any = self.record
        if aborted(record.info, readonly=self.readonly):
            raise TransactionAbortedError(f"{mask(self.engine.url)}: {ABORTED_ADVICE}")
        transaction = self._end("COMMIT")
        try:
            await transaction.commit()
        except Exception as exc:
            raise self._typed(exc, "COMMIT") from exc

    async def rollback(self) -> None:
        """Roll the lease's transaction back; a connection that cannot is discarded."""
        if not self.in_transaction:
            return
        self.record.info.pop(FAILED, None)  # type: ignore[union-attr]
        transaction = self._end("ROLLBACK")
        try:
            await transaction.rollback()
        except BaseException as exc:
            self.discard(exc)
            if not isinstance(exc, Exception):
                raise

    def _end(self, how: str) -> Any:
        """Take the lease's asyncpg transaction off the connection, to be ended ``how`` by the caller."""
        record: Any = self.record
        record.info.pop(READ_ONLY_BEGUN, None)
        adapter = record.dbapi_connection
        transaction, adapter._transaction = adapter._transaction, None
        _log(self.engine, how)
        return transaction

    def discard(self, error: BaseException) -> None:
        """The connection broke: close it and give it back to be made anew (with the pool's older ones)."""
        record = self.record
        if record is None or not self.held:
            return  # SQLAlchemy's connection discards its own
        self.record, self.lost = None, error
        pool = self.engine.pool
        if pool._invalidate_time < record.starttime:  # type: ignore[attr-defined]
            pool._invalidate_time = time.time()
        fairy, self.fairy = self.fairy, None
        reason = error if isinstance(error, Exception) else None
        if self.connection is not None:
            self.connection.invalidate(reason)  # SQLAlchemy's connection knows, and closes nothing twice
        elif fairy is not None:
            fairy.invalidate(reason)
        else:
            _discard(record, error)

    async def release(self) -> None:
        """Give the connection back to the pool (after the session ended); rolls back what is still open."""
        self.ended = True
        if self.held:
            await self.rollback()  # nothing left open when it goes back (or the connection is discarded)
            record = self.record
            if record is not None and interrupted_begin(record.dbapi_connection):
                await end_interrupted_begin(record.dbapi_connection)
        connection, fairy, record = self.connection, self.fairy, self.record
        self.connection = self.fairy = self.record = None
        if connection is not None:
            await greenlet_spawn(connection.close)  # SQLAlchemy's own: rolls back, resets, checks in
        elif record is not None:
            checkin: Any = (
                fairy.close if fairy is not None else functools.partial(record.checkin, _fairy_was_created=False)  # type: ignore[attr-defined]
            )
            queue = getattr(self.engine.pool, "_pool", None)
            if queue is not None and not queue.full():
                checkin()
            else:  # the pool is full: it closes this (overflow) connection, which needs SQLAlchemy's bridge
                await greenlet_spawn(checkin)

    def _typed(self, error: Exception, sql: str) -> Exception:
        from tradestore.dialects.single_row import adapted

        typed = translate(error, self.engine.url)
        if isinstance(typed, ConnectionLostError):
            self.discard(error)
        if typed is not None:
            return typed
        return adapted(error, self.record, self.engine.dialect, sql, [])


def _log(engine: Engine, what: str) -> None:
    """Log a transaction's start or end as SQLAlchemy logs its own (``echo=True``)."""
    if engine.logger.isEnabledFor(logging.INFO):
        engine.logger.info(what)


def _discard(record: ConnectionPoolEntry, error: BaseException | None) -> None:
    """Close a connection checked out without a proxy, and give its entry back to the pool."""
    try:
        record.invalidate(error if isinstance(error, Exception) else None)
    finally:
        record.checkin(_fairy_was_created=False)  # type: ignore[attr-defined]


def _typed_lost(engine: Engine, error: BaseException) -> BaseException:
    if not isinstance(error, Exception):
        return error
    typed = translate(error, engine.url, disconnect=True)
    return typed if typed is not None else error


def _checkout_idle(pool: Pool) -> ConnectionPoolEntry | None:
    """An idle pooled connection that needs no reconnection, taken from the pool with no I/O; else ``None``."""
    queue = getattr(pool, "_pool", None)
    if queue is None:
        return None
    try:
        record: Any = queue.get_nowait()
    except Empty:
        return None
    adapter: Any = record.dbapi_connection
    recycle = pool._recycle
    if (
        adapter is None
        or pool._invalidate_time > record.starttime
        or record._soft_invalidate_time > record.starttime
        or (recycle > -1 and time.time() - record.starttime > recycle)
        or adapter._transaction is not None
        or adapter.autocommit
        or adapter._connection.is_closed()
        or adapter._connection.is_in_transaction()
        or adapter._connection._top_xact is not None
    ):
        record.checkin(_fairy_was_created=False)  # SQLAlchemy's checkout reconnects or begins it
        return None
    record.fresh = False
    return record  # type: ignore[no-any-return]


class LeasingSession(Session):
    """The sessions of ``DatabaseManager.get_session``: SQLAlchemy takes a :class:`Lease` over when it needs it.

    A lease's transaction is the session's: the session's ``commit()`` commits it (SQLAlchemy
    takes it over first), its ``rollback()``, ``close()``, ``reset()`` and ``invalidate()`` roll
    it back, whether or not the session began a transaction of its own.
    """

    lease: Lease | None = None

    def _connection_for_bind(self, engine: Any, execution_options: Any = None, **kwargs: Any) -> Connection:
        # Where SQLAlchemy connects for session.execute(), session.connection() and (through
        # before_flush below) a flush: on the leased connection, in its transaction.
        lease = self.lease
        if lease is not None and engine is lease.engine:
            if lease.record is not None:
                # SQLAlchemy's begin on it ends a BEGIN of the lease that was interrupted (see
                # engine._begin_postgres) before beginning its own.
                engine = lease.adopt()
            elif lease.lost is not None:
                raise _lost_earlier(lease)
        return super()._connection_for_bind(engine, execution_options, **kwargs)

    def begin(self, nested: bool = False) -> SessionTransaction:
        lease = self.lease
        if not nested and self._transaction is None and lease is not None and lease.in_transaction:
            raise InvalidRequestError("A transaction is already begun on this Session.")  # as after any statement
        return super().begin(nested)

    def rollback(self) -> None:
        _end_lease(self)
        super().rollback()

    def close(self) -> None:
        _end_lease(self)
        super().close()

    def reset(self) -> None:
        _end_lease(self)
        super().reset()

    def invalidate(self) -> None:
        _end_lease(self)
        super().invalidate()


def _end_lease(session: Session) -> None:
    """Roll back what the session's lease still holds; after a lost connection, the session may go on."""
    lease = getattr(session, "lease", None)
    if lease is not None:
        if lease.in_transaction:
            await_(lease.rollback())
        lease.lost = None


@event.listens_for(LeasingSession, "before_commit")
def _take_over_before_commit(session: Session) -> None:
    """``session.commit()`` commits the lease's transaction: SQLAlchemy takes it over first."""
    lease = getattr(session, "lease", None)
    if lease is not None:
        if lease.lost is not None:
            raise _lost_earlier(lease)
        if lease.in_transaction:
            session.connection()


@event.listens_for(LeasingSession, "before_flush")
def _take_over_before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    """A flush writes in the lease's transaction: SQLAlchemy takes it over first (a flush connects on its own way)."""
    lease = getattr(session, "lease", None)
    if lease is not None and lease.record is not None:
        session.connection()


@event.listens_for(LeasingSession, "after_transaction_end")
def _roll_back_with_the_session(session: Session, transaction: SessionTransaction) -> None:
    """A session transaction rolled back (``async with session.begin()`` that raised) rolls back the lease's."""
    if transaction.parent is None:
        _end_lease(session)


def _lost_earlier(lease: Lease) -> ConnectionLostError:
    return ConnectionLostError(
        f"{mask(lease.engine.url)}: the connection of this session was lost earlier in it, with what the "
        "session had written; roll the session back (or end it) and retry the unit of work"
    )


def lease_of(session: AsyncSession) -> Lease | None:
    """The lease of a session of :meth:`DatabaseManager.get_session` on PostgreSQL, else ``None``."""
    return getattr(session.sync_session, "lease", None)


async def leased_connection(session: AsyncSession) -> tuple[Lease, ConnectionPoolEntry] | None:
    """The lease and connection a single-row call of ``session`` runs on; ``None``: ask SQLAlchemy.

    The first call begins the lease; ``None`` once SQLAlchemy holds the connection (or began
    one before any single-row call), and inside a savepoint.

    Raises:
        ConnectionLostError: the lease's connection broke earlier in this session (until the
            session is rolled back), or breaks now.
        StorageBusyError: no pooled connection was free in time.
    """
    sync = session.sync_session
    lease: Lease | None = getattr(sync, "lease", None)
    if lease is None or lease.ended or sync.get_nested_transaction() is not None:
        return None
    record = lease.record
    if record is None:
        if lease.lost is not None:
            raise _lost_earlier(lease)
        transaction = sync.get_transaction()
        if lease.connection is not None or (transaction is not None and transaction._connections):
            return None  # SQLAlchemy connected first: the unit stays with it
        return lease, await lease.begin()
    if not lease.held:
        return None  # SQLAlchemy's transaction on it is open: the statement runs inside it
    if record.dbapi_connection._transaction is None:  # type: ignore[union-attr]  # the session ended the last one
        await lease.begin_again()
    return lease, record
