"""``tradestore.admin.inventory`` and ``tradestore.health`` through their Python API, on both backends.

One health report serves the manager, the Python API and ``tradestore health``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from factories import bars, trade
from tradestore import Bot, BotRepository, DatabaseManager, OHLCVRepository, TradeRepository, schema
from tradestore.admin.inventory import Inventory, inventory
from tradestore.errors import ConnectionLostError, StorageError
from tradestore.health import Health, health, open_engine
from tradestore.urls import resolve

HEAD = schema.head_revision()
KEYS = {"status", "backend", "database", "server_version", "latency_ms", "size_bytes"}  # what bots read


async def fill(url: str) -> None:
    async with DatabaseManager(url, auto_migrate=True) as db, db.get_session() as session:
        candles = OHLCVRepository(session)
        await candles.upsert_many(bars(5))
        await candles.upsert_many(bars(3, symbol="ETHUSDT"))
        await TradeRepository(session).insert(trade(1))


def test_inventory_counts_rows_series_and_reads_the_schema(fresh_url: str) -> None:
    empty = asyncio.run(inventory(resolve(fresh_url)))
    assert (empty.schema_status, empty.schema_revision, empty.rows, empty.series) == ("empty", None, {}, 0)
    assert (empty.open_trades, empty.pending_proposals, empty.rows_by_mode) == (None, None, {})
    asyncio.run(fill(fresh_url))
    found = asyncio.run(inventory(resolve(fresh_url)))
    assert isinstance(found, Inventory) and found.backend == resolve(fresh_url).get_backend_name()
    ledger = {"ohlcv_series": 2, "ohlcv_fetched": 2}  # one series row and one fetched range per series
    assert found.rows == {name: 0 for name in schema.TABLES} | {"ohlcv": 8, "trades": 1} | ledger
    assert (found.open_trades, found.closed_trades, found.pending_proposals) == (1, 0, 0)
    assert found.rows_by_mode["trades"] == {"live": 1} and found.rows_by_mode["decisions"] == {}
    assert found.series == 2 and found.server_version and found.size_bytes and found.size_bytes > 0
    assert (found.schema_revision, found.schema_head, found.schema_status) == (HEAD, HEAD, "current")
    assert found.as_dict()["rows"]["ohlcv"] == 8
    assert found.bots_by_status == {}  # the table is there and holds no bot: not None


async def register(url: str, statuses: list[str]) -> None:
    async with DatabaseManager(url) as db, db.get_session() as session:
        bots = BotRepository(session)
        for n, status in enumerate(statuses):
            await bots.register(Bot(f"bot-{n}", mode="paper" if n % 2 else "live"))
            if status != "running":
                await bots.set_status(f"bot-{n}", status, reason="test")


def test_inventory_counts_registered_bots_per_status(fresh_url: str) -> None:
    asyncio.run(fill(fresh_url))
    statuses = ["error", "running", "stopped", "running", "stopped", "running"]
    asyncio.run(register(fresh_url, statuses))
    found = asyncio.run(inventory(resolve(fresh_url)))
    # every status present, counted as a plain loop counts it, in tradestore's order of statuses
    assert found.bots_by_status == {"running": 3, "stopped": 2, "error": 1}
    assert list(found.bots_by_status) == ["running", "stopped", "error"]
    assert found.bots_by_status == {s: statuses.count(s) for s in ("running", "stopped", "error")}
    assert found.rows["bots"] == len(statuses) and found.rows_by_mode["bots"] == {"live": 3, "paper": 3}


@pytest.mark.sqlite
def test_inventory_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    with pytest.raises(StorageError, match="no database file"):
        asyncio.run(inventory(resolve(f"sqlite:///{path}")))
    report = asyncio.run(health(resolve(f"sqlite:///{path}")))
    assert report.status == "unhealthy" and "no database file" in (report.error or "")
    assert not path.exists()


def test_health_of_a_url_is_the_managers_report(fresh_url: str) -> None:
    asyncio.run(fill(fresh_url))

    async def both() -> tuple[Health, Health]:
        async with DatabaseManager(fresh_url) as db:
            return await health(resolve(fresh_url)), await db.health_check()

    tool, manager = asyncio.run(both())
    for report in (tool, manager):
        assert isinstance(report, Health) and report.healthy and report.error is None
        assert (report.schema_revision, report.schema_status) == (HEAD, "current")
        assert report.size_bytes and report.size_bytes > 0 and report.latency_ms is not None
    assert {k: v for k, v in tool.as_dict().items() if k != "latency_ms"} == {
        k: v for k, v in manager.as_dict().items() if k != "latency_ms"
    }


async def test_the_managers_health_check_still_reads_as_a_dict(db: DatabaseManager, backend: str) -> None:
    report = await db.health_check()
    assert report["status"] == "healthy" and report["backend"] == backend and set(report) >= KEYS
    assert dict(report) == report.as_dict() and "error" not in report and report.get("error") is None
    with pytest.raises(KeyError):
        report["error"]
    size = report["size_bytes"]
    assert size is None if backend == "sqlite" else size > 0  # the sqlite fixture is in memory


async def test_health_of_an_unreachable_server_never_shows_the_password() -> None:
    url = resolve("postgresql://bot:s3cr3t-pw@127.0.0.1:1/trading")
    report = await health(url)
    assert report.status == "unhealthy" and report["error"] and "cannot connect" in report["error"]
    assert "s3cr3t-pw" not in repr(report) + str(dict(report)) and "***" in report.database
    with pytest.raises(ConnectionLostError) as caught:
        await open_engine(url)
    assert "s3cr3t-pw" not in str(caught.value)
    manager = DatabaseManager(url)  # never connected: unhealthy, not an exception
    assert (await manager.health_check())["status"] == "unhealthy"


@pytest.mark.sqlite
def test_open_engine_creates_a_file_only_when_asked(new_database: Callable[[str], str], tmp_path: Path) -> None:
    path = tmp_path / "sub" / "new.db"

    async def scenario() -> None:
        with pytest.raises(StorageError, match="no database file"):
            await open_engine(resolve(f"sqlite:///{path}"), must_exist=True)
        assert not path.exists()
        engine = await open_engine(resolve(f"sqlite:///{path}"))
        await engine.dispose()

    asyncio.run(scenario())
    assert path.is_file() and path.stat().st_mode & 0o777 == 0o600
