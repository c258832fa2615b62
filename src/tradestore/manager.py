"""``DatabaseManager``: owns the engine, hands out sessions, checks health."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy.engine import URL
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tradestore import schema
from tradestore.dialects import backend as backend_for
from tradestore.engine import SQLITE_BUSY_TIMEOUT_MS, check_pool, readonly_engine
from tradestore.errors import ConfigurationError, NotConnectedError, StorageBusyError, StorageError, ValidationError
from tradestore.health import Health, check, open_engine, unhealthy
from tradestore.leases import LeasingSession, lease_of, leased_connection
from tradestore.models import Base
from tradestore.replicas import Replicas, lsn_to_int
from tradestore.repositories.base import DEFAULT_EXCHANGE, SESSION_EXCHANGE
from tradestore.urls import backend_name, describe, is_memory, is_sqlite, mask, resolve
from tradestore.values import to_text

log = logging.getLogger("tradestore")
T = TypeVar("T")

#: The primary's current WAL position, to measure how far each replica is behind.
_WAL_POSITION_SQL = "SELECT pg_current_wal_lsn()::text"
#: Set while a task holds the in-memory database: the manager and that task. Tasks started
#: inside the session inherit it, which is how a nested session is told from a waiting one.
_holding_memory_db: ContextVar[tuple[DatabaseManager, asyncio.Task[Any] | None] | None] = ContextVar(
    "_holding_memory_db", default=None
)
#: What a session on PostgreSQL, or a read-only one on a SQLite file, waits for: nothing.
_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()
#: (task, SQLite file) of every write session open in this process, to refuse a nested one.
_writing: set[tuple[asyncio.Task[Any], str]] = set()


async def _shielded(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to the end even if the calling task is cancelled meanwhile, once or more.

    A cancellation that arrives meanwhile is raised when it has finished.
    """
    task = asyncio.ensure_future(awaitable)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait((task,))  # unlike awaiting the task, never cancels it
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        if not task.cancelled() and task.exception() is not None:
            log.debug("cleanup failed while the task was being cancelled", exc_info=task.exception())
        raise cancelled
    return task.result()


async def _end(session: AsyncSession, *, commit: bool) -> None:
    """Commit (or roll back) ``session``, then close it and give its connection back: one shielded task.

    A PostgreSQL unit that only made single-row calls ends on its lease, with no trip
    through SQLAlchemy; one with ORM changes to flush, or that SQLAlchemy took over, ends
    through the session (which takes the lease over first).
    """
    lease = lease_of(session)
    try:
        if lease is not None and lease.held and not _has_changes(session):
            try:
                await (lease.commit() if commit else lease.rollback())
            except BaseException:
                await lease.rollback()
                raise
        elif commit:
            try:
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
        else:
            await session.rollback()
    finally:
        try:
            if lease is None or not lease.held:
                await session.close()
            elif session.sync_session.in_transaction() or session.sync_session.identity_map:
                session.sync_session.close()  # nothing of SQLAlchemy's holds a connection: no trip through it
        finally:
            if lease is not None:
                await lease.release()


def _has_changes(session: AsyncSession) -> bool:
    """Whether ``session`` holds ORM objects a commit would flush."""
    sync = session.sync_session
    return bool(sync.new or sync.dirty or sync.deleted)


class DatabaseManager:
    """The entry point: one per database, shared by the whole bot.

    Example::

        async with DatabaseManager("sqlite+aiosqlite:///data/bot.db") as db:
            await db.create_all()
            async with db.get_session() as session:
                await OHLCVRepository(session).upsert_many(bars)

    Args:
        database_url: ``sqlite:///…``, ``sqlite+aiosqlite:///…``, ``postgresql://…``,
            ``postgres://…`` or ``postgresql+asyncpg://…``; ``None`` reads
            ``TRADESTORE_DATABASE_URL``, else uses ``sqlite+aiosqlite:///data/tradestore.db``.
        pool_size: connections kept open (file SQLite and PostgreSQL).
        max_overflow: extra connections allowed under load.
        echo: log every SQL statement (passwords are never logged).
        exchange: the exchange every repository built on this manager's sessions uses when a
            call names none (default ``"binance"``, as in the seed bots).
        auto_migrate: on ``connect()``, upgrade a database whose schema revision is older
            than this code's (or that is empty) instead of refusing it.
        replicas: URLs of PostgreSQL streaming standbys of this (PostgreSQL) database: read-only
            sessions go to them in turn, and to the primary when none answers (see ``get_session``).

    Raises:
        ConfigurationError: for a URL that cannot be parsed or has an unsupported scheme, a
            ``pool_size`` below 1, a ``max_overflow`` below 0, or an empty ``exchange``.
            Also for replicas that are not PostgreSQL standbys of a PostgreSQL primary.
    """

    def __init__(
        self,
        database_url: str | URL | None = None,
        *,
        pool_size: int = 5,
        max_overflow: int = 10,
        echo: bool = False,
        auto_migrate: bool = False,
        exchange: str = DEFAULT_EXCHANGE,
        replicas: Sequence[str | URL] = (),
    ) -> None:
        self.url: URL = resolve(database_url)
        self.backend: str = backend_name(self.url)
        if isinstance(replicas, str | URL):
            raise ConfigurationError("replicas: expected a list of URLs, got one URL")
        replica_urls = [resolve(url) for url in replicas]
        if replica_urls and (is_sqlite(self.url) or any(map(is_sqlite, replica_urls))):
            raise ConfigurationError(
                "replicas: PostgreSQL streaming standbys of a PostgreSQL primary only, got "
                + ", ".join(mask(url) for url in [self.url, *replica_urls])
            )
        self._replicas = Replicas(replica_urls)
        self.pool_size, self.max_overflow = check_pool(pool_size, max_overflow)
        self.echo = echo
        self.auto_migrate = auto_migrate
        try:
            self.exchange = to_text("exchange", exchange)
        except ValidationError as exc:
            raise ConfigurationError(str(exc)) from None
        self._engine: AsyncEngine | None = None
        self._readonly: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        # In-memory SQLite is one connection: sessions take turns on it (see get_session).
        self._memory_lock: asyncio.Lock | None = None
        # The event loop the pool's connections belong to (see _follow_loop).
        self._loop: asyncio.AbstractEventLoop | None = None
        # Lets one of several concurrent connect() calls build the engine (one per event loop).
        self._connecting: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    def __repr__(self) -> str:
        state = "connected" if self._engine is not None else "disconnected"
        return f"<DatabaseManager {mask(self.url)} {state}>"

    __str__ = __repr__

    @property
    def database(self) -> str:
        """The URL with its password masked: safe to print or log."""
        return mask(self.url)

    @property
    def replicas(self) -> list[str]:
        """The replicas' URLs, passwords masked."""
        return [mask(url) for url in self._replicas.urls]

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine.

        Raises:
            NotConnectedError: before ``connect()`` or after ``disconnect()``.
        """
        return self._require()[0]

    @property
    def is_connected(self) -> bool:
        """Whether ``connect()`` has been called and ``disconnect()`` not since."""
        return self._engine is not None

    async def connect(self) -> None:
        """Build the engine and check the database answers; calling it again does nothing.

        Concurrent calls build one engine: the others wait for it.

        The database's schema revision is compared with this code's (see :mod:`tradestore.schema`):
        an empty database or one at the head revision is accepted.

        Raises:
            ConnectionLostError: when the server cannot be reached (a ``StorageError``; the
                manager stays disconnected and ``connect()`` may be retried).
            StorageError: when the database refuses the connection for another reason.
            SchemaError: the database was migrated by a newer tradestore, or is at an older
                revision and ``auto_migrate`` is off (the message gives the upgrade command).
        """
        if self._engine is not None:
            return
        loop = asyncio.get_running_loop()
        if self._connecting is None or self._connecting[0] is not loop:
            self._connecting = (loop, asyncio.Lock())
        async with self._connecting[1]:
            if self._engine is None:
                await self._connect()

    async def _connect(self) -> None:
        engine = await open_engine(self.url, pool_size=self.pool_size, max_overflow=self.max_overflow, echo=self.echo)
        try:
            await schema.ensure_current(
                engine, self.database, has_password=bool(self.url.password), auto_migrate=self.auto_migrate
            )
        except BaseException:
            await _shielded(engine.dispose())
            raise
        self._engine = engine
        self._readonly = readonly_engine(engine)
        self._sessions = async_sessionmaker(engine, expire_on_commit=False, sync_session_class=LeasingSession)
        # Replicas are not required to answer now: reads go to the primary while they do not.
        self._replicas.start(pool_size=self.pool_size, max_overflow=self.max_overflow, echo=self.echo)
        self._memory_lock = asyncio.Lock() if is_memory(self.url) else None
        self._loop = asyncio.get_running_loop()
        log.info("connected to %s", self.database)

    async def disconnect(self) -> None:
        """Close every pooled connection; calling it again does nothing."""
        if self._engine is not None:
            self._follow_loop()  # connections of a finished event loop cannot be closed from this one
        engine, self._engine, self._sessions, self._readonly = self._engine, None, None, None
        if engine is not None:
            await _shielded(self._replicas.stop())
            await _shielded(engine.dispose())
            log.info("disconnected from %s", self.database)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.disconnect()

    def _require(self) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
        if self._engine is None or self._sessions is None:
            raise NotConnectedError(
                f"DatabaseManager for {self.database} is not connected: call `await manager.connect()` first"
            )
        return self._engine, self._sessions

    def _follow_loop(self) -> None:
        """Hand the pool to the running event loop when it is not the one the pool was built on.

        asyncpg connections, and the pool's queue, belong to the loop that made them: after one
        ``asyncio.run()`` ends, the next one starts from a fresh pool. The old connections are
        dropped without I/O (their loop is gone) and closed when collected. An in-memory database
        keeps its one connection, which is the database itself; only its lock is renewed.

        Raises:
            StorageError: the loop the pool belongs to is still running (in another thread).
        """
        loop = asyncio.get_running_loop()
        if self._loop is loop or self._engine is None:
            return
        if self._loop is not None and self._loop.is_running():
            raise StorageError(
                f"DatabaseManager for {self.database} is in use by another running event loop: "
                "a manager serves one event loop at a time; give each thread its own manager"
            )
        self._loop = loop
        if self._memory_lock is not None:
            self._memory_lock = asyncio.Lock()
        else:
            self._engine.sync_engine.dispose(close=False)
            for replica in self._replicas.members:
                replica.engine.sync_engine.dispose(close=False)
        log.info("%s: new event loop, new connection pool", self.database)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """Take the in-memory database's single connection for this task; elsewhere a no-op.

        Every use of the engine passes through here, so it is also where the pool follows a
        new event loop (see :meth:`_follow_loop`).
        """
        self._follow_loop()
        lock = self._memory_lock
        if lock is None:
            yield
            return
        task = asyncio.current_task()
        holder = _holding_memory_db.get()
        if holder is not None and holder[0] is self:
            if holder[1] is task:
                raise StorageError(
                    "a second session was opened inside a session on an in-memory SQLite database: "
                    "it has one connection, so sessions take turns; use the outer session"
                )
            # A task started inside a session waits for it to end, as a writer waits on a SQLite
            # file's lock: at most the busy timeout, so awaiting it inside the session cannot hang.
            try:
                async with asyncio.timeout(SQLITE_BUSY_TIMEOUT_MS / 1000):
                    await lock.acquire()
            except TimeoutError:
                raise StorageBusyError(
                    f"{self.database}: the in-memory database was not free within {SQLITE_BUSY_TIMEOUT_MS} ms: "
                    "this task was started inside a session that is still open (is it waiting for this task?)"
                ) from None
        else:
            await lock.acquire()
        token = _holding_memory_db.set((self, task))
        try:
            yield
        finally:
            _holding_memory_db.reset(token)
            lock.release()

    def _admit(self, readonly: bool) -> contextlib.AbstractAsyncContextManager[None]:
        """What a new session waits for (:meth:`_turn`) or is refused by (:meth:`_one_writer`), if anything."""
        if self._memory_lock is not None:
            return self._turn()
        self._follow_loop()
        if readonly or self.backend != "sqlite":
            return _NOTHING
        return self._one_writer(readonly)

    @contextlib.asynccontextmanager
    async def _one_writer(self, readonly: bool) -> AsyncIterator[None]:
        """Refuse a write session inside another of the same task on the same SQLite file.

        The inner one would wait for the outer one's write lock, which is released only when
        the inner one is done: it would wait out the busy timeout and fail.
        """
        task = asyncio.current_task()
        if readonly or self.backend != "sqlite" or self._memory_lock is not None or task is None:
            yield
            return
        key = (task, os.path.abspath(self.url.database or ""))
        if key in _writing:
            raise StorageError(
                f"a write session was opened inside another write session of the same task on {self.database}: "
                "SQLite has one writer at a time, so the inner one would wait for the outer one forever; "
                "use the outer session, or open the inner one with get_session(readonly=True) to read"
            )
        _writing.add(key)
        try:
            yield
        finally:
            _writing.discard(key)

    async def _open(self, sessions: async_sessionmaker[AsyncSession], readonly: bool) -> AsyncSession:
        """A new session: on the primary, or for a read-only one the next replica that answers."""
        info = {SESSION_EXCHANGE: self.exchange}
        if not readonly:
            return self._leasing(sessions(info=info), self.engine)
        for replica in self._replicas.in_turn():
            session = self._leasing(
                sessions(bind=replica.engine, info=info), replica.engine, timeout=replica.begin_timeout
            )
            try:
                # A dead replica fails here, before the caller's block.
                await (session.connection() if lease_of(session) is None else leased_connection(session))
            except BaseException as exc:
                await _shielded(_end(session, commit=False))  # cancelled too: the connection goes back
                if not isinstance(exc, Exception):
                    raise
                replica.failed(exc)
                continue
            replica.answered()
            return session
        assert self._readonly is not None
        return self._leasing(sessions(bind=self._readonly, info=info), self._readonly)

    def _leasing(self, session: AsyncSession, engine: AsyncEngine, *, timeout: float | None = None) -> AsyncSession:
        """``session``, given a :class:`~tradestore.leases.Lease` of ``engine``'s pool on PostgreSQL."""
        lease = backend_for(engine.dialect).lease(engine.sync_engine, timeout=timeout)
        if lease is not None:
            session.sync_session.lease = lease  # type: ignore[attr-defined]
        return session

    @contextlib.asynccontextmanager
    async def get_session(self, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        """A session in its own transaction: committed when the block ends, rolled back if it raises.

        ``readonly=True`` gives a read-only transaction: on a SQLite file a deferred read that
        never waits for a writer (WAL) and sees the last commit; on PostgreSQL ``READ ONLY``,
        on the next replica that answers, else on the primary. A write in it raises
        ``ReadOnlyError``. Read-only sessions may be opened inside any other session; a write
        session inside another write session of the same task on a SQLite file is refused at
        once (it could only wait for the outer one). On in-memory SQLite (one connection)
        every session, read-only or not, takes its turn and none may be nested.

        A session is one transaction on one connection. On PostgreSQL its single-row calls and
        OHLCV reads lease that connection from the pool and begin and commit it on the driver,
        and anything of SQLAlchemy's in the session takes the same connection and transaction
        over (see :mod:`tradestore.leases`).

        Cancelling the task (or an ``asyncio.timeout``) while the block runs rolls the whole
        transaction back; once the commit has started it is finished first, then the
        cancellation goes on. The rollback and the return of the connection to the pool
        finish even when the task is cancelled, so a failure never strands a connection,
        leaves a transaction open, or leaves the manager unusable.

        Raises:
            NotConnectedError: before ``connect()`` or after ``disconnect()``.
            StorageError: a write session nested in another of the same task on a SQLite file; any
                session nested in one on in-memory SQLite.
            ReadOnlyError: a write in a read-only session (nothing of it is written).
            StorageBusyError: the SQLite write lock (or a PostgreSQL row lock) was not granted
                in time, or no pooled connection was free in time; nothing was written (a
                ``TransientError``: retry the unit of work).
            ConnectionLostError: the connection broke or could not be made (a ``TransientError``).
        """
        _, sessions = self._require()
        async with self._admit(readonly):
            session = await self._open(sessions, readonly)
            try:
                yield session
            except PoolTimeoutError as exc:  # SQLAlchemy's own: every pooled connection is in use
                await _shielded(_end(session, commit=False))
                raise StorageBusyError(
                    f"{self.database}: no pooled connection was free in time (pool_size={self.pool_size}, "
                    f"max_overflow={self.max_overflow}): every one is held by an open session, and each "
                    "nested session holds one more; raise the pool size or nest fewer sessions"
                ) from exc
            except BaseException:
                await _shielded(_end(session, commit=False))
                raise
            # Shielded: a commit cut off half-way would leave its outcome unknown.
            await _shielded(_end(session, commit=True))

    async def create_all(self) -> None:
        """Create every table and index that does not exist yet, and record the head schema revision.

        Production uses the migrations (``tradestore db upgrade``); both paths end at the same
        schema and the same recorded revision.
        """
        engine, _ = self._require()
        async with self._turn(), engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.run_sync(schema.stamp_head)

    async def drop_all(self) -> None:
        """Drop every tradestore table and the recorded schema revision."""
        engine, _ = self._require()
        async with self._turn(), engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {schema.VERSION_TABLE}")

    async def health_check(self) -> Health:
        """Whether the database and its replicas answer, how fast, and whether its schema is current; never raises.

        Returns:
            A :class:`~tradestore.health.Health` report, which also reads as a dict:
            ``report["status"]`` is ``'healthy'`` or ``'unhealthy'``; ``backend``, ``database``
            (password masked), ``latency_ms``, ``server_version``, ``schema_revision``,
            ``schema_head``, ``schema_status``, ``size_bytes``, when unhealthy ``error``, and with
            replicas ``replicas``: one report per replica (see
            :meth:`tradestore.replicas.Replica.status`: status, latency, replay lag in seconds and
            bytes). A dead replica does not make the report unhealthy: reads go to the primary.
            The check reads in a read-only transaction: it never waits for a writer.
        """
        primary_lsn = None
        try:
            self._require()
            assert self._readonly is not None
            # A read-only transaction: on a SQLite file it never waits for a writer (another
            # process's, or the caller's own open write session).
            async with self._turn(), self._readonly.connect() as conn:
                report = await check(conn, self.url)
                if self._replicas:
                    primary_lsn = (await conn.exec_driver_sql(_WAL_POSITION_SQL)).scalar()
        except Exception as exc:
            report = unhealthy(self.url, self._scrub(exc))
        if not self._replicas:
            return report
        if self._engine is None:
            replicas = [{"database": url, "status": "unhealthy", "error": "not connected"} for url in self.replicas]
        else:
            replicas = [await replica.status(lsn_to_int(primary_lsn)) for replica in self._replicas.members]
        return dataclasses.replace(report, replicas=tuple(replicas))

    def _scrub(self, exc: BaseException) -> str:
        """The text of ``exc`` on one line, with the password cut out."""
        return describe(exc, self.url)
