"""Guarantee 3: on ``sqlite+aiosqlite:///:memory:`` one task's rollback never erases another's commit.

The in-memory database is one connection: a plain StaticPool would share one transaction
between every session. tradestore makes sessions take turns on it instead.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable

import pytest

from factories import bar
from support import bar_counts
from tradestore import DatabaseManager, OHLCVRepository
from tradestore.errors import StorageError

MEMORY = "sqlite+aiosqlite:///:memory:"


class Planned(Exception):
    """A failure the test asks for."""


async def test_rollbacks_and_cancellations_never_erase_other_commits(
    runs: Callable[[int], int], figures: Counter[str]
) -> None:
    tasks = runs(200)
    rng = random.Random(4)
    plan = [rng.choice(("commit", "commit", "raise", "cancel")) for _ in range(tasks)]
    async with DatabaseManager(MEMORY) as db:
        await db.create_all()

        async def work(i: int) -> None:
            async with db.get_session() as session:
                repo = OHLCVRepository(session)
                await repo.upsert_many([bar(i, symbol=f"S{i}"), bar(i + 1, symbol=f"S{i}")])
                await asyncio.sleep(0)  # give every other task the chance to interleave
                await repo.get_latest(f"S{i}", "1m")
                if plan[i] == "raise":
                    raise Planned(i)
                if plan[i] == "cancel":
                    await asyncio.sleep(3600)  # cancelled by the test while inside the session

        running = [asyncio.create_task(work(i)) for i in range(tasks)]
        await asyncio.sleep(0.2)
        for i, task in enumerate(running):
            if plan[i] == "cancel":
                task.cancel()
        results = await asyncio.gather(*running, return_exceptions=True)

        for i, result in enumerate(results):
            expected = {"commit": type(None), "raise": Planned, "cancel": asyncio.CancelledError}[plan[i]]
            assert isinstance(result, expected), (i, plan[i], result)
        committed = {f"S{i}": 2 for i in range(tasks) if plan[i] == "commit"}
        assert await bar_counts(db) == committed
        figures["in-memory SQLite sessions (commit/raise/cancel mixed)"] += tasks
        figures["in-memory SQLite rollbacks that erased nothing else"] += tasks - len(committed)


async def test_a_nested_session_on_the_in_memory_database_is_refused_not_deadlocked() -> None:
    async with DatabaseManager(MEMORY) as db:
        await db.create_all()
        async with db.get_session() as outer:
            with pytest.raises(StorageError, match="in-memory"):
                async with asyncio.timeout(5), db.get_session():
                    pass
            await OHLCVRepository(outer).upsert_many([bar(0)])
        assert await bar_counts(db) == {"BTCUSDT": 1}
