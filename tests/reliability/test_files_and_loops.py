"""Guarantees 11 and 12: private files, and event loops and threads.

11. A new SQLite database, its ``-wal`` and its ``-shm`` file are readable by their owner only
    (0600), whatever the umask (SQLite creates the other two with the database's mode).
12. A manager can be used from two consecutive ``asyncio.run()`` calls, on every backend
    (before the fix, PostgreSQL failed the second run: its pooled connections belonged to
    the first, closed loop); a manager still in use by a running loop in another thread is
    refused with a clear error; and a process that forgets ``disconnect()``, even with a
    session open, exits promptly.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from factories import bars
from support import bar_counts
from tradestore import DatabaseManager, OHLCVRepository
from tradestore.errors import StorageError

UMASKS = (0o000, 0o022, 0o002, 0o077)


@pytest.mark.sqlite
@pytest.mark.parametrize("umask", UMASKS, ids=[f"umask{u:03o}" for u in UMASKS])
async def test_a_new_database_and_its_wal_and_shm_are_0600(tmp_path: Path, umask: int, figures: Counter[str]) -> None:
    path = tmp_path / "new" / "bot.db"
    old = os.umask(umask)
    try:
        async with DatabaseManager(f"sqlite:///{path}") as db:
            await db.create_all()
            async with db.get_session() as session:
                await OHLCVRepository(session).upsert_many(bars(10))
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert all(f.exists() for f in files)  # WAL mode, a write done, still connected
            modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    finally:
        os.umask(old)
    assert modes == {"bot.db": 0o600, "bot.db-wal": 0o600, "bot.db-shm": 0o600}
    figures["SQLite files checked 0600 (database, -wal, -shm) under various umasks"] += 3


def _memory_and_file_and_postgres(tmp_path: Path, request: pytest.FixtureRequest, kind: str) -> str | URL:
    if kind == "memory":
        return "sqlite+aiosqlite:///:memory:"
    if kind == "file":
        return f"sqlite:///{tmp_path / 'loops.db'}"
    pg: URL = request.getfixturevalue("pg_url")
    return pg


KINDS = [
    pytest.param("memory", marks=pytest.mark.sqlite),
    pytest.param("file", marks=pytest.mark.sqlite),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@pytest.mark.parametrize("kind", KINDS)
def test_one_manager_in_two_consecutive_asyncio_runs(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, figures: Counter[str]
) -> None:
    db = DatabaseManager(_memory_and_file_and_postgres(tmp_path, request, kind), pool_size=2, max_overflow=0)

    async def first() -> None:
        await db.connect()
        await db.drop_all()
        await db.create_all()
        await asyncio.gather(*(write(f"first-{i}") for i in range(4)))  # every pooled connection used

    async def write(symbol: str) -> None:
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many(bars(5, symbol=symbol))
            await asyncio.sleep(0.01)

    async def second() -> dict[str, int]:
        await asyncio.gather(*(write(f"second-{i}") for i in range(4)))
        assert (await db.health_check())["status"] == "healthy"
        return await bar_counts(db)

    async def third() -> None:
        await db.drop_all()
        await db.disconnect()

    asyncio.run(first())
    counts = asyncio.run(second())  # the first run's data is there, the memory database included
    asyncio.run(third())
    assert counts == {f"{run}-{i}": 5 for run in ("first", "second") for i in range(4)}
    figures["managers used across consecutive asyncio.run() calls"] += 1


async def test_a_manager_busy_in_another_threads_loop_is_refused_clearly(tmp_path: Path) -> None:
    db = DatabaseManager(f"sqlite:///{tmp_path / 'threads.db'}")
    started, release = threading.Event(), threading.Event()

    async def hold() -> None:
        await db.connect()
        await db.create_all()
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.01)
        await db.disconnect()

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    try:
        assert started.wait(10)
        with pytest.raises(StorageError, match="another running event loop"):
            async with db.get_session():
                pass
    finally:
        release.set()
        thread.join(10)
    assert not thread.is_alive()


_FORGETFUL_BOT = """
import asyncio, sys
sys.path.insert(0, sys.argv[2])
from factories import bars
from tradestore import DatabaseManager, OHLCVRepository

db = DatabaseManager(sys.argv[1])

async def stuck_in_a_session():
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(3, symbol="open"))
        await asyncio.sleep(3600)

async def main():
    await db.connect()
    await db.create_all()
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(3))
    asyncio.get_running_loop().create_task(stuck_in_a_session())
    await asyncio.sleep(0.2)
    print("done", flush=True)  # returns without disconnect(), a session still open

asyncio.run(main())
"""


@pytest.mark.parametrize("kind", KINDS)
def test_a_process_that_forgets_disconnect_exits_promptly(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, figures: Counter[str]
) -> None:
    url = _memory_and_file_and_postgres(tmp_path, request, kind)
    if isinstance(url, URL):
        url = url.render_as_string(hide_password=False)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _FORGETFUL_BOT, url, str(Path(__file__).parents[1])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.perf_counter() - started
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-2000:]
    assert took < 15, f"the process took {took:.1f} s to exit"
    figures["processes that forgot disconnect(), exited promptly"] += 1
