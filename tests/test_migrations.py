"""The Alembic migrations create exactly the schema of ``tradestore.models``, on both backends."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import delete, insert, inspect
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError

from factories import position
from tradestore import DatabaseManager
from tradestore.engine import build_engine
from tradestore.models import Base, PositionModel
from tradestore.urls import resolve

ROOT = Path(__file__).resolve().parents[1]
# Neither backend's reflection reads expression indexes back; the open-position index is
# checked by behaviour instead (see below).
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*expression-based index:UserWarning", "ignore:.*expression-based index"
)


def alembic_config(url: URL | str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["url"] = resolve(url).render_as_string(hide_password=False)
    config.attributes["configure_logger"] = False
    return config


async def schema_state(url: URL | str) -> tuple[list[Any], set[str]]:
    engine = build_engine(resolve(url), pool_size=1, max_overflow=0, echo=False)
    try:
        async with engine.connect() as conn:

            def inspect_sync(sync_conn: Any) -> tuple[list[Any], set[str]]:
                context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return compare_metadata(context, Base.metadata), set(inspect(sync_conn).get_table_names())

            return await conn.run_sync(inspect_sync)
    finally:
        await engine.dispose()


async def second_open_position_is_refused(url: URL | str) -> None:
    async with DatabaseManager(url) as db:
        row = {k: v for k, v in vars(position()).items() if k != "id"} | {"updated_at": datetime.now(UTC)}
        async with db.get_session() as session:
            await session.execute(insert(PositionModel).values(row))
        with pytest.raises(IntegrityError):
            async with db.get_session() as session:
                await session.execute(insert(PositionModel).values(row))
        async with db.get_session() as session:
            await session.execute(delete(PositionModel))


def file_or_pg(url: URL | str, tmp_path: Path) -> URL | str:
    # A file, not :memory:: Alembic and the checks below open their own connections.
    return f"sqlite:///{tmp_path / 'migrated.db'}" if resolve(url).get_backend_name() == "sqlite" else url


def test_upgrade_creates_the_models_schema_and_downgrade_removes_it(url: URL | str, tmp_path: Path) -> None:
    target = file_or_pg(url, tmp_path)
    config = alembic_config(target)
    command.upgrade(config, "head")
    try:
        differences, tables = asyncio.run(schema_state(target))
        assert differences == []
        assert tables == {*Base.metadata.tables, "alembic_version"}
        asyncio.run(second_open_position_is_refused(target))
    finally:
        command.downgrade(config, "base")
    _, tables = asyncio.run(schema_state(target))
    assert tables <= {"alembic_version"}


def test_alembic_cli_reads_the_url_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    env = {**os.environ, "TRADESTORE_DATABASE_URL": f"sqlite:///{path}"}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    differences, tables = asyncio.run(schema_state(f"sqlite:///{path}"))
    assert differences == [] and "ohlcv" in tables


def test_0004_upgrades_a_database_holding_rows_and_downgrades_to_what_it_was(url: URL | str, tmp_path: Path) -> None:
    """Decisions and proposals: every existing row survives both ways; downgrade drops only what 0004 added."""
    target = file_or_pg(url, tmp_path)
    config = alembic_config(target)
    before = ScriptDirectory.from_config(config).get_revision("0004").down_revision
    assert isinstance(before, str)
    command.upgrade(config, before)
    asyncio.run(_fill_0001_tables(target))
    try:
        rows_before = asyncio.run(_rows(target, ("ohlcv", "trades", "positions", "system_events")))
        command.upgrade(config, "0004")
        assert asyncio.run(_rows(target, tuple(rows_before))) == rows_before
        asyncio.run(_use_0004(target))
        command.downgrade(config, before)
        assert asyncio.run(_rows(target, tuple(rows_before))) == rows_before
        _, tables = asyncio.run(schema_state(target))
        assert not {"decisions", "proposals"} & tables
        columns = asyncio.run(_columns(target, "system_events"))
        assert "content_key" not in columns
        command.upgrade(config, "head")
        differences, _ = asyncio.run(schema_state(target))
        assert differences == []
    finally:
        command.downgrade(config, "base")


async def _fill_0001_tables(url: URL | str) -> None:
    engine = build_engine(resolve(url), pool_size=1, max_overflow=0, echo=False)
    now = datetime.now(UTC).isoformat(" ")
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO system_events (event_type, severity, message, created_at) "
                f"VALUES ('start', 'info', 'bot started', '{now}')"
            )
            await conn.exec_driver_sql(
                "INSERT INTO trades (trade_id, symbol, exchange, side, action, entry_price, quantity, entry_time, "
                f"leverage, fee, mode, created_at, updated_at) VALUES ('T1', 'BTCUSDT', 'binance', 'long', 'open', "
                f"'50000.10', '0.01', '{now}', '1', '0', 'live', '{now}', '{now}')"
            )
    finally:
        await engine.dispose()


async def _rows(url: URL | str, tables: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    engine = build_engine(resolve(url), pool_size=1, max_overflow=0, echo=False)
    try:
        async with engine.connect() as conn:
            found = {}
            for name in tables:
                columns = [
                    c for c in await conn.run_sync(lambda c, n=name: [x["name"] for x in inspect(c).get_columns(n)])
                ]
                kept = ", ".join(c for c in columns if c != "content_key")
                result = await conn.exec_driver_sql(f"SELECT {kept} FROM {name} ORDER BY id")
                found[name] = [tuple(str(v) for v in row) for row in result]
            return found
    finally:
        await engine.dispose()


async def _columns(url: URL | str, table: str) -> set[str]:
    engine = build_engine(resolve(url), pool_size=1, max_overflow=0, echo=False)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: [x["name"] for x in inspect(c).get_columns(table)]))
    finally:
        await engine.dispose()


async def _use_0004(url: URL | str) -> None:
    """The new tables take rows on the upgraded database, linked to the trade that was there."""
    engine = build_engine(resolve(url), pool_size=1, max_overflow=0, echo=False)
    now = datetime.now(UTC).isoformat(" ")
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO decisions (bot_id, symbol, exchange, action, timestamp, mode, trade_id, content_key, "
                f"created_at) VALUES ('bot', 'BTCUSDT', 'binance', 'buy', '{now}', 'live', 1, '{'0' * 64}', '{now}')"
            )
            await conn.exec_driver_sql(
                "INSERT INTO proposals (bot_id, symbol, exchange, side, quantity, mode, leverage, status, decision_id, "
                f"created_at, updated_at) VALUES ('bot', 'BTCUSDT', 'binance', 'buy', '0.01', 'live', '1', 'pending', "
                f"1, '{now}', '{now}')"
            )
            await conn.exec_driver_sql("UPDATE system_events SET content_key = 'k'")
    finally:
        await engine.dispose()
