"""``DatabaseManager(url, replicas=[...])`` against a real primary and a real streaming standby.

The cluster (``standby_cluster.py``) is started once for the module, in temporary folders on
free ports. Required under CI; elsewhere skipped with the reason when it cannot be started.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.pool import QueuePool

import tradestore.replicas as replicas_module
from factories import bars, trade
from standby_cluster import PASSWORD, StandbyCluster, unavailable
from tcpproxy import running_proxy
from tradestore import DatabaseManager, OHLCVRepository, TradeRepository
from tradestore.errors import ConfigurationError, ReadOnlyError

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def cluster() -> Iterator[StandbyCluster]:
    reason = unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the replica tests are required under CI: {reason}")
        pytest.skip(reason)
    cluster = StandbyCluster()
    try:
        cluster.start()
        cluster.wait_streaming()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
async def db(cluster: StandbyCluster) -> AsyncIterator[DatabaseManager]:
    async with DatabaseManager(cluster.primary.url, replicas=[cluster.standby.url]) as manager:
        await manager.drop_all()
        await manager.create_all()
        await caught_up(manager)  # the tables exist on the standby too
        yield manager
        await manager.drop_all()


async def caught_up(db: DatabaseManager) -> None:
    """Wait until every replica has replayed all the primary's WAL."""
    for _ in range(200):
        report = await db.health_check()
        if all(r["replay_lag_bytes"] == 0 for r in report["replicas"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"replicas did not catch up: {report['replicas']}")


async def server(session: AsyncSession) -> tuple[bool, int]:
    """(in recovery, port) of the server a session is on."""
    row = (await session.execute(text("SELECT pg_is_in_recovery(), inet_server_port()"))).one()
    return bool(row[0]), int(row[1])


async def test_a_write_on_the_primary_is_read_through_the_replica_once_replayed(
    db: DatabaseManager, cluster: StandbyCluster
) -> None:
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(30))
        await TradeRepository(session).insert(trade(1, pnl="12.5"))
    seen = 0
    for _ in range(100):  # replay is asynchronous: a few milliseconds here
        async with db.get_session(readonly=True) as session:
            assert await server(session) == (True, cluster.standby.port)
            assert await session.scalar(text("SHOW transaction_isolation")) == "repeatable read"  # one snapshot
            seen = len(await OHLCVRepository(session).get_latest("BTCUSDT", "1m", limit=100))
            recent = await TradeRepository(session).get_recent()
        if seen == 30 and recent:
            break
        await asyncio.sleep(0.05)
    assert seen == 30
    assert recent[0].trade_id == "T1" and str(recent[0].realized_pnl) == "12.5"


async def test_write_sessions_and_their_reads_go_to_the_primary(db: DatabaseManager, cluster: StandbyCluster) -> None:
    async with db.get_session() as session:
        assert await server(session) == (False, cluster.primary.port)
        await OHLCVRepository(session).upsert_many(bars(2))
        assert len(await OHLCVRepository(session).get_latest("BTCUSDT", "1m")) == 2  # its own write
        async with db.get_session(readonly=True) as inner:  # a read-only session of its own: a replica
            assert (await server(inner))[0] is True


async def test_a_write_in_a_read_only_session_on_the_replica_is_refused(db: DatabaseManager) -> None:
    with pytest.raises(ReadOnlyError, match="read-only"):
        async with db.get_session(readonly=True) as session:
            await OHLCVRepository(session).upsert_many(bars(2))


async def test_read_only_sessions_take_the_replicas_in_turn(cluster: StandbyCluster) -> None:
    # The primary listed as a second "replica" makes the turns visible by port.
    replicas = [cluster.standby.url, cluster.primary.url]
    async with DatabaseManager(cluster.primary.url, replicas=replicas) as db:
        ports = []
        for _ in range(4):
            async with db.get_session(readonly=True) as session:
                ports.append((await server(session))[1])
    assert sorted(ports[:2]) == sorted([cluster.standby.port, cluster.primary.port])
    assert ports[2:] == ports[:2]


async def test_health_check_reports_each_replica_and_its_replay_lag(
    db: DatabaseManager, cluster: StandbyCluster
) -> None:
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(100))
    report = await db.health_check()
    assert report["status"] == "healthy"
    (replica,) = report["replicas"]
    assert replica["status"] == "healthy" and replica["in_recovery"] is True
    assert str(cluster.standby.port) in replica["database"]
    assert replica["replay_lag_s"] >= 0 and replica["replay_lag_bytes"] >= 0
    for _ in range(100):  # the standby catches up
        report = await db.health_check()
        if report["replicas"][0]["replay_lag_bytes"] == 0:
            break
        await asyncio.sleep(0.05)
    assert report["replicas"][0]["replay_lag_bytes"] == 0


async def test_a_stopped_standby_sends_reads_to_the_primary_without_error(
    db: DatabaseManager, cluster: StandbyCluster, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replicas_module, "RETRY_AFTER_S", 0.5)
    caplog.set_level(logging.DEBUG, logger="tradestore")
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(5))
    async with db.get_session(readonly=True) as session:  # a pooled connection to the standby
        assert (await server(session))[0] is True
    cluster.stop_standby()
    try:
        for _ in range(5):  # the first finds the pooled connection dead, the next skip the standby
            async with db.get_session(readonly=True) as session:
                assert await server(session) == (False, cluster.primary.port)
                assert len(await OHLCVRepository(session).get_latest("BTCUSDT", "1m")) == 5
        report = await db.health_check()
        assert report["status"] == "healthy"
        assert report["replicas"][0]["status"] == "unhealthy" and report["replicas"][0]["error"]
        texts = [repr(db), str(db), str(report), str(db.replicas), caplog.text]
    finally:
        cluster.start_standby()
    cluster.wait_streaming()
    await asyncio.sleep(0.6)  # past RETRY_AFTER_S: the standby is tried again
    for _ in range(100):
        async with db.get_session(readonly=True) as session:
            if (await server(session))[0]:
                break
        await asyncio.sleep(0.05)
    assert (await db.health_check())["replicas"][0]["status"] == "healthy"
    assert "left out" in caplog.text  # the fall-back was logged, with the replica's masked URL
    for where in texts:
        assert PASSWORD not in where and "s3cr%40t" not in where and "s3cr@t" not in where, where


async def test_a_replica_that_hangs_with_its_connections_open_sends_reads_to_the_primary(
    cluster: StandbyCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replicas_module, "CONNECT_TIMEOUT_S", 0.5)
    monkeypatch.setitem(replicas_module.REPLICA_CONNECTION, "timeout", 0.5)
    assert cluster.standby.url.host is not None and cluster.standby.url.port is not None
    async with running_proxy(cluster.standby.url.host, cluster.standby.url.port) as proxy:
        hanging = cluster.standby.url.set(host="127.0.0.1", port=proxy.port)
        async with DatabaseManager(cluster.primary.url, replicas=[hanging]) as db:
            async with db.get_session(readonly=True) as session:  # a pooled connection through the proxy
                assert (await server(session))[0] is True
            proxy.frozen = True  # the standby stops answering; nothing is closed
            try:
                async with asyncio.timeout(10), db.get_session(readonly=True) as session:
                    assert await server(session) == (False, cluster.primary.port)
            finally:
                proxy.frozen = False


async def test_a_read_only_session_cancelled_while_it_opens_on_a_hung_replica_gives_its_connection_back(
    cluster: StandbyCluster,
) -> None:
    assert cluster.standby.url.host is not None and cluster.standby.url.port is not None
    async with running_proxy(cluster.standby.url.host, cluster.standby.url.port) as proxy:
        slow = cluster.standby.url.set(host="127.0.0.1", port=proxy.port)
        async with DatabaseManager(cluster.primary.url, replicas=[slow], pool_size=2, max_overflow=0) as db:
            pool = db._replicas.members[0].engine.sync_engine.pool
            for _ in range(3):  # more than the pool holds: one kept connection would show
                async with db.get_session(readonly=True) as session:
                    assert (await server(session))[0] is True
                proxy.frozen = True  # its BEGIN gets no answer
                try:
                    with pytest.raises(TimeoutError):
                        async with asyncio.timeout(0.3), db.get_session(readonly=True):
                            pass
                finally:
                    proxy.frozen = False
                assert isinstance(pool, QueuePool) and pool.checkedout() == 0
            async with asyncio.timeout(10), db.get_session(readonly=True) as session:
                assert (await server(session))[0] is True


async def test_an_unreachable_replica_at_connect_is_not_an_error(cluster: StandbyCluster) -> None:
    dead = cluster.standby.url.set(port=1)
    async with DatabaseManager(cluster.primary.url, replicas=[dead]) as db:
        async with db.get_session(readonly=True) as session:
            assert (await server(session))[0] is False
        report = await db.health_check()
    assert report["status"] == "healthy" and report["replicas"][0]["status"] == "unhealthy"
    assert PASSWORD not in str(report) and "s3cr" not in str(report)


def test_replicas_are_postgresql_standbys_of_a_postgresql_primary() -> None:
    with pytest.raises(ConfigurationError, match="replicas"):
        DatabaseManager("sqlite:///x.db", replicas=["postgresql://u:p@h/db"])
    with pytest.raises(ConfigurationError, match="replicas"):
        DatabaseManager("postgresql://u:p@h/db", replicas=["sqlite:///x.db"])
    with pytest.raises(ConfigurationError, match="list"):
        DatabaseManager("postgresql://u:p@h/db", replicas="postgresql://u:p@h2/db")
    db = DatabaseManager("postgresql://u:pw@h/db", replicas=["postgresql://u:s3cr%40t%3Apw@h2/db"])
    assert db.replicas == ["postgresql+asyncpg://u:***@h2/db"] and "s3cr" not in repr(db)
