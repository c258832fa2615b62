"""Guarantee 4: a process killed with SIGKILL at a random moment loses no committed batch and
leaves no partial one, on a SQLite file and on PostgreSQL.

A child (crash_child.py) upserts 20,000-bar batches, one transaction each, and reports each
commit; the test kills it at a random moment, then opens the database again and checks it.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from support import bar_counts, open_db, pg_idle_in_transaction, sqlite_integrity
from tradestore import DatabaseManager

CHILD = Path(__file__).with_name("crash_child.py")
BATCH = 20_000


async def _run_child(url: str, prefix: str, kill_after: float | None, until_commits: int = 0) -> tuple[set[str], float]:
    """Start the child, kill it ``kill_after`` seconds after it is ready (or after
    ``until_commits`` commits); return the batches it reported committed and the seconds it wrote."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), url, prefix, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    committed: set[str] = set()
    try:
        async with asyncio.timeout(60):
            assert (await child.stdout.readline()).strip() == b"ready"
            ready = time.perf_counter()
            if kill_after is None:
                while len(committed) < until_commits:
                    committed.add((await child.stdout.readline()).decode().split()[1])
            else:
                await asyncio.sleep(kill_after)
            elapsed = time.perf_counter() - ready
            child.send_signal(signal.SIGKILL)
            rest, _ = await child.communicate()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == -signal.SIGKILL
    committed.update(line.split()[1] for line in rest.decode().splitlines() if line.startswith("committed "))
    return committed, elapsed


async def test_sigkill_at_a_random_moment_keeps_every_batch_whole(
    fresh_url: str, runs: Callable[[int], int], figures: Counter[str]
) -> None:
    trials = runs(40)
    db = await open_db(fresh_url)
    backend = db.backend
    await db.disconnect()
    rng = random.Random()

    # Calibrate: how long one batch takes here, so the kills spread over whole batches.
    _, two_batches = await _run_child(fresh_url, "calibrate", None, until_commits=2)
    window = 1.5 * two_batches  # about three batches: before, inside, at the commit of, between batches

    reported: set[str] = set()
    for trial in range(trials):
        committed, _ = await _run_child(fresh_url, f"T{trial}", rng.uniform(0, window))
        reported |= committed

        check = DatabaseManager(fresh_url)
        await check.connect()  # the database always opens again
        try:
            if backend == "sqlite":
                assert await sqlite_integrity(check) == "ok"
            counts = await bar_counts(check)
            partial = {symbol: n for symbol, n in counts.items() if n != BATCH}
            assert partial == {}, f"trial {trial}: batches with some but not all rows: {partial}"
            missing = [symbol for symbol in committed if counts.get(symbol) != BATCH]
            assert missing == [], f"trial {trial}: reported committed but not all there: {missing}"
            figures[f"SIGKILL trials ({backend})"] += 1
            figures[f"batches found whole after the kills ({backend})"] = len(counts)
            if any(symbol.startswith(f"T{trial}-") for symbol in counts.keys() - committed):
                figures[f"kills that landed between commit and its report ({backend})"] += 1
        finally:
            await check.disconnect()

    check = DatabaseManager(fresh_url)
    await check.connect()
    try:
        if backend == "postgresql":
            assert await pg_idle_in_transaction(check) == 0
        figures[f"bars in whole batches after the kills ({backend})"] = sum((await bar_counts(check)).values())
        figures[f"batches reported committed, all found whole ({backend})"] = len(reported)
        await check.drop_all()
    finally:
        await check.disconnect()
