"""Is the database there: an engine that has answered, and the one health report.

:func:`open_engine` is how every engine starts (``DatabaseManager.connect()`` and the operator
tools alike): built, asked for the server's version, and on failure disposed of and the
failure turned into one typed, password-free error. :class:`Health` is the report that
``DatabaseManager.health_check()``, :func:`health` and ``tradestore health`` all return.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tradestore import schema
from tradestore.dialects.operations import operations
from tradestore.engine import build_engine
from tradestore.errors import ConnectionLostError, StorageError
from tradestore.urls import backend_name, describe, mask


async def open_engine(
    url: URL, *, pool_size: int = 2, max_overflow: int = 2, echo: bool = False, must_exist: bool = False
) -> AsyncEngine:
    """An engine for ``url`` whose database has answered a first query.

    Args:
        url: an async-driver URL (see :func:`tradestore.urls.resolve`).
        pool_size, max_overflow, echo: as for :func:`tradestore.engine.build_engine`.
        must_exist: refuse a database file that does not exist yet instead of creating it.

    Raises:
        ConnectionLostError: the server cannot be reached (retry later).
        StorageError: the file is missing (with ``must_exist``), or the database refused the
            connection for another reason. The password never appears in the message.
    """
    ops = operations(url)
    path = ops.file()
    if must_exist and path is not None and not path.exists():
        raise StorageError(f"no database file at {path} (create it with `tradestore db upgrade --url {mask(url)}`)")
    engine = build_engine(url, pool_size=pool_size, max_overflow=max_overflow, echo=echo)
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(ops.version_sql)
    except Exception as exc:
        await engine.dispose()
        kind = ConnectionLostError if isinstance(exc, ConnectionLostError | OSError) else StorageError
        # `from None`: the driver's own message may quote what the server was sent.
        raise kind(f"cannot connect to {mask(url)}: {describe(exc, url)}") from None
    return engine


@dataclass(frozen=True)
class Health(Mapping[str, Any]):
    """Is it up, which database is it, how fast does it answer, is its schema the one this code needs.

    Also reads as the dict earlier versions returned: ``report["status"]``, ``dict(report)``;
    the keys are the fields, ``error`` only when there is one.

    Attributes:
        status: ``'healthy'`` or ``'unhealthy'``.
        backend: ``'sqlite'`` or ``'postgresql'``.
        database: the URL, password masked.
        server_version: SQLite's library version or PostgreSQL's ``server_version``.
        latency_ms: one round trip (the version query), in milliseconds.
        schema_revision, schema_head, schema_status: the database's revision, this code's, and
            ``'empty'``, ``'current'``, ``'older'`` or ``'newer'`` (see :mod:`tradestore.schema`).
        size_bytes: bytes on disk (a SQLite file with its write-ahead log, or
            ``pg_database_size``); ``None`` in memory or when unknown.
        error: why it is unhealthy (one line, no password).
    """

    status: str
    backend: str
    database: str
    server_version: str | None = None
    latency_ms: float | None = None
    schema_revision: str | None = None
    schema_head: str | None = None
    schema_status: str | None = None
    size_bytes: int | None = None
    error: str | None = None

    @property
    def healthy(self) -> bool:
        """Whether the database answered."""
        return self.status == "healthy"

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (``error`` only when there is one)."""
        fields = asdict(self)
        if fields["error"] is None:
            del fields["error"]
        return fields

    def __getitem__(self, key: str) -> Any:
        if (key == "error" and self.error is None) or key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())


def unhealthy(url: URL, error: str) -> Health:
    """The report on a database that did not answer (``error``: one line, no password)."""
    return Health("unhealthy", backend_name(url), mask(url), size_bytes=operations(url).file_size(), error=error)


async def check(conn: AsyncConnection, url: URL) -> Health:
    """Measure the database behind ``conn`` (the database ``url`` names).

    Raises:
        Exception: whatever the database raises; callers turn it into :func:`unhealthy`.
    """
    ops = operations(url)
    started = time.perf_counter()
    version = (await conn.exec_driver_sql(ops.version_sql)).scalar()
    latency = round((time.perf_counter() - started) * 1000, 3)
    state = await conn.run_sync(schema.read_state)
    size = await ops.size(conn)
    return Health(
        "healthy",
        backend_name(url),
        mask(url),
        server_version=str(version),
        latency_ms=latency,
        schema_revision=state.revision,
        schema_head=state.head,
        schema_status=state.status,
        size_bytes=size,
    )


async def health(url: URL) -> Health:
    """Reach the database at ``url`` and report on it, whatever its schema; never raises for one that does not answer.

    A SQLite file that does not exist is reported unhealthy, not created.
    """
    try:
        engine = await open_engine(url, must_exist=True)
    except StorageError as exc:
        return unhealthy(url, str(exc))
    try:
        async with engine.connect() as conn:
            return await check(conn, url)
    except Exception as exc:
        return unhealthy(url, describe(exc, url))
    finally:
        await engine.dispose()
