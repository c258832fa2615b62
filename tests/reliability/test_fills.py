"""The fill ledger under concurrency and crashes, on a SQLite file and on PostgreSQL (issue 10).

* 50 tasks record the same stream of 200 fills at once, each in its own order: every fill is
  stored once and every order's figures equal the plain-Python reference of ledger.py. A
  transaction that fails with ``StorageBusyError`` (rolled back whole) is retried, as a bot does;
  the figures count the retries.
* A process recording the stream is killed with SIGKILL at a random moment; a new process
  replays the whole stream from the start; the store ends as a run with no crash does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ledger import FILLS, create_orders, expected, state, stream
from support import open_db, pg_idle_in_transaction, sqlite_integrity
from tradestore import DatabaseManager, OrderRepository
from tradestore.errors import StorageBusyError

CHILD = Path(__file__).with_name("fills_child.py")
TASKS = 50


async def test_50_tasks_record_the_same_200_fills(fresh_url: str, figures: Counter[str]) -> None:
    db = await open_db(fresh_url)
    try:
        await create_orders(db, "race")
        _, fills = stream("race")
        start = asyncio.Event()

        async def record_all(task: int) -> int:
            mine = list(fills)
            random.Random(task).shuffle(mine)
            await start.wait()
            new = 0
            for fill in mine:
                while True:
                    try:
                        async with db.get_session() as session:
                            new += await OrderRepository(session).record_fill(fill)
                        break
                    except StorageBusyError:
                        # Rolled back whole, as documented: a bot retries. SQLite's busy handler
                        # is not fair, so under load one of 15 connections may wait past 5 s.
                        figures[f"fill transactions retried after StorageBusyError ({db.backend})"] += 1
            return new

        tasks = [asyncio.create_task(record_all(i)) for i in range(TASKS)]
        await asyncio.sleep(0)
        start.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert sum(r for r in results if isinstance(r, int)) == FILLS  # each fill was new exactly once
        assert await state(db, "race") == expected("race")
        if db.backend == "sqlite":
            assert await sqlite_integrity(db) == "ok"
        figures[f"fills recorded by 50 concurrent tasks ({db.backend})"] += TASKS * len(fills)
    finally:
        await db.drop_all()
        await db.disconnect()


async def _run_child(url: str, prefix: str, kill_after: float | None) -> tuple[int, float]:
    """Run the child; kill it ``kill_after`` seconds after it is ready, or let it finish.

    Returns the fills it reported recorded and the seconds it ran after ``ready``.
    """
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        url,
        prefix,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(CHILD.parents[1])},  # ledger.py lives in tests/
    )
    assert child.stdout is not None
    try:
        async with asyncio.timeout(120):
            assert (await child.stdout.readline()).strip() == b"ready"
            ready = time.perf_counter()
            if kill_after is None:
                out, _ = await child.communicate()
                assert child.returncode == 0 and out.decode().splitlines()[-1] == "done"
            else:
                await asyncio.sleep(kill_after)
                with contextlib.suppress(ProcessLookupError):  # it may have finished just before
                    child.send_signal(signal.SIGKILL)
                out, _ = await child.communicate()
                assert child.returncode in (-signal.SIGKILL, 0)
            elapsed = time.perf_counter() - ready
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    return sum(line.startswith("recorded ") for line in out.decode().splitlines()), elapsed


async def test_sigkill_while_recording_then_replay_ends_as_without_a_crash(
    fresh_url: str, runs: Callable[[int], int], figures: Counter[str]
) -> None:
    db = await open_db(fresh_url)
    backend = db.backend
    await db.disconnect()
    try:
        # The run with no crash, which also measures how long the stream takes here.
        _, whole = await _run_child(fresh_url, "clean", None)
        check = DatabaseManager(fresh_url)
        await check.connect()
        try:
            clean = await state(check, "clean")
        finally:
            await check.disconnect()
        assert clean == expected("clean")

        rng = random.Random()
        for trial in range(runs(8)):
            prefix = f"k{trial}"
            recorded, _ = await _run_child(fresh_url, prefix, rng.uniform(0, 0.9 * whole))
            await _run_child(fresh_url, prefix, None)  # a new process replays the whole stream

            check = DatabaseManager(fresh_url)
            await check.connect()
            try:
                if backend == "sqlite":
                    assert await sqlite_integrity(check) == "ok"
                after = await state(check, prefix)
            finally:
                await check.disconnect()
            assert _renamed(after, prefix) == _renamed(clean, "clean"), f"trial {trial}"
            figures[f"fill-ledger SIGKILL trials ({backend})"] += 1
            figures[f"fills reported recorded before the kills ({backend})"] += recorded
    finally:
        check = DatabaseManager(fresh_url)
        await check.connect()
        try:
            if backend == "postgresql":
                assert await pg_idle_in_transaction(check) == 0
            await check.drop_all()
        finally:
            await check.disconnect()


def _renamed(found: dict[str, object], prefix: str) -> dict[str, object]:
    """The state with the order names' prefix taken off, to compare two runs."""
    return {name.removeprefix(prefix): value for name, value in found.items()}
