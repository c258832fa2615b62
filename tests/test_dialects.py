"""tradestore.dialects: the one seam where SQLite and PostgreSQL differ, and its error translation."""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

import tradestore
from tradestore import DatabaseManager
from tradestore.dialects import backend as backend_for
from tradestore.dialects import dec_sum
from tradestore.dialects.errors import is_unique_violation, translate
from tradestore.errors import ConnectionLostError, StorageBusyError
from tradestore.models import TradeModel

PACKAGE = Path(tradestore.__file__).parent


class _PgError(Exception):
    """Shaped like asyncpg's errors: a ``sqlstate``."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_seam_imports_nothing_above_it() -> None:
    """No import cycle: the dialects package never imports the engine, the manager or a repository."""
    above = ("tradestore.engine", "tradestore.manager", "tradestore.repositories", "tradestore.schema")
    for path in (PACKAGE / "dialects").glob("*.py"):
        assert not [m for m in _imports(path) if m.startswith(above)], path.name


def test_backend_names_live_only_in_the_seam_and_the_column_types() -> None:
    """Repositories, the manager and schema.py never test the dialect's name."""
    for name in (
        "manager.py",
        "schema.py",
        *(f"repositories/{p.name}" for p in (PACKAGE / "repositories").glob("*.py")),
    ):
        source = (PACKAGE / name).read_text()
        assert "dialect.name" not in source and '"postgresql"' not in source, name


async def test_the_migration_lock_can_be_taken_inside_a_transaction(db: DatabaseManager) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda sync: backend_for(sync.dialect).lock_migrations(sync))
        assert await conn.scalar(select(dec_sum(TradeModel.fee))) is None


def test_a_lock_not_granted_is_storage_busy_on_both_drivers() -> None:
    url = make_url("postgresql+asyncpg://bot:hunter2@h/db")
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5
    typed = translate(busy, None, busy_ms=250)
    assert isinstance(typed, StorageBusyError) and "250 ms" in str(typed) and typed.orig is busy
    for state in ("40P01", "55P03"):
        assert isinstance(translate(_PgError("deadlock detected", state), url), StorageBusyError)


def test_a_broken_connection_is_connection_lost_and_quotes_no_password() -> None:
    url = make_url("postgresql+asyncpg://bot:hunter2@h/db")
    for error in (OSError("reset by peer"), _PgError("terminating connection for bot:hunter2", "57P01")):
        typed = translate(error, url)
        assert isinstance(typed, ConnectionLostError) and "hunter2" not in str(typed)
    assert translate(ValueError("something else"), url) is None


def test_unique_violations_are_told_from_other_integrity_errors() -> None:
    unique = sqlite3.IntegrityError("UNIQUE constraint failed: trades.exchange, trades.trade_id")
    unique.sqlite_errorcode = 2067
    check = sqlite3.IntegrityError("CHECK constraint failed")
    check.sqlite_errorcode = 275
    assert is_unique_violation(unique) and not is_unique_violation(check)
    assert is_unique_violation(_PgError("duplicate key", "23505"))
    assert not is_unique_violation(_PgError("violates foreign key", "23503")) and not is_unique_violation(None)


@pytest.mark.parametrize("name", ["sqlite", "postgresql"])
def test_each_backend_says_what_it_is(name: str) -> None:
    dialect = make_url(f"{name}://").get_dialect()()
    assert backend_for(dialect).name == name
    assert backend_for(dialect) is backend_for(dialect)  # one per dialect object
