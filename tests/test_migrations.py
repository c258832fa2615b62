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
        assert tables == {
            "ohlcv",
            "ohlcv_fetched",
            "ohlcv_series",
            "trades",
            "positions",
            "system_events",
            "alembic_version",
        }
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
