"""``tradestore.dialects.operations``: what operator tools do differently per backend, on both."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from tradestore import DatabaseManager
from tradestore.dialects.operations import PostgresOperations, SQLiteOperations, operations
from tradestore.urls import resolve


@pytest.mark.sqlite
def test_sqlite_identity_is_the_file_itself(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    path.touch()
    os.symlink(path, tmp_path / "link.db")
    os.link(path, tmp_path / "hard.db")
    (tmp_path / "other.db").touch()
    same = [f"sqlite:///{path}", f"sqlite+aiosqlite:///{tmp_path}/./bot.db", f"sqlite:///{tmp_path}/link.db",
            f"sqlite:///{tmp_path}/hard.db"]  # fmt: skip
    assert len({operations(resolve(u)).identity() for u in same}) == 1
    assert operations(resolve(f"sqlite:///{tmp_path}/other.db")).identity() != operations(resolve(same[0])).identity()
    missing = [f"sqlite:///{tmp_path}/new.db", f"sqlite:///{tmp_path}/x/../new.db"]  # not created yet: by real path
    assert len({operations(resolve(u)).identity() for u in missing}) == 1
    memory = operations(resolve("sqlite:///:memory:"))
    assert memory.file() is None and memory.identity() != operations(resolve("sqlite:///:memory:")).identity()


def test_postgres_identity_is_host_port_and_database() -> None:
    def identity(url: str) -> object:
        return operations(resolve(url)).identity()

    base = identity("postgresql://bot:pw@127.0.0.1:5432/trading")
    assert identity("postgres://other@127.0.0.1/trading") == base  # default port, another role
    assert identity("postgresql+asyncpg://bot@127.0.0.1:5432/trading?password=x") == base
    assert identity("postgresql://bot@127.0.0.1:5433/trading") != base
    assert identity("postgresql://bot@127.0.0.1:5432/research") != base
    assert identity("postgresql://trading@127.0.0.1") == base  # libpq: the database named after the user


def test_one_implementation_per_backend() -> None:
    assert isinstance(operations(resolve("sqlite:///x.db")), SQLiteOperations)
    assert isinstance(operations(resolve("postgresql://h/db")), PostgresOperations)
    assert SQLiteOperations.version_sql != PostgresOperations.version_sql


async def test_size_and_optimize_on_each_backend(fresh_url: str) -> None:
    url: URL = resolve(fresh_url)
    ops = operations(url)
    async with DatabaseManager(url, auto_migrate=True) as db, db.engine.connect() as conn:
        size = await ops.size(conn)
        ran = await ops.optimize(conn)
    assert size is not None and size > 0
    path = ops.file()
    if path is not None:  # SQLite: VACUUM first, and the file's size is known without connecting
        wal = Path(f"{path}-wal")
        assert ran[0] == "VACUUM" and ops.file_size() == path.stat().st_size + (
            wal.stat().st_size if wal.exists() else 0
        )
    else:
        assert ran == ["ANALYZE"] and ops.file_size() is None
