"""Guarantee 6: PostgreSQL restarts and dropped connections.

Between operations, every pooled connection is killed (``pg_terminate_backend``, or a TCP
proxy that cuts every connection or refuses new ones, standing in for a server that is
down): the next operations all succeed. During a write transaction: a typed
``ConnectionLostError``, 0 partial rows, and the next write and ``health_check()`` succeed.
These are PostgreSQL's by nature: an embedded SQLite database has no connection to lose.

The real restart (``pg_ctlcluster … restart``) runs only with ``--pg-restart``: other runs
sharing the server would fail meanwhile. It leaves the server running, as it found it.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from factories import bars, trade
from support import bar_counts, open_db, pg_idle_in_transaction, pg_terminate_pool
from tcpproxy import TcpProxy, running_proxy
from tradestore import DatabaseManager, OHLCVRepository, TradeRepository
from tradestore.errors import ConnectionLostError, TransientError

pytestmark = pytest.mark.postgres
POOL = 3


@pytest.fixture
async def pg(pg_url: URL) -> AsyncIterator[DatabaseManager]:
    db = await open_db(pg_url, pool_size=POOL, max_overflow=0)
    yield db
    await db.drop_all()
    await db.disconnect()


async def _fill_pool(db: DatabaseManager) -> None:
    """Open every pooled connection at once, so each one is there to be killed."""
    ready = asyncio.Barrier(POOL)

    async def hold() -> None:
        async with db.get_session() as session:
            await session.execute(text("SELECT 1"))
            await ready.wait()

    await asyncio.gather(*(hold() for _ in range(POOL)))


async def _ten_operations(db: DatabaseManager, tag: str) -> None:
    """Five writes and five reads, each in its own session; every one must succeed."""
    for i in range(5):
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many(bars(20, symbol=f"{tag}-{i}"))
        async with db.get_session() as session:
            assert len(await OHLCVRepository(session).get_latest(f"{tag}-{i}", "1m")) == 20


async def test_every_pooled_connection_terminated_between_operations(
    pg: DatabaseManager, figures: Counter[str]
) -> None:
    for round_ in range(3):
        await _fill_pool(pg)
        assert await pg_terminate_pool(pg) == POOL
        await _ten_operations(pg, f"r{round_}")
        figures["operations after pg_terminate_backend of the whole pool, all succeeded"] += 10


async def test_connection_terminated_inside_a_write_transaction(pg: DatabaseManager, figures: Counter[str]) -> None:
    with pytest.raises(ConnectionLostError) as caught:
        async with pg.get_session() as session:
            repo = OHLCVRepository(session)
            await repo.upsert_many(bars(500, symbol="HALF"))
            await pg_terminate_pool(pg)
            await repo.upsert_many(bars(500, symbol="OTHER-HALF"))
    assert isinstance(caught.value, TransientError)
    assert caught.value.__cause__ is not None  # the driver's error, chained
    assert "connection was lost" in str(caught.value)
    assert await bar_counts(pg) == {}  # nothing of the broken transaction
    assert (await pg.health_check())["status"] == "healthy"
    async with pg.get_session() as session:
        assert await OHLCVRepository(session).upsert_many(bars(10)) == 10
    figures["connections killed inside a write transaction: typed error, 0 rows"] += 1


async def test_connection_terminated_just_before_commit(pg: DatabaseManager) -> None:
    with pytest.raises(ConnectionLostError):
        async with pg.get_session() as session:
            await TradeRepository(session).insert(trade(1))
            await pg_terminate_pool(pg)
    async with pg.get_session() as session:
        assert await TradeRepository(session).get_recent() == []
        await TradeRepository(session).insert(trade(2))
    assert (await pg.health_check())["status"] == "healthy"


async def test_dropped_network_and_a_server_that_is_down(pg_url: URL, figures: Counter[str]) -> None:
    async with running_proxy(pg_url.host or "127.0.0.1", pg_url.port or 5432) as proxy:
        db = await open_db(pg_url.set(host="127.0.0.1", port=proxy.port), pool_size=POOL, max_overflow=0)
        try:
            # Cut between operations: the next ten succeed.
            await _fill_pool(db)
            assert proxy.drop() == POOL
            await _ten_operations(db, "after-drop")

            # Cut inside a write transaction: typed error, nothing half-written.
            with pytest.raises(ConnectionLostError):
                async with db.get_session() as session:
                    await OHLCVRepository(session).upsert_many(bars(300, symbol="CUT"))
                    proxy.drop()
                    await OHLCVRepository(session).upsert_many(bars(300, symbol="CUT-2"))

            # The server is down: each attempt fails at once with the typed error, and the
            # health check reports it without raising.
            await _down_then_up(db, proxy)
            assert "CUT" not in await bar_counts(db)
            assert await pg_idle_in_transaction(db) == 0
            figures["operations after a dropped network / a server back up, all succeeded"] += 20
        finally:
            await db.drop_all()
            await db.disconnect()


async def _down_then_up(db: DatabaseManager, proxy: TcpProxy) -> None:
    proxy.refuse = True
    proxy.drop()
    for _ in range(3):
        with pytest.raises(ConnectionLostError):
            async with db.get_session() as session:
                await OHLCVRepository(session).upsert_many(bars(5, symbol="DOWN"))
    report = await db.health_check()
    assert report["status"] == "unhealthy" and "ConnectionLostError" in report["error"]
    proxy.refuse = False
    await _ten_operations(db, "after-up")
    assert (await db.health_check())["status"] == "healthy"


def _cluster() -> tuple[str, str]:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    return versions[0], "main"


def _ctl(action: str) -> None:
    version, name = _cluster()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action], check=True, capture_output=True
    )


def _server_up() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]).returncode == 0


async def _wait_for_server() -> None:
    for _ in range(120):
        if _server_up():
            return
        await asyncio.sleep(0.25)
    raise AssertionError("PostgreSQL did not come back within 30 s")


@pytest.fixture
def restartable_server(request: pytest.FixtureRequest) -> object:
    if not request.config.getoption("--pg-restart"):
        pytest.skip("restarts the shared PostgreSQL server: run with --pg-restart")
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        pytest.skip("needs pg_ctlcluster for the local server")
    assert _server_up(), "the server must be running before the restart test"
    return object()


async def test_a_real_server_restart(restartable_server: object, pg: DatabaseManager, figures: Counter[str]) -> None:
    try:
        # Between operations.
        await _fill_pool(pg)
        await asyncio.to_thread(_ctl, "restart")
        await _wait_for_server()
        await _ten_operations(pg, "after-restart")

        # During a write transaction.
        with pytest.raises(ConnectionLostError):
            async with pg.get_session() as session:
                await OHLCVRepository(session).upsert_many(bars(300, symbol="MID-RESTART"))
                await asyncio.to_thread(_ctl, "restart")
                await OHLCVRepository(session).upsert_many(bars(300, symbol="MID-RESTART-2"))
        await _wait_for_server()
        assert (await pg.health_check())["status"] == "healthy"
        async with pg.get_session() as session:
            assert await OHLCVRepository(session).upsert_many(bars(10, symbol="NEXT")) == 10
        counts = await bar_counts(pg)
        assert "MID-RESTART" not in counts and "MID-RESTART-2" not in counts
        figures["real PostgreSQL restarts survived"] += 2
    finally:
        if not _server_up():  # put the server back as it was found: running
            await asyncio.to_thread(_ctl, "start")
            await _wait_for_server()
