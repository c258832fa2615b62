"""``tradestore.admin.backup.backup`` through its Python API, on both backends.

The command line's view of the same is in ``test_cli_upkeep.py``.
"""

from __future__ import annotations

import asyncio
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from factories import bars, trade
from tradestore import DatabaseManager, OHLCVRepository, TradeRepository
from tradestore.admin.backup import BackupReport, backup
from tradestore.admin.inventory import inventory
from tradestore.errors import ConfigurationError, StorageError
from tradestore.urls import resolve


async def fill(url: str) -> None:
    async with DatabaseManager(url, auto_migrate=True) as db, db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(7))
        await TradeRepository(session).insert(trade(1, pnl="1.5"))


@pytest.mark.sqlite
def test_sqlite_backup_is_a_private_readable_copy(new_database: Callable[[str], str], tmp_path: Path) -> None:
    url = new_database("sqlite")
    asyncio.run(fill(url))
    dest = tmp_path / "bot-backup.db"
    report = asyncio.run(backup(resolve(url), dest))
    assert isinstance(report, BackupReport) and report.destination == str(dest)
    assert (report.method, report.integrity) == ("sqlite online backup", "ok")
    assert report.size_bytes == dest.stat().st_size > 0 and stat.S_IMODE(dest.stat().st_mode) == 0o600
    copy = asyncio.run(inventory(resolve(f"sqlite:///{dest}")))
    assert copy.rows["ohlcv"] == 7 and copy.rows["trades"] == 1 and copy.schema_status == "current"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


@pytest.mark.sqlite
def test_sqlite_backup_into_a_folder_and_over_an_existing_file(
    new_database: Callable[[str], str], tmp_path: Path
) -> None:
    url = new_database("sqlite")
    asyncio.run(fill(url))
    folder = tmp_path / "backups"
    folder.mkdir()
    named = Path(asyncio.run(backup(resolve(url), folder)).destination)
    assert named.parent == folder and named.name.startswith("fresh-") and named.suffix == ".db"
    with pytest.raises(StorageError, match="already exists"):
        asyncio.run(backup(resolve(url), named))
    assert asyncio.run(backup(resolve(url), named, overwrite=True)).integrity == "ok"
    with pytest.raises(StorageError, match="is not a folder"):
        asyncio.run(backup(resolve(url), tmp_path / "missing" / "x.db"))


@pytest.mark.sqlite
def test_an_in_memory_database_has_nothing_to_back_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="in-memory"):
        asyncio.run(backup(resolve("sqlite:///:memory:"), tmp_path / "x.db"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_postgres_backup_restores_into_another_database(new_database: Callable[[str], str], tmp_path: Path) -> None:
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump and pg_restore are not on the PATH")
    source, restored = new_database("postgres"), new_database("postgres")
    asyncio.run(fill(source))
    folder = tmp_path / "dumps"
    folder.mkdir()
    report = asyncio.run(backup(resolve(source), folder))
    dump = Path(report.destination)
    assert report.method == "pg_dump (custom format)" and report.integrity is None and dump.suffix == ".dump"
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600 and dump.read_bytes().startswith(b"PGDMP")
    subprocess.run(["pg_restore", "--no-owner", f"--dbname={restored}", str(dump)], check=True, timeout=60)
    copy = asyncio.run(inventory(resolve(restored)))
    assert copy.rows["ohlcv"] == 7 and copy.rows["trades"] == 1 and copy.schema_status == "current"


@pytest.mark.postgres
def test_postgres_backup_failures_leave_nothing_and_hide_the_password(
    new_database: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = resolve(new_database("postgres"))
    with pytest.raises(StorageError) as caught:  # a server that is not there
        asyncio.run(backup(url.set(port=1, password="s3cr3t-pw"), tmp_path / "x.dump"))
    assert "pg_dump of" in str(caught.value) and "s3cr3t-pw" not in str(caught.value)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(StorageError, match="pg_dump is not on the PATH"):
        asyncio.run(backup(url, tmp_path / "y.dump"))
    assert list(tmp_path.iterdir()) == []
