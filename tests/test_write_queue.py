"""The SQLite writer queue and checkpointer (``tradestore.write_queue``), on SQLite files.

Behaviour only, never timings: who is served, in what order, with which error, what is left.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from factories import bars
from tradestore import DatabaseManager, OHLCVRepository, SystemEventRepository
from tradestore import engine as engine_module
from tradestore.errors import StorageBusyError
from tradestore.models import SystemEventModel
from tradestore.write_queue import NEXT_SUFFIX, WRITER_SUFFIX, Checkpointer

pytestmark = pytest.mark.sqlite

#: A tradestore writer in another process: ``hold SECONDS`` holds a write session that long,
#: ``write N TAG`` writes N events, one session each. Prints "in" once inside its first session.
_WRITER = """
import asyncio, sys
from tradestore import DatabaseManager, SystemEventRepository

async def main(url, mode, arg, tag):
    async with DatabaseManager(url) as db:
        if mode == "hold":
            async with db.get_session() as session:
                await SystemEventRepository(session).log_event("held", "info", tag)
                print("in", flush=True)
                await asyncio.sleep(float(arg))
            return
        for n in range(int(arg)):
            async with db.get_session() as session:
                await SystemEventRepository(session).log_event("write", "info", f"{tag} {n}")
                if n == 0:
                    print("in", flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


def writer(url: str, mode: str, arg: str, tag: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, url, mode, arg, tag],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def wait_inside(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None and process.stdout.readline().strip() == "in"


@pytest.fixture
async def db(new_database: Callable[[str], str]) -> AsyncIterator[DatabaseManager]:
    async with DatabaseManager(new_database("sqlite")) as manager:
        await manager.create_all()
        yield manager


async def messages(db: DatabaseManager) -> list[str]:
    async with db.get_session(readonly=True) as session:
        return list((await session.scalars(select(SystemEventModel.message).order_by(SystemEventModel.id))).all())


async def test_a_writer_of_another_process_is_served_when_the_first_one_releases(db: DatabaseManager) -> None:
    holder = writer(str(db.url), "hold", "0.5", "first")
    try:
        wait_inside(holder)
        async with db.get_session() as session:  # waits in the queue, then writes
            await SystemEventRepository(session).log_event("write", "info", "second")
    finally:
        assert holder.wait(timeout=30) == 0
    assert await messages(db) == ["first", "second"]


async def test_writers_are_served_in_arrival_order(db: DatabaseManager) -> None:
    holder = writer(str(db.url), "hold", "1.0", "holder")
    try:
        wait_inside(holder)

        async def write(tag: str) -> None:
            async with db.get_session() as session:  # each task on its own pooled connection
                await SystemEventRepository(session).log_event("write", "info", tag)

        queued = []
        for tag in ("a", "b", "c", "d"):
            queued.append(asyncio.create_task(write(tag)))
            await asyncio.sleep(0.1)  # each one queued before the next arrives
        await asyncio.gather(*queued)
    finally:
        assert holder.wait(timeout=30) == 0
    assert await messages(db) == ["holder", "a", "b", "c", "d"]


async def test_many_writers_in_three_processes_all_succeed(db: DatabaseManager) -> None:
    others = [writer(str(db.url), "write", "40", f"p{i}") for i in range(2)]
    try:

        async def write(n: int) -> None:
            async with db.get_session() as session:
                await SystemEventRepository(session).log_event("write", "info", f"here {n}")

        for n in range(40):
            await asyncio.gather(write(2 * n), write(2 * n + 1))
    finally:
        codes = [p.wait(timeout=120) for p in others]
    assert codes == [0, 0]
    written = await messages(db)
    assert len(written) == 160
    for tag, count in (("here", 80), ("p0", 40), ("p1", 40)):
        assert sum(m.startswith(tag) for m in written) == count


async def test_a_turn_held_past_the_timeout_is_storage_busy_then_the_write_succeeds(
    db: DatabaseManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 300)
    holder = writer(str(db.url), "hold", "2.0", "holder")
    try:
        wait_inside(holder)
        with pytest.raises(StorageBusyError, match="300 ms") as caught:
            async with db.get_session() as session:
                await SystemEventRepository(session).log_event("write", "info", "refused")
        assert "-writer" in str(caught.value)
    finally:
        assert holder.wait(timeout=30) == 0
    async with db.get_session() as session:  # the connection that gave up writes again
        await SystemEventRepository(session).log_event("write", "info", "after")
    assert await messages(db) == ["holder", "after"]


async def test_a_rollback_or_a_cancellation_hands_the_turn_on(db: DatabaseManager) -> None:
    with pytest.raises(RuntimeError):
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many(bars(3))
            raise RuntimeError("strategy crashed")

    async def cancelled() -> None:
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many(bars(3))
            await asyncio.sleep(3600)

    task = asyncio.create_task(cancelled())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    other = writer(str(db.url), "write", "1", "other process")
    try:
        wait_inside(other)
    finally:
        assert other.wait(timeout=30) == 0
    assert await messages(db) == ["other process 0"]


async def test_the_queue_files_are_private(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        await SystemEventRepository(session).log_event("write", "info", "x")
    assert db.url.database is not None
    for suffix in (WRITER_SUFFIX, NEXT_SUFFIX):
        mode = stat.S_IMODE(os.stat(db.url.database + suffix).st_mode)
        assert mode == 0o600, (suffix, oct(mode))


async def test_the_write_ahead_log_is_checkpointed_by_its_own_thread(
    db: DatabaseManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Checkpointer, "INTERVAL_S", 0.05)
    assert db.url.database is not None
    database = Path(db.url.database)
    async with db.get_session() as session:  # SQLite's own checkpoint inside COMMIT is off
        conn = await session.connection()
        assert (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar() == 0
    before = database.stat().st_size
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(20_000))  # far more than 1,000 WAL pages
    deadline = time.monotonic() + 10
    while database.stat().st_size == before and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the pages reach the database file only through a checkpoint
    assert database.stat().st_size > before


def test_a_checkpoint_never_creates_a_database_that_was_removed(tmp_path: Path) -> None:
    missing = tmp_path / "removed.db"
    Checkpointer(str(missing)).checkpoint()
    assert not missing.exists()
