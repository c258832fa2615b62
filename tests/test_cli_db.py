"""``tradestore db upgrade | downgrade | current | check`` and the failures every command shares."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from cli_runner import fails, ok, run, seed
from tradestore import DatabaseManager, schema

pytestmark = pytest.mark.filterwarnings("ignore:.*expression-based index")
HEAD = schema.head_revision()


def stamp(url: str, revision: str) -> None:
    async def go() -> None:
        async with DatabaseManager(url) as db, db.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})

    asyncio.run(go())


def test_upgrade_current_and_check(fresh_url: str) -> None:
    assert ok("db", "current", "--url", fresh_url).out.splitlines()[1].split() == ["revision", "(none)"]
    assert f"(none) -> {HEAD}" in ok("db", "upgrade", "--url", fresh_url).out
    assert "already at" in ok("db", "upgrade", "--url", fresh_url).out
    current = ok("db", "current", "--url", fresh_url, "--json").json
    assert (current["revision"], current["head"], current["status"]) == (HEAD, HEAD, "current")
    assert current["tables"] == list(schema.TABLES)
    check = ok("db", "check", "--url", fresh_url, "--json").json
    assert check["ok"] is True and check["differences"] == []


def test_upgrade_creates_a_new_sqlite_file_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "new.db"
    ok("db", "upgrade", "--url", f"sqlite:///{path}")
    assert path.exists() and path.stat().st_mode & 0o777 == 0o600


def test_check_fails_on_an_empty_database(fresh_url: str) -> None:
    assert "is empty" in fails("db", "check", "--url", fresh_url)


def test_a_database_newer_than_the_code_is_refused_by_every_data_command(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [0, 1, 2])
    stamp(fresh_url, "f00d_from_the_future")
    current = ok("db", "current", "--url", fresh_url, "--json").json
    assert (current["revision"], current["status"]) == ("f00d_from_the_future", "newer")
    assert "newer" in fails("db", "check", "--url", fresh_url)
    for command in (["series"], ["gaps", "binance", "BTCUSDT", "1m"], ["prune", "--events-older-than", "1d"]):
        line = fails(*command, "--url", fresh_url)
        assert "f00d_from_the_future" in line and "newer tradestore" in line
    assert "newer tradestore" in fails("db", "upgrade", "--url", fresh_url)
    health = run("health", "--url", fresh_url, "--json")  # still reports, and says why
    assert health.code == 0 and health.json["schema_status"] == "newer"


@pytest.fixture
def newer_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """This process becomes a tradestore whose migrations go one revision further (0099)."""
    location = tmp_path / "migrations"
    shutil.copytree(schema.SCRIPT_LOCATION, location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / "0099_later.py").write_text(
        "revision = '0099'\n"
        f"down_revision = '{HEAD}'\n"
        "branch_labels = depends_on = None\n"
        "from alembic import op\n"
        "import sqlalchemy as sa\n"
        "def upgrade() -> None:\n"
        "    op.create_index('ix_ohlcv_later', 'ohlcv', ['close'])\n"
        "def downgrade() -> None:\n"
        "    op.drop_index('ix_ohlcv_later', 'ohlcv')\n"
    )
    monkeypatch.setattr(schema, "SCRIPT_LOCATION", location)
    return "0099"


def test_an_older_database_is_refused_with_the_command_that_upgrades_it(
    fresh_url: str, tmp_path: Path, newer_code: str
) -> None:
    ok("db", "upgrade", HEAD, "--url", fresh_url)
    line = fails("series", "--url", fresh_url)
    assert f"at schema revision {HEAD} but this tradestore needs {newer_code}" in line
    assert "tradestore db upgrade --url" in line
    assert f"{HEAD} -> {newer_code}" in ok("db", "upgrade", "--url", fresh_url).out
    assert ok("db", "current", "--url", fresh_url, "--json").json["status"] == "current"
    assert f"{newer_code} -> {HEAD}" in ok("db", "downgrade", "-1", "--url", fresh_url).out


def test_downgrade_to_base_refuses_a_database_with_rows_unless_told(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [0, 1])
    assert "--yes" in fails("db", "downgrade", "base", "--url", fresh_url)
    assert ok("db", "current", "--url", fresh_url, "--json").json["revision"] == HEAD
    assert f"{HEAD} -> (none)" in ok("db", "downgrade", "base", "--yes", "--url", fresh_url).out
    assert ok("db", "current", "--url", fresh_url, "--json").json["status"] == "empty"


def test_an_unknown_revision_is_one_line(fresh_url: str) -> None:
    assert "nope" in fails("db", "upgrade", "nope", "--url", fresh_url)


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    for command in (["db", "current"], ["series"], ["stats"], ["optimize"], ["backup", tmp_path / "b.db"]):
        assert "no database file" in fails(*command, "--url", f"sqlite:///{path}")
    assert not path.exists()


def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    url = "postgresql://bot:s3cr3t-pw@127.0.0.1:1/trading"
    for command in (["db", "current"], ["stats"], ["series"], ["copy", "sqlite:///nowhere.db"]):
        line = fails(*command, "--url", url)
        assert "cannot connect" in line or "no database file" in line
        assert "s3cr3t-pw" not in line
    health = run("health", "--url", url, "--json")
    assert health.code == 1 and health.json["status"] == "unhealthy"
    assert "s3cr3t-pw" not in health.out + health.err and "***" in health.json["database"]


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("gaps", "binance").code == 2
    assert run("gaps", "binance", "BTCUSDT", "7m").code == 2
    assert run("prune", "--events-older-than", "soon").code == 2
    assert run("copy", "sqlite:///a.db", "sqlite:///b.db", "--chunk-rows", "0").code == 2
    assert run().code == 2
    assert run("--version").out.startswith("tradestore ")
    assert "upgrade" in run("db", "--help").out


def test_an_unsupported_url_is_one_line() -> None:
    line = fails("stats", "--url", "mysql://root:hunter2@localhost/db")
    assert "unsupported scheme" in line and "hunter2" not in line


def test_url_defaults_to_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADESTORE_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    ok("db", "upgrade")
    assert (tmp_path / "env.db").exists()
    monkeypatch.delenv("TRADESTORE_DATABASE_URL")
    monkeypatch.chdir(tmp_path)
    ok("db", "upgrade")
    assert (tmp_path / "data" / "tradestore.db").exists()
