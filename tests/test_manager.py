"""DatabaseManager: lifecycle, sessions, health, SQLite set-up, secrets."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL

from factories import bar, bars
from tradestore import DatabaseManager, Decision, DecisionRepository, OHLCVRepository, SystemEventRepository
from tradestore.engine import build_engine
from tradestore.errors import (
    ConfigurationError,
    DuplicateError,
    NotConnectedError,
    StorageBusyError,
    StorageError,
    TransactionAbortedError,
)
from tradestore.models import OHLCVModel


async def count(db: DatabaseManager) -> int:
    async with db.get_session() as session:
        return int(await session.scalar(select(func.count()).select_from(OHLCVModel)) or 0)


async def test_session_commits_on_success_and_rolls_back_on_error(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(3))
    with pytest.raises(RuntimeError):
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many([bar(10)])
            raise RuntimeError("strategy crashed")
    assert await count(db) == 3
    async with db.get_session() as session:  # still usable
        await OHLCVRepository(session).upsert_many([bar(11)])
    assert await count(db) == 4


async def _record_twice(db: DatabaseManager, decision: Decision, *, nested: bool) -> None:
    """Write bars, then record ``decision`` twice in the same session, catching the duplicate."""
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(3))
        repo = DecisionRepository(session)
        await repo.record(decision)
        with pytest.raises(DuplicateError):
            if nested:
                async with session.begin_nested():  # the failure is undone with its savepoint
                    await repo.record(decision)
            else:
                await repo.record(decision)


async def test_a_caught_error_never_ends_a_session_as_if_its_writes_were_kept(
    db: DatabaseManager, backend: str
) -> None:
    decision = Decision("bot", "BTCUSDT", "buy", datetime(2024, 1, 1, tzinfo=UTC))
    if backend == "sqlite":  # SQLite keeps the transaction: everything before the error is committed
        await _record_twice(db, decision, nested=False)
        assert await count(db) == 3
        return
    # PostgreSQL aborted the transaction at the failed statement: its commit would keep nothing
    with pytest.raises(TransactionAbortedError, match="begin_nested"):
        await _record_twice(db, decision, nested=False)
    assert await count(db) == 0
    with pytest.raises(TransactionAbortedError):  # and any later statement says so too
        async with db.get_session() as session:
            repo = DecisionRepository(session)
            await repo.record(decision)
            with pytest.raises(DuplicateError):
                await repo.record(decision)
            await OHLCVRepository(session).upsert_many(bars(3))
    await _record_twice(db, decision.__class__(**{**vars(decision), "action": "sell"}), nested=True)
    assert await count(db) == 3  # caught inside a savepoint: the rest of the session is kept
    async with db.get_session(readonly=True) as session:  # a read-only one has nothing to lose: it just ends
        with pytest.raises(Exception, match="no_such_table"):
            await session.execute(text("SELECT * FROM no_such_table"))
    assert (await db.health_check())["status"] == "healthy"


async def test_a_savepoint_undoes_the_single_row_writes_made_inside_it(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        events = SystemEventRepository(session)
        await events.log_event("tick", "info", "before")
        with pytest.raises(RuntimeError):
            async with session.begin_nested():
                await events.log_event("tick", "info", "inside, undone")
                raise RuntimeError("strategy crashed")
        await events.log_event("tick", "info", "after")
    async with db.get_session(readonly=True) as session:
        kept = [e.message for e in await SystemEventRepository(session).get_recent_events(limit=10)]
    assert sorted(kept) == ["after", "before"]


async def test_manager_stays_usable_after_a_database_error(db: DatabaseManager) -> None:
    with pytest.raises(Exception, match="no_such_table"):
        async with db.get_session() as session:
            await session.execute(text("SELECT * FROM no_such_table"))
    assert (await db.health_check())["status"] == "healthy"
    assert await count(db) == 0


async def test_lifecycle_guards(url: URL | str) -> None:
    manager = DatabaseManager(url)
    with pytest.raises(NotConnectedError, match=r"await manager.connect\(\)"):
        async with manager.get_session():
            pass
    with pytest.raises(NotConnectedError, match="connect"):
        _ = manager.engine
    with pytest.raises(NotConnectedError):
        await manager.create_all()
    assert manager._engine is None
    await manager.connect()
    await manager.connect()  # idempotent
    assert manager.engine is manager._engine and manager.is_connected
    await manager.disconnect()
    await manager.disconnect()
    assert not manager.is_connected
    with pytest.raises(NotConnectedError):  # a programming mistake: never a TransientError to retry
        async with manager.get_session():
            pass
    async with DatabaseManager(url) as again:
        assert (await again.health_check())["status"] == "healthy"


async def test_seed_style_fixture_with_private_engine(url: URL | str) -> None:
    from tradestore.models import Base

    manager = DatabaseManager(url)
    await manager.connect()
    async with manager._engine.begin() as conn:  # type: ignore[union-attr]
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    async with manager.get_session() as session:
        assert await OHLCVRepository(session).upsert_many(bars(2)) == 2
    await manager.drop_all()
    await manager.disconnect()


async def test_health_check_reports_the_backend(db: DatabaseManager, backend: str) -> None:
    report = await db.health_check()
    assert report["status"] == "healthy" and report["backend"] == backend
    assert report["latency_ms"] >= 0 and report["server_version"]
    assert "password" not in str(report)


async def test_health_check_of_a_dead_database_does_not_raise() -> None:
    manager = DatabaseManager("postgresql://bot:s3cr3t-pw@127.0.0.1:1/nowhere")
    with pytest.raises(StorageError) as caught:
        await manager.connect()
    assert "s3cr3t-pw" not in str(caught.value)
    report = await manager.health_check()
    assert report["status"] == "unhealthy" and "s3cr3t-pw" not in str(report)


async def test_in_memory_sqlite_is_one_database_for_every_session() -> None:
    async with DatabaseManager("sqlite+aiosqlite:///:memory:") as db:
        await db.create_all()

        async def write(minute: int) -> None:
            async with db.get_session() as session:
                await OHLCVRepository(session).upsert_many([bar(minute)])

        async def fail() -> None:
            async with db.get_session() as session:
                await OHLCVRepository(session).upsert_many([bar(99)])
                raise RuntimeError("rolled back")

        results = await asyncio.gather(*(write(m) for m in range(10)), fail(), return_exceptions=True)
        assert sum(isinstance(r, RuntimeError) for r in results) == 1
        assert await count(db) == 10  # the rollback erased nobody else's commit
        async with db.get_session():
            with pytest.raises(StorageError, match="in-memory"):
                async with db.get_session():
                    pass


async def test_sqlite_file_setup(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "bot.db"
    old = os.umask(0)
    try:
        async with DatabaseManager(f"sqlite:///{path}") as db:
            await db.create_all()
            async with db.get_session() as session:
                await OHLCVRepository(session).upsert_many(bars(2))
                pragmas = {
                    name: (await session.execute(text(f"PRAGMA {name}"))).scalar()
                    for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "cache_size")
                }
            report = await db.health_check()
    finally:
        os.umask(old)
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": 5000,
        "cache_size": -65536,
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert report["size_bytes"] >= path.stat().st_size > 0


async def test_default_url_creates_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRADESTORE_DATABASE_URL", raising=False)
    async with DatabaseManager() as db:
        assert db.database == "sqlite+aiosqlite:///data/tradestore.db"
    assert (tmp_path / "data" / "tradestore.db").exists()
    monkeypatch.setenv("TRADESTORE_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    assert DatabaseManager().database == f"sqlite+aiosqlite:///{tmp_path}/env.db"


def test_unsupported_scheme_names_the_supported_ones() -> None:
    with pytest.raises(ConfigurationError, match="postgresql\\+asyncpg://") as caught:
        DatabaseManager("mysql://root:hunter2@localhost/db")
    assert "hunter2" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bot:p%40ss%3A%2Fw0rd%25@db.example:5432/trading",
        "postgresql://bot@db.example/trading?password=p@ss:/w0rd%25",
    ],
)
def test_password_never_printed(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    manager = DatabaseManager(url, echo=True)
    shown = [repr(manager), str(manager), manager.database]
    for text_ in shown:
        assert "w0rd" not in text_ and "***" in text_
    assert manager.url.password == "p@ss:/w0rd%"


async def test_a_read_on_a_killed_connection_is_typed_and_recovers(pg_url: URL) -> None:
    import asyncpg

    from tradestore.errors import ConnectionLostError

    async with DatabaseManager(pg_url) as db:
        await db.drop_all()
        await db.create_all()
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many(bars(10))
        with pytest.raises(ConnectionLostError):  # the commit at the end cannot happen either
            async with db.get_session() as session:
                pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar()
                admin = await asyncpg.connect(pg_url.set(drivername="postgresql").render_as_string(hide_password=False))
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
                await admin.close()
                try:
                    await OHLCVRepository(session).get_latest("BTCUSDT", "1m")  # through the driver itself
                except Exception as exc:
                    raised = exc
        assert isinstance(raised, ConnectionLostError), repr(raised)
        async with db.get_session() as session:
            assert len(await OHLCVRepository(session).get_latest("BTCUSDT", "1m")) == 10
        await db.drop_all()


async def test_concurrent_connects_build_one_engine(url: URL | str, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    real = build_engine

    def counting(*args: Any, **kwargs: Any) -> Any:
        engine = real(*args, **kwargs)
        built.append(engine)
        return engine

    monkeypatch.setattr("tradestore.health.build_engine", counting)  # what open_engine() builds with
    manager = DatabaseManager(url)
    try:
        await asyncio.gather(*(manager.connect() for _ in range(5)))
        assert len(built) == 1 and manager.engine is built[0]
    finally:
        await manager.disconnect()


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"pool_size": 0}, "pool_size"),
        ({"pool_size": -1}, "pool_size"),
        ({"pool_size": "5"}, "pool_size"),
        ({"pool_size": True}, "pool_size"),
        ({"max_overflow": -1}, "max_overflow"),
        ({"max_overflow": 2.5}, "max_overflow"),
        ({"exchange": ""}, "exchange"),
    ],
)
def test_unusable_settings_are_configuration_errors(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        DatabaseManager("sqlite+aiosqlite:///:memory:", **settings)


async def test_a_task_started_inside_an_in_memory_session_gets_its_own_later() -> None:
    async with DatabaseManager("sqlite+aiosqlite:///:memory:") as db:
        await db.create_all()

        async def later() -> int:
            async with db.get_session() as session:
                await OHLCVRepository(session).upsert_many([bar(1)])
            return await count(db)

        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many([bar(0)])
            task = asyncio.create_task(later())  # inherits the session's context
            await asyncio.sleep(0.05)
            assert not task.done()  # it waits its turn ...
        assert await task == 2  # ... and gets it once the outer session has ended


async def test_a_task_awaited_inside_an_in_memory_session_fails_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tradestore.manager.SQLITE_BUSY_TIMEOUT_MS", 100)
    async with DatabaseManager("sqlite+aiosqlite:///:memory:") as db:
        await db.create_all()

        async def inner() -> None:
            async with db.get_session():
                pass

        async with db.get_session():
            with pytest.raises(StorageBusyError, match="inside a session"):
                await asyncio.create_task(inner())
        async with db.get_session():  # the manager is still usable
            pass


async def test_the_default_exchange_is_the_managers(db_on_kraken: DatabaseManager) -> None:
    db = db_on_kraken
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(bars(3, exchange="kraken"))
        assert repo.exchange == "kraken"
        assert len(await repo.get_latest("BTCUSDT", "1m")) == 3
        assert await repo.get_latest("BTCUSDT", "1m", exchange="binance") == []


async def test_a_committed_session_is_not_rolled_back_again(
    db: DatabaseManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool rolls back only a connection handed back inside a transaction."""
    from sqlalchemy.engine.interfaces import AdaptedConnection

    rollbacks: list[str] = []
    adapter: Any = type(await _adapter(db))
    original = adapter.rollback

    def counted(self: AdaptedConnection) -> None:
        rollbacks.append("rollback")
        original(self)

    monkeypatch.setattr(adapter, "rollback", counted)
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(3))
    assert rollbacks == []
    with pytest.raises(RuntimeError):
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many(bars(3, symbol="ETHUSDT"))
            raise RuntimeError("the bot failed")
    assert rollbacks == ["rollback"]
    async with db.get_session() as session:
        assert await session.scalar(select(func.count()).select_from(OHLCVModel)) == 3


async def _adapter(db: DatabaseManager) -> object:
    async with db.engine.connect() as conn:
        return (await conn.get_raw_connection()).dbapi_connection


@pytest.mark.postgres
async def test_a_read_only_connection_gets_a_read_only_transaction(pg_url: URL) -> None:
    """The transaction begun at checkout is begun again when the connection asks for other settings."""
    async with DatabaseManager(pg_url) as db:
        engine = db.engine.execution_options(postgresql_readonly=True)
        async with engine.connect() as conn:
            assert await conn.scalar(text("SHOW transaction_read_only")) == "on"
        async with db.engine.connect() as conn:
            assert await conn.scalar(text("SHOW transaction_read_only")) == "off"
