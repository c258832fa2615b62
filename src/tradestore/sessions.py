"""The session of one unit of work: an ``AsyncSession`` whose transaction lives on one connection it holds.

``DatabaseManager.get_session()`` yields a :class:`UnitSession`. It is an ``AsyncSession`` in
every way a caller can see (``execute``, the ORM, ``commit``, ``rollback``, ``begin_nested``), with
one difference in how it gets there: the unit's connection and its transaction are opened by the
session itself, once, on first use, and every user of the session shares them:

* the repositories' single-row path (:mod:`tradestore.dialects.single_row`) and bulk paths run on
  that connection directly, without the ORM session's transaction bookkeeping;
* the ORM joins the same transaction when it is used (its ``SessionTransaction`` takes the
  connection's transaction as its own, ``join_transaction_mode="control_fully"``), so ORM calls
  and repository calls mix in one transaction, as before;
* ``commit()``, ``rollback()`` and ``close()`` end the ORM's part if it was used, then the
  connection's transaction, and get_session's ending of the unit (commit or rollback, then
  close) is one trip through SQLAlchemy's greenlet bridge instead of three.

Why: SQLAlchemy's session frame (begin, connection, commit, close) cost about 140 µs of CPU per
unit of work against about 50 µs for the same transaction on a bare connection; on SQLite that
frame, not the statements, set the hot path's ratio to the raw driver.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.util.concurrency import greenlet_spawn, in_greenlet


class UnitSyncSession(Session):
    """The synchronous ``Session`` of a :class:`UnitSession`: all its work on one held connection.

    The connection is checked out and its transaction begun on first use (by the ORM, by
    ``connection()``, or by a repository), and handed back to the pool by ``close()``.
    """

    def __init__(self, bind: Engine, **kwargs: Any) -> None:
        super().__init__(bind=bind, join_transaction_mode="control_fully", **kwargs)
        self._engine = bind
        #: The unit's connection while it is checked out.
        self.unit: Connection | None = None

    def unit_connection(self) -> Connection:
        """The unit's connection in a transaction: checked out and begun if needed (I/O: call in a greenlet).

        On SQLite the ``BEGIN IMMEDIATE`` of the engine's begin hook takes the write lock here; on
        PostgreSQL the checkout's ``BEGIN`` is the transaction.
        """
        conn = self.unit
        if conn is None:
            conn = self.unit = self._engine.connect()
            self.bind = conn  # the ORM's statements find it (get_bind), and join its transaction
        if not conn.in_transaction():
            conn.begin()
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
        return super().in_transaction() or (self.unit is not None and self.unit.in_transaction())

    def commit(self) -> None:
        """Flush and commit the ORM's part (if used), then the connection's transaction."""
        if self._transaction is not None:
            super().commit()  # control_fully: commits the connection's transaction too
        conn = self.unit
        if conn is not None and conn.in_transaction():
            conn.commit()

    def rollback(self) -> None:
        """Roll back the ORM's part (if used), then the connection's transaction."""
        if self._transaction is not None:
            super().rollback()
        conn = self.unit
        if conn is not None and conn.in_transaction():
            conn.rollback()

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
            conn = self.unit
            if conn is not None:
                conn.invalidate()
            self._release()

    def _release(self) -> None:
        conn, self.unit, self.bind = self.unit, None, self._engine
        if conn is not None:
            conn.close()  # rolls back a transaction still open; the pool's reset hook does the rest

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

    async def unit_connection(self) -> Connection:
        """The unit's (synchronous) connection in a transaction; no greenlet trip once it is open."""
        conn = self.sync_session.unit
        if conn is not None and conn.in_transaction():
            return conn
        return await greenlet_spawn(self.sync_session.unit_connection)

    async def connection(self, *args: Any, **kwargs: Any) -> AsyncConnection:
        """The unit's connection, its transaction begun (``AsyncSession.connection`` with no arguments)."""
        if args or kwargs:
            return await super().connection(*args, **kwargs)
        return AsyncConnection._retrieve_proxy_for_target(await self.unit_connection())

    async def end(self, *, commit: bool) -> None:
        """See :meth:`UnitSyncSession.end`."""
        await greenlet_spawn(self.sync_session.end, commit=commit)
