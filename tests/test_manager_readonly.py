"""``get_session(readonly=True)`` and nested sessions, on a SQLite file, in-memory SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from factories import bar, bars, trade
from tradestore import DatabaseManager, OHLCVRepository, SystemEventRepository, TradeRepository
from tradestore import engine as engine_module
from tradestore.errors import ReadOnlyError, StorageBusyError, StorageError, TransientError
from tradestore.models import OHLCVModel

MEMORY = "sqlite+aiosqlite:///:memory:"


@pytest.fixture
async def shared(fresh_url: str) -> AsyncIterator[DatabaseManager]:
    """A manager on a SQLite file or a PostgreSQL database that other connections can open too."""
    async with DatabaseManager(fresh_url) as db:
        await db.create_all()
        yield db


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.sqlite),
        pytest.param("file", marks=pytest.mark.sqlite),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def any_url(request: pytest.FixtureRequest, new_database: Callable[[str], str]) -> str:
    """In-memory SQLite, a SQLite file, an empty PostgreSQL database."""
    if request.param == "memory":
        return MEMORY
    return new_database("sqlite" if request.param == "file" else "postgres")


@pytest.fixture
def sqlite_file(new_database: Callable[[str], str]) -> str:
    """The URL of a new SQLite file."""
    return new_database("sqlite")


async def stored_bars(db: DatabaseManager) -> int:
    async with db.get_session(readonly=True) as session:
        return int(await session.scalar(select(func.count()).select_from(OHLCVModel)) or 0)


async def test_a_read_only_session_reads_what_was_committed(shared: DatabaseManager) -> None:
    async with shared.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(5))
    async with shared.get_session(readonly=True) as session:
        latest = await OHLCVRepository(session).get_latest("BTCUSDT", "1m", limit=2)
    assert [b.timestamp for b in latest] == [b.timestamp for b in bars(5)[3:]]


async def test_a_read_only_session_reads_one_snapshot(shared: DatabaseManager) -> None:
    """Each read of a read-only session sees the same commits (SQLite: one read transaction; PostgreSQL: RR)."""
    async with shared.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(5))
    async with shared.get_session(readonly=True) as session:
        first = await session.scalar(select(func.count()).select_from(OHLCVModel))
        async with shared.get_session() as writer:  # another transaction commits meanwhile
            await OHLCVRepository(writer).upsert_many(bars(8))
        again = await session.scalar(select(func.count()).select_from(OHLCVModel))
        assert first == again == 5
    assert await stored_bars(shared) == 8


async def test_every_write_in_a_read_only_session_is_refused_and_nothing_is_written(any_url: str) -> None:
    async with DatabaseManager(any_url) as db:
        await db.create_all()
        writes: dict[str, Callable[[AsyncSession], Awaitable[object]]] = {
            "upsert_many": lambda s: OHLCVRepository(s).upsert_many(bars(3)),
            "insert": lambda s: TradeRepository(s).insert(trade(1)),
            "log_event": lambda s: SystemEventRepository(s).log_event("tick", "info", "hello"),
        }
        for name, write in writes.items():
            with pytest.raises(ReadOnlyError, match="read-only") as caught:
                async with db.get_session(readonly=True) as session:
                    await write(session)
            assert "readonly=True" in str(caught.value), name
            assert isinstance(caught.value, StorageError)
        assert await stored_bars(db) == 0
        async with db.get_session() as session:  # the same pooled connections write again
            await OHLCVRepository(session).upsert_many(bars(3))
            await TradeRepository(session).insert(trade(1))
        assert await stored_bars(db) == 3


async def test_read_only_sessions_nest_inside_write_and_read_only_sessions(shared: DatabaseManager) -> None:
    async with shared.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(2))
    async with shared.get_session() as outer:
        await OHLCVRepository(outer).upsert_many([bar(10)])
        async with asyncio.timeout(5), shared.get_session(readonly=True) as inner:
            # its own transaction: the last commit, not the outer session's pending write
            assert len(await OHLCVRepository(inner).get_latest("BTCUSDT", "1m")) == 2
            async with shared.get_session(readonly=True) as innermost:
                assert len(await OHLCVRepository(innermost).get_latest("BTCUSDT", "1m")) == 2
    assert await stored_bars(shared) == 3


@pytest.mark.sqlite
async def test_a_write_session_inside_a_write_session_on_a_sqlite_file_fails_at_once(
    sqlite_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 60_000)  # it must not be what ends the wait
    async with DatabaseManager(sqlite_file) as db:
        await db.create_all()
        async with db.get_session() as outer:
            await OHLCVRepository(outer).upsert_many([bar(0)])
            with pytest.raises(StorageError, match="inside another write session") as caught:
                async with asyncio.timeout(2), db.get_session():
                    pass
            assert "use the outer session" in str(caught.value) and "readonly=True" in str(caught.value)
            await OHLCVRepository(outer).upsert_many([bar(1)])  # the outer session goes on
        assert await stored_bars(db) == 2
        async with db.get_session(), db.get_session(readonly=True):  # and a read inside a write is fine
            pass


@pytest.mark.sqlite
async def test_write_sessions_of_other_tasks_still_queue_behind_each_other(sqlite_file: str) -> None:
    async with DatabaseManager(sqlite_file) as db:
        await db.create_all()

        async def write(minute: int) -> None:
            async with db.get_session() as session:
                await OHLCVRepository(session).upsert_many([bar(minute)])
                await asyncio.sleep(0.01)

        async with db.get_session() as outer:  # a task started inside a session is another task
            task = asyncio.create_task(write(1))
            await OHLCVRepository(outer).upsert_many([bar(0)])
        await asyncio.gather(task, *(write(m) for m in range(2, 10)))
        assert await stored_bars(db) == 10


_HOLD_SQLITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("DELETE FROM ohlcv")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@pytest.mark.sqlite
async def test_a_read_only_session_on_a_sqlite_file_never_waits_for_a_writer(
    sqlite_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 60_000)
    async with DatabaseManager(sqlite_file) as db:
        await db.create_all()
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many(bars(4))
        assert db.url.database is not None
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD_SQLITE_LOCK, db.url.database],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            for _ in range(3):  # a writer holds the lock, with a delete not yet committed
                async with asyncio.timeout(5), db.get_session(readonly=True) as session:
                    assert len(await OHLCVRepository(session).get_latest("BTCUSDT", "1m")) == 4
            async with asyncio.timeout(5):  # nor does the health check (it reads, read-only)
                assert (await db.health_check())["status"] == "healthy"
        finally:
            holder.communicate("release\n", timeout=10)
        async with db.get_session() as session:  # the caller's own write session holds the lock
            await OHLCVRepository(session).upsert_many(bars(5))
            async with asyncio.timeout(5):
                assert (await db.health_check())["status"] == "healthy"


@pytest.mark.sqlite
async def test_read_only_on_in_memory_sqlite_takes_turns_and_refuses_nesting() -> None:
    """One connection is one transaction at a time: a read-only session takes its turn like any other."""
    async with DatabaseManager(MEMORY) as db:
        await db.create_all()
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many(bars(3))
        async with db.get_session(readonly=True) as session:
            with pytest.raises(StorageError, match="in-memory"):
                async with asyncio.timeout(5), db.get_session(readonly=True):
                    pass
            assert len(await OHLCVRepository(session).get_latest("BTCUSDT", "1m")) == 3

        order: list[str] = []

        async def read(name: str) -> None:
            async with db.get_session(readonly=True) as session:
                order.append(f"{name} in")
                await OHLCVRepository(session).get_latest("BTCUSDT", "1m")
                await asyncio.sleep(0.01)
                order.append(f"{name} out")

        await asyncio.gather(read("a"), read("b"))
        assert order == ["a in", "a out", "b in", "b out"]
        async with db.get_session() as session:  # the one connection writes again afterwards
            await OHLCVRepository(session).upsert_many([bar(3)])
        assert await stored_bars(db) == 4


@pytest.mark.postgres
async def test_postgres_read_only_sessions_are_read_only_transactions_and_do_not_leak(pg_url: URL) -> None:
    async with DatabaseManager(pg_url, pool_size=1, max_overflow=0) as db:
        for _ in range(2):
            async with db.get_session(readonly=True) as session:
                assert await session.scalar(text("SHOW transaction_read_only")) == "on"
            async with db.get_session() as session:  # the same (only) connection, writable again
                assert await session.scalar(text("SHOW transaction_read_only")) == "off"


async def test_a_session_that_finds_no_free_pooled_connection_is_a_storage_busy_error(fresh_url: str) -> None:
    async with DatabaseManager(fresh_url, pool_size=1, max_overflow=0) as db:
        await db.create_all()
        db.engine.sync_engine.pool._timeout = 0.5  # type: ignore[attr-defined]  # SQLAlchemy's 30 s, for the test
        async with db.get_session() as outer:
            await OHLCVRepository(outer).upsert_many(bars(3))  # holds the pool's one connection
            with pytest.raises(StorageBusyError, match="pool_size=1, max_overflow=0") as caught:
                async with db.get_session(readonly=True) as inner:  # needs a second one
                    await OHLCVRepository(inner).get_latest("BTCUSDT", "1m")
            assert isinstance(caught.value, TransientError)
        assert await stored_bars(db) == 3  # the outer session committed; the manager still works
