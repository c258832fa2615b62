"""Every repository test runs on both backends: the ``db`` fixture is parametrised.

PostgreSQL: ``TRADESTORE_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
The suite works in a database of its own, created for the run and dropped after it, so it
never touches a developer's data. Without a reachable server the PostgreSQL cases skip,
except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from sqlalchemy.engine import URL

from tradestore import DatabaseManager
from tradestore.urls import resolve

PG_URL = os.environ.get("TRADESTORE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = [pytest.param("sqlite", marks=pytest.mark.sqlite), pytest.param("postgres", marks=pytest.mark.postgres)]


def _dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: URL, sql: str) -> None:
    conn = await asyncpg.connect(_dsn(url), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[URL]:
    """A PostgreSQL database made for this test run (dropped at the end)."""
    base = resolve(PG_URL)
    name = f"tradestore_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {base.render_as_string()} is required under CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {base.render_as_string()} ({exc}); set TRADESTORE_TEST_PG_URL")
    yield base.set(database=name)
    asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest) -> URL | str:
    """The URL of an empty database on each backend."""
    if request.param == "sqlite":
        return "sqlite+aiosqlite:///:memory:"
    pg: URL = request.getfixturevalue("pg_url")
    return pg


@pytest.fixture
async def db(url: URL | str) -> AsyncIterator[DatabaseManager]:
    """A connected manager on a fresh schema, on SQLite and on PostgreSQL."""
    manager = DatabaseManager(url)
    await manager.connect()
    await manager.drop_all()
    await manager.create_all()
    yield manager
    await manager.drop_all()
    await manager.disconnect()


@pytest.fixture
def backend(url: URL | str) -> str:
    """'sqlite' or 'postgresql'."""
    return resolve(url).get_backend_name()


@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of an empty database of its own that other managers and processes can open too.

    SQLite: a new file. PostgreSQL: a database created for this test and dropped after it.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'fresh.db'}"
        return
    base: URL = request.getfixturevalue("pg_url")
    name = f"{base.database}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    yield _dsn(base.set(database=name))
    asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
