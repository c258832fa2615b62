"""tradestore.engine: pool settings, echo, and the typed errors of the engine boundary."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from factories import bars
from tradestore import DatabaseManager, OHLCVRepository, SystemEventRepository, TradeRepository
from tradestore import engine as engine_module
from tradestore.engine import build_engine, check_pool
from tradestore.errors import ConfigurationError, StorageBusyError, TransientError
from tradestore.urls import resolve


@pytest.mark.parametrize(("pool_size", "max_overflow"), [(0, 0), (-3, 10), (5, -1), (None, 1), (5, "10")])
def test_a_pool_that_cannot_work_is_refused(pool_size: object, max_overflow: object) -> None:
    with pytest.raises(ConfigurationError, match=r"pool_size|max_overflow"):
        check_pool(pool_size, max_overflow)


def test_build_engine_checks_the_pool_too() -> None:
    with pytest.raises(ConfigurationError, match="pool_size"):
        build_engine(resolve("sqlite:///:memory:"), pool_size=0, max_overflow=0, echo=False)
    assert check_pool(1, 0) == (1, 0)


async def test_echo_logs_the_reads_that_go_to_the_driver_directly(
    url: URL | str, caplog: pytest.LogCaptureFixture
) -> None:
    async with DatabaseManager(url, echo=True) as db:
        await db.drop_all()
        await db.create_all()
        try:
            async with db.get_session() as session:
                repo = OHLCVRepository(session)
                await repo.upsert_many(bars(5))
                caplog.clear()
                with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
                    got = await repo.get_latest("BTCUSDT", "1m", limit=3)
                    await repo.get_gaps("BTCUSDT", "1m")
            assert len(got) == 3
            logged = [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy.engine")]
            # get_latest reads through the driver itself: its SELECT and its parameters are logged.
            assert any("FROM ohlcv" in m and "ORDER BY" in m and "LIMIT" in m for m in logged), logged
            assert any(m.startswith("[driver]") and "BTCUSDT" in m for m in logged), logged
        finally:
            await db.drop_all()


async def test_a_busy_sqlite_file_raises_an_operational_error_seed_code_catches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "busy.db"
    async with DatabaseManager(f"sqlite:///{path}") as db:
        await db.create_all()
        holder = sqlite3.connect(path)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with pytest.raises(OperationalError) as caught:  # the seed's `except OperationalError`
                async with db.get_session() as session:
                    await TradeRepository(session).get_recent()
            assert isinstance(caught.value, StorageBusyError) and isinstance(caught.value, TransientError)
            assert "100 ms" in str(caught.value)
            assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        finally:
            holder.rollback()
            holder.close()
        async with db.get_session() as session:  # the lock is gone: the same call works
            await session.execute(text("SELECT 1"))


async def test_a_sqlite_unit_of_work_that_need_not_wait_stays_on_the_event_loops_thread(tmp_path: Path) -> None:
    """Turn and lock free: BEGIN, statement and COMMIT run in place; a taken lock is waited for in the thread."""
    path = tmp_path / "here.db"
    async with DatabaseManager(f"sqlite:///{path}", pool_size=1, max_overflow=0) as db:
        await db.create_all()
        async with db.get_session() as session:
            driver: Any = (await (await session.connection()).get_raw_connection()).driver_connection
            sqlite_connection = driver._conn
        seen: list[tuple[bool, str]] = []
        loop_thread = threading.get_ident()
        sqlite_connection.set_trace_callback(lambda sql: seen.append((threading.get_ident() == loop_thread, sql)))

        async with db.get_session() as session:
            await SystemEventRepository(session).log_event("tick", "info", "in place")
        assert [(here, sql.split()[0]) for here, sql in seen if not sql.startswith("PRAGMA")] == [
            (True, "BEGIN"),
            (True, "INSERT"),
            (True, "COMMIT"),
        ]

        seen.clear()
        holder = sqlite3.connect(path)
        holder.execute("BEGIN IMMEDIATE")  # another program holds the write lock for a moment
        asyncio.get_running_loop().call_later(0.2, holder.commit)
        async with db.get_session() as session:
            await SystemEventRepository(session).log_event("tick", "info", "after a wait")
        holder.close()
        statements = [(here, sql.split()[0]) for here, sql in seen if not sql.startswith("PRAGMA")]
        assert statements[0] == (True, "BEGIN")  # tried in place, found the lock taken
        assert (False, "BEGIN") in statements and statements[-1] == (False, "COMMIT")  # waited in the thread
        async with db.get_session(readonly=True) as session:
            assert await session.scalar(text("SELECT count(*) FROM system_events")) == 2
