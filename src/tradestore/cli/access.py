"""Opening the database a command works on, with the checks that turn surprises into one-line errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from tradestore import schema
from tradestore.cli.console import CommandError
from tradestore.health import open_engine
from tradestore.manager import DatabaseManager
from tradestore.urls import mask


@contextlib.asynccontextmanager
async def engine_for(url: URL, *, must_exist: bool = True) -> AsyncIterator[AsyncEngine]:
    """A bare engine on ``url`` (any schema revision), disposed at the end.

    Raises:
        StorageError: a missing SQLite file (with ``must_exist``) or a database that does not answer.
    """
    engine = await open_engine(url, must_exist=must_exist)
    try:
        yield engine
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def store(url: URL) -> AsyncIterator[DatabaseManager]:
    """A connected ``DatabaseManager`` on a database that exists and holds the head schema.

    Raises:
        StorageError: a missing SQLite file or a database that does not answer.
        SchemaError: the database is newer or older than this code.
        CommandError: the database has no tradestore schema yet.
    """
    async with engine_for(url) as engine:  # refuses a missing file before the manager would create it
        state = await schema.state_of(engine)
    if state.status == "empty":
        raise CommandError(f"{mask(url)} has no tradestore schema yet: run `tradestore db upgrade --url '{mask(url)}'`")
    manager = DatabaseManager(url, pool_size=2, max_overflow=2)
    await manager.connect()
    try:
        yield manager
    finally:
        await manager.disconnect()
