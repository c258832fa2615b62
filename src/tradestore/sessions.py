"""The session of one unit of work: an ``AsyncSession`` whose transaction lives on one connection it holds.

``DatabaseManager.get_session()`` yields a :class:`UnitSession`. It is an ``AsyncSession`` in
every way a caller can see (``execute``, the ORM, ``commit``, ``rollback``, ``begin_nested``), with
one difference in how it gets there: the unit's connection and its transaction are opened by the
session itself, once, on first use, and every user of the session shares them:

* the repositories' single-row path (:mod:`tradestore.dialects.single_row`) runs on the pool's
  connection itself, its transaction begun by :func:`tradestore.engine.begin_unit`, without a
  SQLAlchemy ``Connection`` or the ORM session's transaction bookkeeping;
* when the ORM, ``session.connection()`` or a bulk path is used, a SQLAlchemy ``Connection`` is
  made on the same pool connection and takes that transaction over (the begin hooks send nothing
  then), and the ORM's ``SessionTransaction`` joins it (``join_transaction_mode="control_fully"``),
  so ORM calls and repository calls mix in one transaction, in any order, as before;
* ``commit()``, ``rollback()`` and ``close()`` end the ORM's part if it was used, then the
  unit's transaction; get_session's ending of the unit (commit or rollback, then the return to
  the pool) is one trip through SQLAlchemy's greenlet bridge, in a task the caller's
  cancellation cannot cut short (see ``DatabaseManager.get_session``). SQLite's commit runs in
  aiosqlite's thread, never on the event loop's (a WAL checkpoint may block).

Why: SQLAlchemy's session frame (begin, connection, commit, close) cost about 140 µs of CPU per
unit of work here against 26 µs for ``BEGIN IMMEDIATE`` and ``COMMIT`` on raw aiosqlite; on SQLite
that frame, not the statements, set the hot path's ratio to the raw driver. This one costs about
90 µs (README, "The hot path").
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util.concurrency import greenlet_spawn, in_greenlet

from tradestore.engine import begin_unit, end_unit


class UnitSyncSession(Session):
    """The synchronous ``Session`` of a :class:`UnitSession`: all its work on one held pool connection.

    The pool connection is checked out and its transaction begun on first use, and handed back
    by ``close()``. Repositories alone use it as it is (:meth:`open_fast`); once the ORM or
    ``connection()`` needs a SQLAlchemy ``Connection``, one is made on the same pool connection,
    taking over the transaction already begun (:meth:`unit_connection`). Methods that do I/O run
    in SQLAlchemy's greenlet, as every ``Session`` method does under ``AsyncSession``.
    """

    def __init__(self, bind: Engine, **kwargs: Any) -> None:
        super().__init__(bind=bind, join_transaction_mode="control_fully", **kwargs)
        self._engine = bind
        #: The pool connection while the unit holds it.
        self.fairy: PoolProxiedConnection | None = None
        #: The SQLAlchemy connection on it, once the ORM or ``connection()`` asked for one.
        self.unit: Connection | None = None
        #: Whether a transaction begun by :meth:`open_fast` is open (none of SQLAlchemy's objects know it).
        self.begun = False
        #: An engine with execution options (isolation, read-only…) has its transactions begun by
        #: a ``Connection``, whose begin hooks honour them; a plain one may take the pool's connection.
        self._plain = not bind.get_execution_options()

    def open_fast(self) -> PoolProxiedConnection:
        """The pool connection in a transaction, checked out and begun if needed."""
        if self.unit is not None or not self._plain:
            self.unit_connection()
        else:
            if self.fairy is None:
                self.fairy = self._engine.raw_connection()
            if not self.begun:
                begin_unit(self.fairy, self._engine)
                self.begun = True
        assert self.fairy is not None
        return self.fairy

    def unit_connection(self) -> Connection:
        """A SQLAlchemy ``Connection`` on the unit's pool connection, in its transaction."""
        conn = self.unit
        if conn is None:
            if self.fairy is None:
                self.fairy = self._engine.raw_connection()
            conn = self.unit = Connection(self._engine, self.fairy)
            self.bind = conn  # the ORM's statements find it (get_bind), and join its transaction
        if not conn.in_transaction():
            conn.begin()  # takes over a transaction open_fast began (the begin hooks send nothing then)
            self.begun = False
        return conn

    def get_bind(self, *args: Any, **kwargs: Any) -> Any:
        """The unit's connection when the ORM asks, to run something (always in a greenlet).

        Asked outside one (``AsyncSession.get_bind()``, to learn the dialect), it opens nothing:
        the engine, or the unit's connection once open.
        """
        bind = super().get_bind(*args, **kwargs)
        if (bind is self._engine or bind is self.unit) and in_greenlet():
            return self.unit_connection()
        return bind

    def _connection_for_bind(self, engine: Any, execution_options: Any = None, **kw: Any) -> Connection:
        # Where the ORM's statements take their connection: the unit's, never one of their own.
        if engine is self._engine or engine is self.unit:
            engine = self.unit_connection()
        return super()._connection_for_bind(engine, execution_options, **kw)

    def in_transaction(self) -> bool:
        return super().in_transaction() or self.begun or (self.unit is not None and self.unit.in_transaction())

    def commit(self) -> None:
        """Flush and commit the ORM's part (if used), then the unit's transaction."""
        if self._transaction is not None:
            super().commit()  # control_fully: commits the connection's transaction too
        self._end_transaction(commit=True)

    def rollback(self) -> None:
        """Roll back the ORM's part (if used), then the unit's transaction."""
        if self._transaction is not None:
            super().rollback()
        self._end_transaction(commit=False)

    def _end_transaction(self, *, commit: bool) -> None:
        conn = self.unit
        if conn is not None:
            if conn.in_transaction():
                conn.commit() if commit else conn.rollback()
        elif self.begun:
            self.begun = False
            assert self.fairy is not None
            end_unit(self.fairy, self._engine, commit=commit)

    def close(self) -> None:
        """Close the ORM's part, roll back what is not committed, hand the connection back to the pool."""
        try:
            if self._transaction is not None or self._new or self._deleted or len(self.identity_map):
                super().close()  # else nothing of the ORM's to close, and its emptying costs microseconds
        finally:
            self._release()

    def invalidate(self) -> None:
        try:
            super().invalidate()
        finally:
            if self.unit is not None:
                self.unit.invalidate()
            elif self.fairy is not None:
                self.fairy.invalidate()
            self._release()

    def _release(self) -> None:
        conn, fairy = self.unit, self.fairy
        self.unit, self.fairy, self.begun, self.bind = None, None, False, self._engine
        if conn is not None:
            conn.close()  # rolls back a transaction still open, and checks the pool connection in
        elif fairy is not None:
            fairy.close()  # the pool's reset hook rolls back a transaction still open

    def end(self, *, commit: bool) -> None:
        """Commit (or roll back) and close: a unit of work's end, in one trip through the greenlet bridge.

        Raises:
            Whatever the commit raised, after rolling back and closing.
        """
        try:
            if commit:
                try:
                    self.commit()
                except BaseException:
                    self.rollback()
                    raise
            else:
                self.rollback()
        finally:
            self.close()


class UnitSession(AsyncSession):
    """The ``AsyncSession`` of ``DatabaseManager.get_session()`` (see the module's docstring)."""

    sync_session_class = UnitSyncSession
    sync_session: UnitSyncSession

    async def pool_connection(self) -> PoolProxiedConnection:
        """The unit's pool connection in its transaction; no trip through the greenlet bridge once open."""
        sync = self.sync_session
        if sync.begun or (sync.unit is not None and sync.unit.in_transaction()):
            assert sync.fairy is not None
            return sync.fairy
        return await greenlet_spawn(sync.open_fast)

    async def connection(self, *args: Any, **kwargs: Any) -> AsyncConnection:
        """The unit's connection, its transaction begun (``AsyncSession.connection`` with no arguments)."""
        if args or kwargs:
            return await super().connection(*args, **kwargs)
        sync = self.sync_session
        conn = sync.unit
        if conn is None or not conn.in_transaction():
            conn = await greenlet_spawn(sync.unit_connection)
        return AsyncConnection._retrieve_proxy_for_target(conn)

    async def end(self, *, commit: bool) -> None:
        """See :meth:`UnitSyncSession.end`."""
        await greenlet_spawn(self.sync_session.end, commit=commit)
