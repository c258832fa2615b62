"""A PostgreSQL unit of work on a pooled connection leased directly, until it needs SQLAlchemy.

A bot's unit of work is usually one or two single-row calls in a session. On PostgreSQL the
layers around them cost more than the round trips (``python -m benchmarks.frame``): the
pool's checkout and check-in through SQLAlchemy's greenlet bridge, a ``Connection`` and its
transaction objects, and the session's own transaction. A :class:`Lease` skips them: the
first single-row call of a session takes a connection from the same pool without waking
SQLAlchemy, begins the transaction on the driver (one ``BEGIN``, with the session's read-only
settings), and :meth:`Lease.commit` ends it the same way; the connection goes back to the pool.

Nothing else changes for the session: the moment anything of SQLAlchemy asks for its
connection (``session.execute``, a flush, ``session.connection()``, ``begin_nested()``, an
explicit ``session.commit()``), :class:`LeasingSession.get_bind` hands SQLAlchemy that same
connection, already in its transaction, and from then on SQLAlchemy runs the unit as usual.
So every statement of a session runs in one transaction on one connection, whichever way
it went. A rollback or close of the session rolls a transaction still held by the lease back.

When the pool has no idle, current connection at hand (all in use, one to recycle, a dead one
found by its ``BEGIN``), the lease takes SQLAlchemy's own checkout, which waits, reconnects
and retries as for any session.

This relies on a few SQLAlchemy pool internals (the pool's queue, a connection record's
start time, the asyncpg adapter's transaction); ``tests/test_leases.py`` checks the behaviour
they give on PostgreSQL, so an upgrade that changes them fails there.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import Pool, PoolProxiedConnection
from sqlalchemy.pool.base import _ConnectionFairy, _ConnectionRecord
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.concurrency import await_
from sqlalchemy.util.queue import Empty

from tradestore.dialects.errors import ABORTED_ADVICE, FAILED, translate
from tradestore.engine import BEGUN_AS, READ_ONLY_BEGUN, READ_ONLY_SQL, READONLY, aborted, settings_of
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

    __slots__ = ("connection", "engine", "fairy", "readonly", "timeout")

    def __init__(self, engine: Engine, *, timeout: float | None = None) -> None:
        self.engine = engine
        self.readonly = bool(engine.get_execution_options().get(READONLY, False))
        self.timeout = timeout
        #: The checked-out connection, from the first single-row call to the end of the session.
        self.fairy: PoolProxiedConnection | None = None
        #: SQLAlchemy's connection around it, once SQLAlchemy took the unit over.
        self.connection: Connection | None = None

    @property
    def held(self) -> bool:
        """Whether the lease runs the unit itself: its connection is live and SQLAlchemy has not taken over."""
        return self.connection is None and self.fairy is not None and self.fairy.dbapi_connection is not None

    @property
    def in_transaction(self) -> bool:
        """Whether the lease holds a transaction it must still commit or roll back."""
        return self.held and self._adapter()._transaction is not None

    def _adapter(self) -> Any:
        assert self.fairy is not None
        return self.fairy.dbapi_connection

    async def begin(self) -> PoolProxiedConnection:
        """Check a connection out and begin its transaction (``BEGIN``, read-only if the session is).

        Raises:
            ConnectionLostError, StorageBusyError: as SQLAlchemy's checkout raises them (no
                connection could be made; none was free in time).
        """
        pool = self.engine.pool
        fairy = _checkout_idle(pool)
        if fairy is not None:
            try:
                await self._begin(fairy)
            except Exception as exc:  # it died in the pool: discard it, as the checkout hook does
                fairy.invalidate(DisconnectionError(f"the connection did not answer: {type(exc).__name__}"))
                fairy = None
            except BaseException:  # cancelled during BEGIN: its state is unknown
                fairy.invalidate()
                raise
        self.fairy = fairy if fairy is not None else await self._checkout(pool)
        return self.fairy

    async def _checkout(self, pool: Pool) -> PoolProxiedConnection:
        """SQLAlchemy's checkout: it waits, reconnects and retries; its hook begins the transaction."""
        fairy = await greenlet_spawn(pool.connect)
        if self.readonly:
            driver: Any = fairy.driver_connection
            try:
                await driver.execute(READ_ONLY_SQL)
            except BaseException as exc:
                fairy.invalidate(exc if isinstance(exc, Exception) else None)
                raise _lost(self.engine, exc) from exc
            fairy.info[READ_ONLY_BEGUN] = True
        return fairy

    async def begin_again(self) -> None:
        """Begin a new transaction on the leased connection, after the session ended the last one.

        Raises:
            ConnectionLostError: the connection broke (it is discarded).
        """
        assert self.fairy is not None
        try:
            await self._begin(self.fairy)
        except BaseException as exc:
            self.lost(exc)
            raise _lost(self.engine, exc) from exc

    async def _begin(self, fairy: PoolProxiedConnection) -> None:
        adapter: Any = fairy.dbapi_connection
        driver = adapter._connection
        fairy.info.pop(FAILED, None)
        fairy.info.pop(READ_ONLY_BEGUN, None)
        if self.readonly:
            transaction = driver.transaction(isolation="repeatable_read", readonly=True)
            start: Any = transaction.start()
        else:
            transaction, start = None, adapter._start_transaction()
        await (start if self.timeout is None else asyncio.wait_for(start, self.timeout))
        if transaction is not None:
            adapter._transaction = transaction
            fairy.info[READ_ONLY_BEGUN] = True
        fairy.info[BEGUN_AS] = settings_of(adapter)

    def adopt(self) -> Connection:
        """SQLAlchemy's ``Connection`` on the leased connection, its transaction still open."""
        if self.connection is None:
            assert self.fairy is not None
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
        fairy: Any = self.fairy
        if aborted(fairy.info, readonly=self.readonly):
            raise TransactionAbortedError(f"{mask(self.engine.url)}: {ABORTED_ADVICE}")
        adapter = fairy.dbapi_connection
        transaction, adapter._transaction = adapter._transaction, None
        try:
            await transaction.commit()
        except Exception as exc:
            raise self._typed(exc, "COMMIT") from exc

    async def rollback(self) -> None:
        """Roll the lease's transaction back; a connection that cannot is discarded."""
        if not self.in_transaction:
            return
        fairy: Any = self.fairy
        fairy.info.pop(FAILED, None)
        adapter = fairy.dbapi_connection
        transaction, adapter._transaction = adapter._transaction, None
        try:
            await transaction.rollback()
        except BaseException as exc:
            fairy.invalidate(exc if isinstance(exc, Exception) else None)
            if not isinstance(exc, Exception):
                raise

    def lost(self, error: BaseException) -> None:
        """The connection broke under a statement: discard it, and the pool's older ones (as SQLAlchemy does)."""
        fairy = self.fairy
        if fairy is not None and fairy.dbapi_connection is not None and self.connection is None:
            self.engine.pool._invalidate(fairy, error if isinstance(error, Exception) else None)

    async def release(self) -> None:
        """Give the connection back to the pool (after the session ended); rolls back what is still open."""
        fairy, connection = self.fairy, self.connection
        self.fairy = self.connection = None
        if connection is not None:
            await greenlet_spawn(connection.close)
        elif fairy is not None and fairy.dbapi_connection is not None:
            driver: Any = fairy.driver_connection
            if fairy.dbapi_connection._transaction is not None or driver.is_in_transaction():
                await greenlet_spawn(fairy.close)  # the pool's reset rolls it back
            else:
                fairy.close()

    def _typed(self, error: Exception, sql: str) -> Exception:
        from tradestore.dialects.single_row import adapted

        typed = translate(error, self.engine.url)
        if isinstance(typed, ConnectionLostError):
            self.lost(error)
        if typed is not None:
            return typed
        return adapted(error, self.fairy, self.engine.dialect, sql, [])


def _lost(engine: Engine, error: BaseException) -> BaseException:
    if not isinstance(error, Exception):
        return error
    typed = translate(error, engine.url, disconnect=True)
    return typed if typed is not None else error


def _checkout_idle(pool: Pool) -> PoolProxiedConnection | None:
    """An idle pooled connection that needs no reconnection, checked out with no I/O; else ``None``."""
    queue = getattr(pool, "_pool", None)
    if queue is None:
        return None
    try:
        record: _ConnectionRecord = queue.get_nowait()
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
    ):
        record.checkin(_fairy_was_created=False)  # SQLAlchemy's checkout reconnects or begins it
        return None
    record.fresh = False
    fairy = _ConnectionFairy(pool, adapter, record, pool._should_log_debug())
    fairy._counter = 1
    record.fairy_ref = weakref.ref(fairy, _no_callback)
    return fairy


class LeasingSession(Session):
    """The sessions of ``DatabaseManager.get_session``: SQLAlchemy takes a :class:`Lease` over when it needs it."""

    lease: Lease | None = None

    def get_bind(self, *args: Any, **kwargs: Any) -> Any:
        lease = self.lease
        if lease is not None and lease.fairy is not None and lease.fairy.dbapi_connection is not None:
            return lease.adopt()
        return super().get_bind(*args, **kwargs)


@event.listens_for(LeasingSession, "before_commit")
def _take_over_before_commit(session: Session) -> None:
    """An explicit ``session.commit()`` commits the lease's transaction: SQLAlchemy takes it over first."""
    lease = getattr(session, "lease", None)
    if lease is not None and lease.in_transaction:
        session.connection()


@event.listens_for(LeasingSession, "after_transaction_end")
def _roll_back_with_the_session(session: Session, transaction: SessionTransaction) -> None:
    """``session.rollback()`` or ``close()`` rolls back a transaction the lease still holds."""
    lease = getattr(session, "lease", None)
    if transaction.parent is None and lease is not None and lease.in_transaction:
        await_(lease.rollback())


def lease_of(session: AsyncSession) -> Lease | None:
    """The lease of a session of :meth:`DatabaseManager.get_session` on PostgreSQL, else ``None``."""
    return getattr(session.sync_session, "lease", None)


async def leased_connection(session: AsyncSession) -> PoolProxiedConnection | None:
    """The connection a single-row call of ``session`` runs on through its lease; ``None``: ask SQLAlchemy.

    The first call begins the lease (and the session's own transaction, so that a rollback
    or close of the session reaches the lease); ``None`` once SQLAlchemy holds the connection
    (or began one before any single-row call), or inside a savepoint.

    Raises:
        ConnectionLostError: the lease's connection broke earlier in this session.
    """
    sync = session.sync_session
    lease: Lease | None = getattr(sync, "lease", None)
    if lease is None or lease.connection is not None or sync.get_nested_transaction() is not None:
        return None
    fairy = lease.fairy
    if fairy is None:
        transaction = sync.get_transaction()
        if transaction is not None and transaction._connections:
            return None  # SQLAlchemy connected first: the unit stays with it
        fairy = await lease.begin()
    elif fairy.dbapi_connection is None:
        raise ConnectionLostError(
            f"{mask(lease.engine.url)}: the connection of this session was lost earlier in it; "
            "nothing of it was written: end the session and retry the unit of work"
        )
    elif not lease.in_transaction:  # the session committed or rolled back: a new transaction, same settings
        await lease.begin_again()
    if sync.get_transaction() is None:
        sync._autobegin_t()  # so that the session's commit, rollback or close reaches the lease
    return fairy
