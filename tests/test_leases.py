"""A session's single-row calls and everything else it runs share one transaction, on both backends.

On PostgreSQL a session's single-row calls run on a connection it leases from the pool
(:mod:`tradestore.leases`) until SQLAlchemy needs it; these tests mix the two in every order a
bot might, and check that commits, rollbacks, savepoints, ORM flushes and read-only sessions
behave as one unit of work. The same tests run on SQLite, where no lease is taken.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncSession

from factories import T0, bars
from tradestore import DatabaseManager, OHLCVRepository, SystemEventRepository
from tradestore.errors import (
    ConnectionLostError,
    DuplicateError,
    ReadOnlyError,
    StorageError,
    TransactionAbortedError,
)
from tradestore.leases import lease_of
from tradestore.models import SystemEventModel

EVENTS = select(SystemEventModel.message).order_by(SystemEventModel.id)


async def stored(db: DatabaseManager) -> list[str]:
    async with db.get_session(readonly=True) as session:
        return list((await session.scalars(EVENTS)).all())


async def log(session: object, message: str) -> int:
    return await SystemEventRepository(session).log_event("note", "info", message)  # type: ignore[arg-type]


class Boom(Exception):
    pass


@pytest.fixture
async def shared(fresh_url: str) -> AsyncIterator[DatabaseManager]:
    """A manager on a database other sessions can use at the same time (a file on SQLite)."""
    async with DatabaseManager(fresh_url) as manager:
        await manager.create_all()
        yield manager


def _checked_out(db: DatabaseManager) -> int:
    pool = db.engine.sync_engine.pool
    return int(pool.checkedout()) if hasattr(pool, "checkedout") else 0


async def test_a_single_row_write_is_seen_by_the_sessions_own_queries_and_undone_with_them(
    db: DatabaseManager,
) -> None:
    with pytest.raises(Boom):
        async with db.get_session() as session:
            await log(session, "first")
            assert (await session.scalars(EVENTS)).all() == ["first"]  # the same transaction
            await log(session, "second")
            session.add(SystemEventModel(event_type="note", severity="info", message="orm", created_at=_now()))
            await session.flush()
            assert (await session.scalars(EVENTS)).all() == ["first", "second", "orm"]
            raise Boom
    assert await stored(db) == []


async def test_orm_objects_added_after_single_row_calls_are_committed_with_them(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        await log(session, "single-row")
        session.add(SystemEventModel(event_type="note", severity="info", message="orm", created_at=_now()))
    assert await stored(db) == ["single-row", "orm"]


async def test_asking_the_session_for_its_bind_changes_nothing(db: DatabaseManager) -> None:
    """``get_bind()`` (how code reads the dialect) still gives the engine; the unit still commits whole."""
    async with db.get_session() as session:
        await log(session, "before")
        bind = session.get_bind()
        assert bind is db.engine.sync_engine and bind.dialect.name == db.backend
        await log(session, "after")
        await session.run_sync(lambda sync: sync.get_bind().dialect.name)
    assert await stored(db) == ["before", "after"]


async def test_a_flush_after_single_row_calls_writes_in_their_transaction(db: DatabaseManager) -> None:
    with pytest.raises(Boom):
        async with db.get_session() as session:
            await log(session, "single-row")
            session.add(SystemEventModel(event_type="note", severity="info", message="flushed", created_at=_now()))
            await session.flush()
            await log(session, "single-row again")
            raise Boom
    assert await stored(db) == []
    async with db.get_session() as session:
        await log(session, "single-row")
        session.add(SystemEventModel(event_type="note", severity="info", message="flushed", created_at=_now()))
        await session.flush()
        await session.commit()
        await log(session, "after the commit")  # the lease runs the next transaction
        assert (await session.scalars(EVENTS)).all() == ["single-row", "flushed", "after the commit"]
    assert await stored(db) == ["single-row", "flushed", "after the commit"]


async def test_an_explicit_commit_inside_the_block_commits_what_came_before(db: DatabaseManager) -> None:
    with pytest.raises(Boom):
        async with db.get_session() as session:
            await log(session, "kept")
            await session.commit()
            await log(session, "rolled back")
            raise Boom
    assert await stored(db) == ["kept"]


async def test_an_explicit_rollback_or_close_inside_the_block_undoes_what_came_before(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        await log(session, "undone by rollback")
        await session.rollback()
        await log(session, "after the rollback")
        await session.close()
        await log(session, "after the close")
    assert await stored(db) == ["after the close"]


async def test_a_savepoint_after_single_row_calls_undoes_only_its_own_part(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        await log(session, "outer")
        with pytest.raises(Boom):
            async with session.begin_nested():
                await log(session, "inner")
                raise Boom
        await log(session, "outer again")
    assert await stored(db) == ["outer", "outer again"]


async def test_a_caught_duplicate_aborts_a_postgresql_transaction_and_nothing_is_written(
    db: DatabaseManager, backend: str
) -> None:
    async with db.get_session() as session:
        first = await log(session, "one")
    with pytest.raises(TransactionAbortedError if backend == "postgresql" else Boom):
        async with db.get_session() as session:
            await log(session, "lost with the transaction")
            with pytest.raises(DuplicateError):
                await SystemEventRepository(session)._scalar(
                    SystemEventModel.__table__.insert().values(  # type: ignore[attr-defined]
                        id=first, event_type="note", severity="info", message="again", created_at=_now()
                    )
                )
            if backend != "postgresql":
                raise Boom  # SQLite keeps the transaction: leave it the same way, nothing written
    assert await stored(db) == ["one"]


async def test_a_read_only_session_is_one_read_only_snapshot_whichever_call_comes_first(
    shared: DatabaseManager,
) -> None:
    db, backend = shared, shared.backend
    async with db.get_session() as session:
        await log(session, "before")
    async with db.get_session(readonly=True) as session:
        events = await SystemEventRepository(session).get_recent_events()
        async with db.get_session() as writer:
            await log(writer, "committed meanwhile")
        assert [e.message for e in await SystemEventRepository(session).get_recent_events()] == ["before"]
        if backend == "postgresql":
            assert (await session.execute(text("SHOW transaction_read_only"))).scalar() == "on"
            assert (await session.execute(text("SHOW transaction_isolation"))).scalar() == "repeatable read"
        with pytest.raises(ReadOnlyError):
            await log(session, "refused")
    assert [e.message for e in events] == ["before"]
    assert await stored(db) == ["before", "committed meanwhile"]


async def test_a_read_only_session_whose_first_call_is_single_row_reads_a_snapshot(shared: DatabaseManager) -> None:
    db, backend = shared, shared.backend
    async with db.get_session(readonly=True) as session:
        repo = SystemEventRepository(session)
        assert await repo._scalar(select(func.count()).select_from(SystemEventModel)) == 0
        async with db.get_session() as writer:
            await log(writer, "committed meanwhile")
        assert await repo._scalar(select(func.count()).select_from(SystemEventModel)) == 0
        assert (await session.scalars(EVENTS)).all() == []
        if backend == "postgresql":
            assert (await session.execute(text("SHOW transaction_isolation"))).scalar() == "repeatable read"
        with pytest.raises(ReadOnlyError):
            await log(session, "refused")


async def test_a_read_only_session_stays_read_only_after_its_own_rollback_or_commit(shared: DatabaseManager) -> None:
    db, backend = shared, shared.backend
    async with db.get_session() as session:
        await log(session, "seed")
    async with db.get_session(readonly=True) as session:
        repo = SystemEventRepository(session)
        for end in (session.rollback, session.commit):
            await repo._scalar(select(func.count()).select_from(SystemEventModel))  # the lease begins it
            await end()
            if backend == "postgresql":
                assert (await session.execute(text("SHOW transaction_read_only"))).scalar() == "on"
                assert (await session.execute(text("SHOW transaction_isolation"))).scalar() == "repeatable read"
            with pytest.raises(ReadOnlyError):
                await log(session, "refused")
            await session.rollback()
    assert await stored(db) == ["seed"]


async def test_a_stream_reads_on_across_sqlalchemy_calls_but_not_past_its_session(shared: DatabaseManager) -> None:
    db = shared
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(6))
    async with db.get_session() as session:
        stream = OHLCVRepository(session).stream_range("BTCUSDT", "1m", T0, T0 + timedelta(hours=1), batch_size=2)
        seen = [await anext(stream)]
        await session.execute(text("SELECT 1"))  # SQLAlchemy takes the lease over: same transaction
        seen += [bar async for bar in stream]
    assert len(seen) == 6
    async with db.get_session() as session:
        stream = OHLCVRepository(session).stream_range("BTCUSDT", "1m", T0, T0 + timedelta(hours=1), batch_size=2)
        first = [await anext(stream), await anext(stream)]
    with pytest.raises(StorageError, match="has ended"):
        await anext(stream)  # its connection went back to the pool with the session
    assert [b.timestamp for b in first] == [T0, T0 + timedelta(minutes=1)]


async def test_echo_logs_each_units_begin_and_commit(fresh_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async with DatabaseManager(fresh_url, echo=True) as db:
        await db.create_all()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
            async with db.get_session() as session:
                await log(session, "logged")
            with pytest.raises(Boom):
                async with db.get_session() as session:
                    await log(session, "rolled back")
                    raise Boom
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy.engine")]
    begins = [n for n, line in enumerate(lines) if line.startswith("BEGIN (")]  # (implicit), or (leased)
    assert len(begins) == 2, lines
    assert "COMMIT" in lines[begins[0] : begins[1]] and "ROLLBACK" in lines[begins[1] :], lines


async def test_a_single_row_call_cancelled_and_caught_inside_a_session_is_never_committed_as_if_not_sent(
    db: DatabaseManager, backend: str
) -> None:
    """PostgreSQL may have cancelled the statement, aborting the transaction: the commit then says so."""
    if backend != "postgresql":
        pytest.skip("SQLite runs a statement to its end once sent: nothing is cancelled on the server")
    with pytest.raises(TransactionAbortedError):
        async with db.get_session() as session:
            await log(session, "earlier")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await SystemEventRepository(session)._scalar(select(func.pg_sleep(2)))
    assert await stored(db) == []
    assert _checked_out(db) == 0


async def test_every_unit_gives_its_connection_back_however_it_ends(db: DatabaseManager) -> None:
    for n in range(5):
        async with db.get_session() as session:
            await log(session, f"unit {n}")
        with pytest.raises(Boom):
            async with db.get_session() as session:
                await log(session, "undone")
                raise Boom
        async with db.get_session() as session:
            await log(session, "taken over")
            await session.execute(text("SELECT 1"))
        assert _checked_out(db) == 0
    assert len(await stored(db)) == 10


async def test_a_postgresql_unit_of_single_row_calls_skips_sqlalchemys_checkout(
    db: DatabaseManager, backend: str
) -> None:
    """The fast path is taken: a unit of single-row calls never runs the pool's checkout (PostgreSQL)."""
    if backend != "postgresql":
        pytest.skip("SQLite sessions take no lease: their connection is the session's own")
    pool = db.engine.sync_engine.pool
    checkouts: list[object] = []
    event.listen(pool, "checkout", lambda *args: checkouts.append(args))
    async with db.get_session() as session:
        await log(session, "warm")  # the pool may have had no idle connection yet
    checkouts.clear()
    for n in range(10):
        async with db.get_session() as session:
            assert lease_of(session) is not None
            await log(session, f"unit {n}")
            await log(session, f"unit {n} again")
    assert checkouts == []
    assert _checked_out(db) == 0


async def test_a_lost_leased_connection_is_a_connection_lost_error_and_the_next_unit_works(
    db: DatabaseManager, backend: str, pg_url: object
) -> None:
    if backend != "postgresql":
        pytest.skip("kills a PostgreSQL backend")
    with pytest.raises(ConnectionLostError):
        async with db.get_session() as session:
            await log(session, "lost")
            await _terminate(db, _leased_pid(session))
            await log(session, "never written")
    async with db.get_session() as session:
        await log(session, "after")
    assert await stored(db) == ["after"]
    assert _checked_out(db) == 0


async def test_a_lost_connection_caught_inside_the_session_is_never_committed_as_if_nothing_happened(
    db: DatabaseManager, backend: str
) -> None:
    """What the lost connection held is gone: the session refuses to go on, or to commit, until rolled back."""
    if backend != "postgresql":
        pytest.skip("kills a PostgreSQL backend")
    with pytest.raises(ConnectionLostError, match="lost earlier"):
        async with db.get_session() as session:
            await log(session, "lost with the connection")
            await _terminate(db, _leased_pid(session))
            with pytest.raises(ConnectionLostError):
                await log(session, "refused")
            with pytest.raises(ConnectionLostError, match="lost earlier"):
                await log(session, "refused again")
            with pytest.raises(ConnectionLostError, match="lost earlier"):
                await session.execute(text("SELECT 1"))
    async with db.get_session() as session:
        await log(session, "before")
        await _terminate(db, _leased_pid(session))
        with pytest.raises(ConnectionLostError):
            await log(session, "refused")
        await session.rollback()  # the unit starts over, on a new connection
        await log(session, "after the rollback")
    assert await stored(db) == ["after the rollback"]


async def test_begin_after_a_single_row_call_is_refused_as_after_any_statement(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        await log(session, "kept")
        with pytest.raises(InvalidRequestError, match="already begun"):
            session.sync_session.begin()
        with pytest.raises(InvalidRequestError, match="already begun"):
            await session.begin()
    assert await stored(db) == ["kept"]


async def test_an_idle_pooled_connection_killed_is_replaced_before_the_unit_begins(
    db: DatabaseManager, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("kills a PostgreSQL backend")
    async with db.get_session() as session:
        await log(session, "first")
        pid = _leased_pid(session)
    await _terminate(db, pid)
    for n in range(3):
        async with db.get_session() as session:
            await log(session, f"after {n}")
    assert await stored(db) == ["first", "after 0", "after 1", "after 2"]


async def test_a_unit_cancelled_during_a_single_row_call_writes_nothing_and_frees_its_connection(
    db: DatabaseManager,
) -> None:
    started = asyncio.Event()

    async def unit() -> None:
        async with db.get_session() as session:
            await log(session, "cancelled")
            started.set()
            await SystemEventRepository(session)._scalar(select(func.pg_sleep(5)) if _pg(db) else select(1))
            await asyncio.sleep(5)

    task = asyncio.create_task(unit())
    await started.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await stored(db) == []
    async with db.get_session() as session:
        await log(session, "after")
    assert await stored(db) == ["after"]
    assert _checked_out(db) == 0


async def test_a_call_timed_out_and_caught_inside_a_session_never_makes_a_later_commit_empty(
    db: DatabaseManager, backend: str
) -> None:
    """The timeout may land on the BEGIN of the lease's next transaction: that BEGIN is ended, not built on.

    Otherwise SQLAlchemy's own BEGIN after it is a SAVEPOINT, and the commit of what it wrote ends nothing.
    """
    if backend != "postgresql":
        pytest.skip("a PostgreSQL lease's BEGIN")
    rng = random.Random()
    started = asyncio.get_running_loop().time()
    async with db.get_session() as session:
        await log(session, "timing")
    duration = asyncio.get_running_loop().time() - started
    for trial in range(150):
        async with db.get_session() as session:
            await log(session, f"{trial} first")
            await session.commit()
            try:
                async with asyncio.timeout(rng.uniform(0, duration)):
                    await log(session, f"{trial} maybe")
            except TimeoutError:
                await session.rollback()
            await session.execute(
                SystemEventModel.__table__.insert().values(  # type: ignore[attr-defined]
                    event_type="note", severity="info", message=f"{trial} through SQLAlchemy", created_at=_now()
                )
            )
            await session.commit()
            written = set(await stored(db))
            assert {f"{trial} first", f"{trial} through SQLAlchemy"} <= written, f"trial {trial}"
    assert _checked_out(db) == 0


def _pg(db: DatabaseManager) -> bool:
    return db.backend == "postgresql"


def _leased_pid(session: AsyncSession) -> int:
    """The server process of the connection the session's lease holds."""
    lease = lease_of(session)
    assert lease is not None and lease.record is not None
    return int(lease.record.driver_connection.get_server_pid())  # type: ignore[union-attr]


async def _terminate(db: DatabaseManager, pid: int) -> None:
    url = db.engine.url
    admin = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, database=url.database
    )
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        for _ in range(100):
            if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                break
            await asyncio.sleep(0.01)
    finally:
        await admin.close()


def _now() -> datetime:
    return datetime.now(UTC)
