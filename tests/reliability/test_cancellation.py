"""Guarantee 5: cancelling a multi-chunk upsert, or a unit of single-row calls, at a random moment strands nothing.

A pool of 2 and no overflow, so one leaked connection would block the next write. Half the
trials call ``task.cancel()``, half wrap the session in ``asyncio.timeout``. After each one:
the cancellation reached the caller, 0 rows of the batch are visible unless its commit had
already started (then all of them), no connection is checked out, no PostgreSQL session is
"idle in transaction", and the next write succeeds.

Before the fix, about 5 in 100 cancellations on a SQLite file left the write lock held by a
connection dropped mid-transaction, and the next write failed with "database is locked".
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.pool import QueuePool

from factories import bars
from support import bar_counts, open_db, pg_idle_in_transaction, small_chunks
from tradestore import DatabaseManager, OHLCVRepository, SystemEventRepository
from tradestore.models import SystemEventModel

BATCHES = (5_000, 900)  # ten chunks, or two; large and small writes may take different paths
CHUNK = 500


async def _trial(db: DatabaseManager, symbol: str, rows: int, delay: float, use_timeout: bool) -> tuple[str, bool]:
    """Write ``rows`` bars and interrupt it after ``delay`` s; returns (outcome, commit_started)."""
    commit_started = False
    batch = bars(rows, symbol=symbol)

    async def write() -> None:
        nonlocal commit_started
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many(batch)
            commit_started = True  # the block ends here: get_session commits next

    async def write_with_timeout() -> None:
        async with asyncio.timeout(delay):
            await write()

    if use_timeout:
        try:
            await write_with_timeout()
        except TimeoutError:
            return "timed out", commit_started
        return "finished", commit_started
    task = asyncio.create_task(write())
    await asyncio.sleep(delay)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled", commit_started
    return "finished", commit_started


async def test_cancel_a_multi_chunk_upsert_at_random_moments(
    fresh_url: str, runs: Callable[[int], int], monkeypatch: pytest.MonkeyPatch, figures: Counter[str]
) -> None:
    small_chunks(monkeypatch, CHUNK)
    db = await open_db(fresh_url, pool_size=2, max_overflow=0)
    rng = random.Random()
    try:
        duration = {}
        for rows in BATCHES:
            warm_up = bars(rows, symbol=f"warm-up-{rows}")
            started = time.perf_counter()
            async with db.get_session() as session:
                await OHLCVRepository(session).upsert_many(warm_up)
            duration[rows] = time.perf_counter() - started
        outcomes: Counter[str] = Counter()

        for trial in range(runs(100)):
            symbol, rows = f"C{trial}", BATCHES[trial // 2 % 2]
            delay = rng.uniform(0, duration[rows])
            outcome, commit_started = await _trial(db, symbol, rows, delay, use_timeout=trial % 2 == 1)
            outcomes[outcome] += 1

            pool = db.engine.sync_engine.pool
            assert isinstance(pool, QueuePool) and pool.checkedout() == 0, f"trial {trial}: a connection is out"
            if db.backend == "postgresql":
                assert await pg_idle_in_transaction(db) == 0, f"trial {trial}: a session idles in a transaction"
            async with asyncio.timeout(30):  # a leaked connection or a held lock would block here
                counts = await bar_counts(db)
                async with db.get_session() as session:
                    assert await OHLCVRepository(session).upsert_many(bars(3, symbol=f"next-{trial}")) == 3
            stored = counts.get(symbol, 0)
            if outcome == "finished" or commit_started:
                assert stored == rows, f"trial {trial}: {outcome} after the commit began, {stored} rows"
            else:
                assert stored == 0, f"trial {trial}: {outcome} mid-write left {stored} rows"
                outcomes["interrupted mid-write, 0 rows left"] += 1

        assert outcomes["cancelled"] + outcomes["timed out"] > runs(100) // 3  # most trials really interrupt
        for name, n in outcomes.items():
            figures[f"cancellation trials: {name} ({db.backend})"] += n
    finally:
        await db.drop_all()
        await db.disconnect()


async def test_cancel_a_unit_of_single_row_calls_at_random_moments(
    fresh_url: str, runs: Callable[[int], int], figures: Counter[str]
) -> None:
    """The same for a bot's per-tick units (on PostgreSQL they run on a leased connection): all or nothing.

    Each unit writes three events, commits explicitly, writes three more (every other unit also
    runs a statement through SQLAlchemy first, which takes the lease over), and is cancelled at a
    random moment. Each half is stored whole or not at all, the second only if the unit's block
    ended; the next unit's writes are all stored (a connection handed back inside a transaction
    would turn the next ``BEGIN`` into a ``SAVEPOINT`` and its commit into nothing).
    """
    db = await open_db(fresh_url, pool_size=2, max_overflow=0)
    rng = random.Random()
    calls = 3

    async def unit(tag: str, through_sqlalchemy: bool, written: list[str]) -> None:
        async with db.get_session() as session:
            events = SystemEventRepository(session)
            if through_sqlalchemy:
                await session.execute(select(1))
            for half in ("a", "b"):
                for n in range(calls):
                    await events.log_event("tick", "info", f"{tag} {half}{n}")
                    await asyncio.sleep(0)  # a bot's unit yields between calls (SQLite's may not, otherwise)
                if half == "a":
                    await session.commit()
            written.append("b")  # the block ends here: get_session commits next

    async def stored(tag: str) -> dict[str, int]:
        async with asyncio.timeout(30), db.get_session(readonly=True) as session:
            rows = (
                await session.scalars(select(SystemEventModel.message).where(SystemEventModel.message.like(f"{tag} %")))
            ).all()
        return Counter(message.split()[1][0] for message in rows)

    try:
        started = time.perf_counter()
        for n in range(20):
            await unit(f"warm-up{n}", n % 2 == 1, [])
        duration = (time.perf_counter() - started) / 20
        outcomes: Counter[str] = Counter()
        for trial in range(runs(100)):
            tag, written = f"U{trial}", list[str]()
            task = asyncio.create_task(unit(tag, trial % 2 == 1, written))
            await asyncio.sleep(rng.uniform(0, duration * 1.2))
            task.cancel()
            try:
                await task
                outcomes["finished"] += 1
            except asyncio.CancelledError:
                outcomes["cancelled"] += 1
            pool = db.engine.sync_engine.pool
            assert isinstance(pool, QueuePool) and pool.checkedout() == 0, f"trial {trial}: a connection is out"
            if db.backend == "postgresql":
                assert await pg_idle_in_transaction(db) == 0, f"trial {trial}: a session idles in a transaction"
            halves = await stored(tag)
            assert halves["a"] in (0, calls) and halves["b"] == (calls if written else 0), f"trial {trial}: {halves}"
            if not halves["a"]:
                outcomes["interrupted, 0 events left"] += 1
            await unit(f"next{trial}", trial % 2 == 0, [])
            assert await stored(f"next{trial}") == {"a": calls, "b": calls}, f"trial {trial}: the next unit lost writes"
        assert outcomes["cancelled"] > runs(100) // 3  # most trials really interrupt
        for name, n in outcomes.items():
            figures[f"single-row unit cancellations: {name} ({db.backend})"] += n
    finally:
        await db.drop_all()
        await db.disconnect()


async def test_cancel_sessions_on_the_in_memory_database(
    runs: Callable[[int], int], monkeypatch: pytest.MonkeyPatch, figures: Counter[str]
) -> None:
    """The same on ``:memory:``: its one connection is never left inside a transaction."""
    small_chunks(monkeypatch, CHUNK)
    rng = random.Random()
    async with DatabaseManager("sqlite+aiosqlite:///:memory:") as db:
        await db.create_all()
        for trial in range(runs(50)):
            rows = BATCHES[trial // 2 % 2]
            outcome, commit_started = await _trial(db, f"M{trial}", rows, rng.uniform(0, 0.1), trial % 2 == 1)
            stored = (await bar_counts(db)).get(f"M{trial}", 0)
            assert stored == (rows if outcome == "finished" or commit_started else 0)
            figures["cancellation trials (in-memory sqlite)"] += 1
