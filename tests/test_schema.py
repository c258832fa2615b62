"""Schema revisions: ``connect()`` refuses a database it must not use; ``create_all()`` and the migrations agree."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from factories import bars
from tradestore import DatabaseManager, OHLCVRepository, schema
from tradestore.errors import SchemaError

pytestmark = pytest.mark.filterwarnings("ignore:.*expression-based index")

NEXT_REVISION = '''"""a later schema, for tests

Revision ID: 0099
Revises: {down}
"""

import sqlalchemy as sa
from alembic import op

revision = "0099"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("later_table", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("later_table")
'''


@pytest.fixture
def newer_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make this process a tradestore whose migrations go one revision further (0099)."""
    location = tmp_path / "migrations"
    shutil.copytree(schema.SCRIPT_LOCATION, location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / "0099_later.py").write_text(NEXT_REVISION.format(down=schema.head_revision()))
    monkeypatch.setattr(schema, "SCRIPT_LOCATION", location)
    return "0099"


async def revision_of(url: str) -> str | None:
    async with DatabaseManager(url) as db:
        return (await schema.state_of(db.engine)).revision


async def test_create_all_records_the_head_and_drop_all_removes_it(fresh_url: str) -> None:
    async with DatabaseManager(fresh_url) as db:
        assert (await schema.state_of(db.engine)).status == "empty"
        await db.create_all()
        state = await schema.state_of(db.engine)
        assert (state.revision, state.status, state.tables) == (schema.head_revision(), "current", schema.TABLES)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(schema.differences) == []
        await db.drop_all()
        state = await schema.state_of(db.engine)
        assert state.status == "empty" and state.revisions == ()


async def test_a_database_from_a_newer_tradestore_is_refused(fresh_url: str) -> None:
    async with DatabaseManager(fresh_url) as db:
        await db.create_all()
        async with db.get_session() as session:
            await session.execute(text("UPDATE alembic_version SET version_num = 'f00d_from_the_future'"))
    manager = DatabaseManager(fresh_url, auto_migrate=True)
    with pytest.raises(SchemaError, match=r"f00d_from_the_future.*newer tradestore"):
        await manager.connect()
    assert not manager.is_connected


async def test_an_older_database_is_refused_with_the_upgrade_command(fresh_url: str, newer_code: str) -> None:
    today = schema.scripts().get_revision(newer_code).down_revision
    assert isinstance(today, str)
    async with DatabaseManager(fresh_url) as db:  # empty: accepted; migrate it to what today's code needs
        await schema.upgrade(db.engine, today)
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many(bars(3))
    with pytest.raises(SchemaError, match=rf"at schema revision {today} but this tradestore needs 0099") as caught:
        await DatabaseManager(fresh_url).connect()
    assert "tradestore db upgrade --url" in str(caught.value)
    async with DatabaseManager(fresh_url, auto_migrate=True) as db:
        state = await schema.state_of(db.engine)
        async with db.get_session() as session:
            kept = len(await OHLCVRepository(session).get_latest("BTCUSDT", "1m"))
    assert (state.revision, state.status, kept) == (newer_code, "current", 3)


async def test_auto_migrate_builds_an_empty_database(fresh_url: str) -> None:
    async with DatabaseManager(fresh_url, auto_migrate=True) as db:
        state = await schema.state_of(db.engine)
        async with db.get_session() as session:
            assert await OHLCVRepository(session).upsert_many(bars(2)) == 2
    assert (state.revision, state.tables) == (schema.head_revision(), schema.TABLES)


async def test_an_unversioned_database_counts_as_the_baseline(fresh_url: str, newer_code: str) -> None:
    async with DatabaseManager(fresh_url) as db:
        # What create_all() did before revisions were recorded: the baseline's schema, no version.
        await schema.upgrade(db.engine, schema.BASELINE)
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql(f"DROP TABLE {schema.VERSION_TABLE}")
        state = await schema.state_of(db.engine)
    assert (state.revision, state.unversioned, state.status) == (schema.BASELINE, True, "older")
    with pytest.raises(SchemaError, match="at schema revision 0001 but"):
        await DatabaseManager(fresh_url).connect()
    async with DatabaseManager(fresh_url, auto_migrate=True) as db:
        assert (await schema.state_of(db.engine)).revisions == (newer_code,)


def test_an_unversioned_database_is_current_for_todays_code() -> None:
    state = schema.SchemaState((), schema.BASELINE, schema.TABLES)
    assert state.status == "current" and state.unversioned


def test_the_config_needs_no_alembic_ini() -> None:
    config = schema.alembic_config()
    assert config.config_file_name is None
    assert Path(config.get_main_option("script_location") or "") == schema.SCRIPT_LOCATION
    assert schema.is_known(schema.head_revision()) and not schema.is_known("nope")


async def test_auto_migrate_logs_through_the_tradestore_logger(
    fresh_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="tradestore")
    async with DatabaseManager(fresh_url, auto_migrate=True):
        pass
    assert any(
        r.name == "tradestore" and f"upgraded: (none) -> {schema.head_revision()}" in r.getMessage()
        for r in caplog.records
    )
    assert logging.getLogger("tradestore").handlers == []


async def test_bots_starting_together_migrate_once(fresh_url: str) -> None:
    async with DatabaseManager(fresh_url):  # a SQLite file is switched to WAL by its first connection
        pass  # (first connections racing on a brand-new file is another matter than migrating)
    managers = [DatabaseManager(fresh_url, auto_migrate=True) for _ in range(4)]
    outcomes = await asyncio.gather(*(m.connect() for m in managers), return_exceptions=True)
    try:
        assert outcomes == [None] * 4
        states = [await schema.state_of(m.engine) for m in managers]
    finally:
        await asyncio.gather(*(m.disconnect() for m in managers))
    assert {(s.revision, s.status) for s in states} == {(schema.head_revision(), "current")}


async def test_migrations_of_several_databases_at_once_in_one_process(tmp_path: Path) -> None:
    urls = [f"sqlite:///{tmp_path / f'bot-{n}.db'}" for n in range(4)]
    managers = [DatabaseManager(url, auto_migrate=True) for url in urls]
    outcomes = await asyncio.gather(*(m.connect() for m in managers), return_exceptions=True)
    try:
        assert outcomes == [None] * 4
        states = [await schema.state_of(m.engine) for m in managers]
    finally:
        await asyncio.gather(*(m.disconnect() for m in managers))
    assert {(s.revision, s.tables) for s in states} == {(schema.head_revision(), schema.TABLES)}
