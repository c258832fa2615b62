"""Guarantee 2: a lock held too long gives a bounded wait and a typed, retryable error.

SQLite: another *process* holds the write lock past the busy timeout. PostgreSQL: another
connection holds the table lock past ``lock_timeout``, and a real deadlock between two
sessions. Each raises ``StorageBusyError`` with the driver's error chained, writes nothing,
and the same write succeeds once the lock is gone.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import text, update

from factories import T0, bars
from support import bar_counts, driver_dsn, open_db
from tradestore import OHLCVRepository
from tradestore import engine as engine_module
from tradestore.errors import StorageBusyError, StorageError, TransientError
from tradestore.models import OHLCVModel

BUSY_MS = 400

_HOLD_SQLITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


async def test_a_lock_held_past_the_timeout_raises_storage_busy_then_the_write_succeeds(
    fresh_url: str, monkeypatch: pytest.MonkeyPatch, figures: Counter[str]
) -> None:
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", BUSY_MS)
    db = await open_db(fresh_url)
    holder: subprocess.Popen[str] | None = None
    pg_holder: asyncpg.Connection | None = None
    try:
        if db.backend == "sqlite":
            assert db.url.database is not None
            holder = subprocess.Popen(
                [sys.executable, "-c", _HOLD_SQLITE_LOCK, db.url.database],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        else:
            pg_holder = await asyncpg.connect(driver_dsn(db))
            await pg_holder.execute("BEGIN; LOCK TABLE ohlcv IN EXCLUSIVE MODE")

        started = time.perf_counter()
        with pytest.raises(StorageBusyError) as caught:
            async with db.get_session() as session:
                if db.backend == "postgresql":
                    await session.execute(text("SELECT set_config('lock_timeout', :ms, true)"), {"ms": f"{BUSY_MS}ms"})
                await OHLCVRepository(session).upsert_many(bars(10))
        waited = time.perf_counter() - started

        assert BUSY_MS / 1000 * 0.8 <= waited < BUSY_MS / 1000 + 3, waited  # about the timeout, never a hang
        error = caught.value
        assert isinstance(error, TransientError) and isinstance(error, StorageError)
        assert error.__cause__ is not None
        if db.backend == "sqlite":
            assert isinstance(error.__cause__, sqlite3.OperationalError)
            assert "database is locked" in str(error.__cause__)
            assert f"{BUSY_MS} ms" in str(error)
        else:
            assert getattr(error.__cause__, "sqlstate", None) == "55P03"  # lock_not_available

        if holder is not None:
            holder.communicate("release\n", timeout=10)
        if pg_holder is not None:
            await pg_holder.execute("ROLLBACK")
        assert await bar_counts(db) == {}  # the refused write left nothing
        async with db.get_session() as session:
            assert await OHLCVRepository(session).upsert_many(bars(10)) == 10
        assert await bar_counts(db) == {"BTCUSDT": 10}
        figures[f"busy-lock waits ended by StorageBusyError ({db.backend})"] += 1
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait()
        if pg_holder is not None:
            await pg_holder.close()
        await db.drop_all()
        await db.disconnect()


async def test_a_postgres_deadlock_between_two_sessions_is_a_storage_busy_error(pg_url: object) -> None:
    """Two sessions update rows 1 then 2, and 2 then 1: the server fails one, as ``StorageBusyError``."""
    db = await open_db(pg_url, pool_size=2)
    try:
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many(bars(2))
        both_hold_one = asyncio.Barrier(2)

        async def cross(first: int, second: int) -> None:
            async with db.get_session() as session:
                for n, minute in enumerate((first, second)):
                    await session.execute(
                        update(OHLCVModel)
                        .where(OHLCVModel.time == T0 + timedelta(minutes=minute))
                        .values(close=OHLCVModel.close)
                    )
                    if n == 0:
                        await both_hold_one.wait()

        results = await asyncio.gather(cross(0, 1), cross(1, 0), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert len(failures) == 1 and isinstance(failures[0], StorageBusyError), results
        assert getattr(failures[0].__cause__, "sqlstate", None) == "40P01"  # deadlock_detected
        assert (await db.health_check())["status"] == "healthy"
    finally:
        await db.drop_all()
        await db.disconnect()
