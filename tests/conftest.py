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
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest
from sqlalchemy.engine import URL

from tradestore import DatabaseManager
from tradestore.urls import resolve

PG_URL = os.environ.get("TRADESTORE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = [pytest.param("sqlite", marks=pytest.mark.sqlite), pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tradestore reliability (tests/reliability)")
    group.addoption(
        "--reliability-runs",
        type=int,
        default=None,
        metavar="N",
        help="repeat the reliability trials N times each (kills, cancellations, examples); default: the CI counts",
    )
    group.addoption(
        "--performance-curves",
        type=int,
        default=None,
        metavar="N",
        help="random equity curves test_equity checks against the reference per backend (default 2000)",
    )
    group.addoption(
        "--pg-restart",
        action="store_true",
        help="also restart the local PostgreSQL server for real (disturbs anyone else using it)",
    )


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
async def db_on_kraken(url: URL | str) -> AsyncIterator[DatabaseManager]:
    """Like ``db``, with ``"kraken"`` as the manager's default exchange (for the exchange rule's tests)."""
    manager = DatabaseManager(url, exchange="kraken")
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


@pytest.fixture(scope="session")
def pg_scratch(pg_url: URL) -> Iterator[list[URL]]:
    """PostgreSQL databases for tests that need whole databases, made on first use, dropped at the end."""
    made: list[URL] = []
    yield made
    for url in made:
        asyncio.run(_admin(url.set(database=pg_url.database), f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))


@pytest.fixture
def new_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """Make empty databases that other managers and processes can open too.

    ``new_database("sqlite")`` is a new empty file's URL; ``new_database("postgres")`` the URL
    of an empty PostgreSQL database: the n-th call of a test gets the n-th scratch database,
    emptied (its ``public`` schema dropped and made anew), which is much faster than a
    ``CREATE DATABASE`` per test.
    """
    handed_out = 0

    def make(kind: str) -> str:
        nonlocal handed_out
        if kind == "sqlite":
            path = tmp_path_factory.mktemp("db") / "fresh.db"
            path.touch(mode=0o600)  # an empty file is an empty SQLite database
            return f"sqlite:///{path}"
        scratch: list[URL] = request.getfixturevalue("pg_scratch")
        if handed_out == len(scratch):
            base: URL = request.getfixturevalue("pg_url")
            url = base.set(database=f"{base.database}_{len(scratch)}")
            asyncio.run(_admin(base, f'CREATE DATABASE "{url.database}"'))
            scratch.append(url)
        url = scratch[handed_out]
        handed_out += 1
        asyncio.run(_admin(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        return _dsn(url)

    return make


@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest, new_database: Callable[[str], str]) -> str:
    """The URL of an empty database of its own on each backend (see ``new_database``)."""
    return new_database(request.param)
