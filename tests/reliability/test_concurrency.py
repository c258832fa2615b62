"""Guarantee 1: concurrent writers never fail, never mix rows, never deadlock.

On a SQLite *file* (the in-memory database takes turns, see test_memory.py) and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from factories import T0, bar
from support import bar_counts, open_db, small_chunks, sqlite_integrity, task_bar, writer_of
from tradestore import DatabaseManager, OHLCVRepository

TASKS = 50
KEYS = 200


async def _all_at_once(db: DatabaseManager, work: Callable[[int], object]) -> list[object]:
    """Run ``work(i)`` for every task, all released at the same moment."""
    start = asyncio.Event()

    async def one(i: int) -> object:
        await start.wait()
        return await work(i)  # type: ignore[misc]

    tasks = [asyncio.create_task(one(i)) for i in range(TASKS)]
    await asyncio.sleep(0)
    start.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_50_writers_upsert_the_same_200_keys(fresh_url: str, figures: Counter[str]) -> None:
    db = await open_db(fresh_url)
    try:

        async def upsert(i: int) -> int:
            async with db.get_session() as session:
                return await OHLCVRepository(session).upsert_many([task_bar(i, slot) for slot in range(KEYS)])

        results = await _all_at_once(db, upsert)
        assert [r for r in results if isinstance(r, BaseException)] == []
        async with db.get_session() as session:
            stored = await OHLCVRepository(session).get_range("BTCUSDT", "1m", T0, T0 + timedelta(days=1))
        assert len(stored) == KEYS
        writers = [writer_of(b) for b in stored]
        assert -1 not in writers, "a row mixes the fields of two tasks"
        # Each task's whole batch is one transaction, so the last one to commit owns every row.
        assert len(set(writers)) == 1
        if db.backend == "sqlite":
            assert await sqlite_integrity(db) == "ok"
        figures[f"concurrent writer tasks ({db.backend})"] += TASKS
        figures[f"rows written by concurrent tasks ({db.backend})"] += TASKS * KEYS
    finally:
        await db.drop_all()
        await db.disconnect()


async def test_50_read_then_write_units_of_work(fresh_url: str, figures: Counter[str]) -> None:
    """Read the last bar, then upsert the next one: never "database is locked" (BEGIN IMMEDIATE)."""
    db = await open_db(fresh_url)
    try:
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many([bar(0)])

        async def read_then_write(i: int) -> None:
            async with db.get_session() as session:
                repo = OHLCVRepository(session)
                last = await repo.get_latest("BTCUSDT", "1m", limit=1)
                await asyncio.sleep(0)  # let the other tasks read too before this one writes
                await repo.upsert_many([bar(i + 1, close=str(last[-1].close))])

        results = await _all_at_once(db, read_then_write)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert await bar_counts(db) == {"BTCUSDT": TASKS + 1}
        if db.backend == "sqlite":
            assert await sqlite_integrity(db) == "ok"
        figures[f"read-then-write tasks ({db.backend})"] += TASKS
    finally:
        await db.drop_all()
        await db.disconnect()


def test_a_deferred_transaction_upgrading_to_a_write_fails_at_once(tmp_path: Path) -> None:
    """The control: why tradestore begins with BEGIN IMMEDIATE.

    Two plain deferred transactions read, then both try to write: the second fails at once
    with "database is locked" although the busy timeout is 5 s, because waiting could not help
    (its snapshot is already stale). tradestore never runs a deferred write transaction.
    """
    path = tmp_path / "control.db"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (x INTEGER)")
    setup.close()
    a = sqlite3.connect(path, timeout=5, isolation_level=None)
    b = sqlite3.connect(path, timeout=5, isolation_level=None)
    a.execute("BEGIN")
    b.execute("BEGIN")
    a.execute("SELECT count(*) FROM t").fetchall()
    b.execute("SELECT count(*) FROM t").fetchall()
    a.execute("INSERT INTO t VALUES (1)")
    loop = asyncio.new_event_loop()
    started = loop.time()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        b.execute("INSERT INTO t VALUES (2)")
    assert loop.time() - started < 1.0  # did not wait for the 5 s busy timeout
    loop.close()
    a.execute("COMMIT")
    b.execute("ROLLBACK")
    a.close()
    b.close()


async def test_batches_holding_the_same_keys_in_different_orders_do_not_deadlock(
    fresh_url: str, runs: Callable[[int], int], monkeypatch: pytest.MonkeyPatch, figures: Counter[str]
) -> None:
    """Three writers, the same keys ascending, descending and shuffled, over several chunks each.

    Before the fix PostgreSQL failed one of them with "deadlock detected" in most trials.
    """
    small_chunks(monkeypatch, 400)
    db = await open_db(fresh_url)
    try:
        for trial in range(runs(6)):
            keys = list(range((2000, 900)[trial % 2]))  # 5 chunks or 3; large and small writes may differ
            orders = [keys, keys[::-1], random.Random(trial).sample(keys, len(keys))]

            async def write(task: int, order: list[int]) -> int:
                async with db.get_session() as session:
                    return await OHLCVRepository(session).upsert_many([task_bar(task, slot) for slot in order])

            results = await asyncio.gather(*(write(t, o) for t, o in enumerate(orders)), return_exceptions=True)
            assert [r for r in results if isinstance(r, BaseException)] == []
            figures[f"different-order batch trials ({db.backend})"] += 1
        assert await bar_counts(db) == {"BTCUSDT": 2000}
    finally:
        await db.drop_all()
        await db.disconnect()
