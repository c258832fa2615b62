"""What operator tools do differently per backend: identity, size, upkeep, snapshots, backups.

The bulk-path seam (:class:`tradestore.dialects.Backend`) is built from a live dialect; these
operations start from a URL, because a tool often needs them before (or instead of) an engine:
the file a backup copies, whether two URLs name one database. :func:`operations` picks the
implementation; the tools in :mod:`tradestore.admin` never test the backend's name.

SQLite: the file is the database (its identity is the file itself, its size the file with its
write-ahead log, a backup and a consistent read both come from the online backup API).
PostgreSQL: the server holds it (identity is host, port and database; ``pg_database_size``;
``pg_dump``; a ``REPEATABLE READ`` transaction for a consistent read).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import tempfile
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Hashable, Sequence
from pathlib import Path
from typing import ClassVar

from sqlalchemy import Table, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from tradestore.dialects.sqlite_functions import register_sqlite_functions
from tradestore.errors import ConfigurationError, StorageError
from tradestore.urls import is_memory, is_sqlite, mask, scrub

#: The program that backs up a PostgreSQL database.
PG_DUMP = "pg_dump"
_PG_PORT = 5432


def private_file(path: Path) -> None:
    """Create ``path`` empty, readable by its owner only whatever the umask (fails if it exists)."""
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)


class Operations(ABC):
    """What operator tools need from one database, given its URL."""

    #: ``'sqlite'`` or ``'postgresql'``.
    name: ClassVar[str]
    #: The query that returns the server's version (and so proves it answers).
    version_sql: ClassVar[str]
    #: How :meth:`backup` copies the database, in words.
    backup_method: ClassVar[str]
    #: The suffix of a backup file named by tradestore.
    backup_suffix: ClassVar[str]

    def __init__(self, url: URL) -> None:
        self.url = url

    def file(self) -> Path | None:
        """The file that is the database, or ``None`` (a server, or an in-memory database)."""
        return None

    @abstractmethod
    def identity(self) -> tuple[Hashable, ...]:
        """What two URLs share exactly when they name the same database."""

    def file_size(self) -> int | None:
        """Bytes the database takes on disk, measured without connecting; ``None`` when unknown."""
        return None

    @abstractmethod
    async def size(self, conn: AsyncConnection) -> int | None:
        """Bytes the database takes on disk, as seen over ``conn``; ``None`` for in-memory."""

    @abstractmethod
    async def optimize(self, conn: AsyncConnection) -> list[str]:
        """Reclaim space and refresh the planner's statistics; returns the statements run."""

    @abstractmethod
    async def backup(self, dest: Path, *, busy_timeout_ms: int) -> str | None:
        """Copy the whole database into the new file ``dest`` (removed again on failure).

        Returns:
            The integrity check's verdict on the copy (``'ok'``), or ``None`` when there is none.

        Raises:
            StorageError: the copy failed (nothing is left at ``dest`` then).
            ConfigurationError: an in-memory database, which has nothing on disk to back up.
        """

    @contextlib.asynccontextmanager
    async def readable_snapshot(self, *, busy_timeout_ms: int) -> AsyncIterator[URL]:
        """A URL to read a consistent snapshot from (see :meth:`begin_snapshot_read`)."""
        yield self.url

    @abstractmethod
    async def begin_snapshot_read(self, conn: AsyncConnection) -> None:
        """Make ``conn``'s coming transaction see one snapshot from its first to its last read."""

    @abstractmethod
    async def follow_copied_ids(self, conn: AsyncConnection, tables: Sequence[Table]) -> None:
        """After rows were inserted with explicit ids, let new rows get ids above the largest."""


class SQLiteOperations(Operations):
    """A SQLite file (or an in-memory database, which has nothing on disk)."""

    name = "sqlite"
    version_sql = "SELECT sqlite_version()"
    backup_method = "sqlite online backup"
    backup_suffix = ".db"

    def file(self) -> Path | None:
        if is_memory(self.url) or not self.url.database:
            return None
        return Path(self.url.database)

    def identity(self) -> tuple[Hashable, ...]:
        path = self.file()
        if path is None:
            return ("sqlite", ":memory:", id(self))  # one database per connection: never the same
        try:
            found = path.stat()  # one file under two names (a hard link) is one database too
        except OSError:
            return ("sqlite", os.path.realpath(path))
        return ("sqlite", found.st_dev, found.st_ino)

    def file_size(self) -> int | None:
        path = self.file()
        if path is None:
            return None
        # In WAL mode recent commits sit in the -wal file until a checkpoint: count both.
        sizes = [os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p)]
        return sum(sizes) if sizes else None

    async def size(self, conn: AsyncConnection) -> int | None:
        return self.file_size()

    async def optimize(self, conn: AsyncConnection) -> list[str]:
        statements = ["VACUUM", "ANALYZE", "PRAGMA optimize", "PRAGMA wal_checkpoint(TRUNCATE)"]
        # VACUUM cannot run inside a transaction: use the driver connection, which is in autocommit.
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        for sql in statements:
            cursor = await driver.execute(sql)
            await cursor.close()
        return statements

    def _source(self) -> Path:
        path = self.file()
        if path is None:
            raise ConfigurationError("an in-memory SQLite database lives only inside its process: nothing to copy")
        return path

    async def backup(self, dest: Path, *, busy_timeout_ms: int) -> str | None:
        return await asyncio.to_thread(sqlite_snapshot, self._source(), dest, busy_timeout_ms=busy_timeout_ms)

    async def begin_snapshot_read(self, conn: AsyncConnection) -> None:
        pass  # every SQLite transaction reads one snapshot (and the copy reads a snapshot file)

    async def follow_copied_ids(self, conn: AsyncConnection, tables: Sequence[Table]) -> None:
        pass  # a new row's INTEGER PRIMARY KEY is one above the largest stored: nothing to move

    @contextlib.asynccontextmanager
    async def readable_snapshot(self, *, busy_timeout_ms: int) -> AsyncIterator[URL]:
        """The URL of a fresh snapshot of the file, removed afterwards."""
        source = self._source()
        with tempfile.TemporaryDirectory(prefix="tradestore-copy-") as folder:
            snapshot = Path(folder) / "source.db"
            await asyncio.to_thread(sqlite_snapshot, source, snapshot, busy_timeout_ms=busy_timeout_ms)
            yield self.url.set(database=str(snapshot))


class PostgresOperations(Operations):
    """A database on a PostgreSQL server."""

    name = "postgresql"
    version_sql = "SHOW server_version"
    backup_method = "pg_dump (custom format)"
    backup_suffix = ".dump"

    def identity(self) -> tuple[Hashable, ...]:
        # libpq's defaults: the local server, port 5432, a database named after the user.
        host = (self.url.host or "localhost").lower()
        database = self.url.database or self.url.username or ""
        return ("postgresql", host, self.url.port or _PG_PORT, database)

    async def size(self, conn: AsyncConnection) -> int | None:
        return int(await conn.scalar(text("SELECT pg_database_size(current_database())")) or 0)

    async def optimize(self, conn: AsyncConnection) -> list[str]:
        # Autovacuum reclaims space on PostgreSQL; fresh statistics are what a tool can add.
        statements = ["ANALYZE"]
        for sql in statements:
            await conn.exec_driver_sql(sql)
        await conn.commit()
        return statements

    async def backup(self, dest: Path, *, busy_timeout_ms: int) -> str | None:
        await pg_dump(self.url, dest)
        return None

    async def begin_snapshot_read(self, conn: AsyncConnection) -> None:
        await conn.execution_options(isolation_level="REPEATABLE READ")

    async def follow_copied_ids(self, conn: AsyncConnection, tables: Sequence[Table]) -> None:
        for table in tables:
            await conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), coalesce(max(id), 1), "
                    f"max(id) IS NOT NULL) FROM {table.name}"
                )
            )


_KINDS: dict[str, type[Operations]] = {"sqlite": SQLiteOperations, "postgresql": PostgresOperations}


def operations(url: URL) -> Operations:
    """The :class:`Operations` for the database ``url`` names (an async-driver URL)."""
    return _KINDS["sqlite" if is_sqlite(url) else "postgresql"](url)


def sqlite_snapshot(source: Path, dest: Path, *, busy_timeout_ms: int) -> str:
    """Copy the SQLite database at ``source`` into the new file ``dest`` with the online backup API.

    The copy is one self-contained file (rollback journal, no ``-wal``) readable by its owner only.

    Returns:
        The result of ``PRAGMA integrity_check`` on the copy (``'ok'``).

    Raises:
        StorageError: the source is missing or unreadable, or the copy fails its integrity check
            (nothing is left at ``dest`` then).
    """
    if not source.is_file():
        raise StorageError(f"no database file at {source}")
    private_file(dest)
    try:
        src = sqlite3.connect(source, timeout=busy_timeout_ms / 1000)  # it only reads
        try:
            dst = sqlite3.connect(dest)
            try:
                # One step (pages=-1) is one read transaction: a snapshot writers cannot disturb.
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")
                register_sqlite_functions(dst)
                integrity = str(dst.execute("PRAGMA integrity_check").fetchone()[0])
            finally:
                dst.close()
        finally:
            src.close()
        if integrity != "ok":
            raise StorageError(f"the copy of {source} failed its integrity check: {integrity}")
    except BaseException as exc:
        with contextlib.suppress(OSError):
            dest.unlink()
        if isinstance(exc, sqlite3.Error):
            raise StorageError(f"backup of {source} failed: {type(exc).__name__}: {exc}") from None
        raise
    return integrity


async def pg_dump(url: URL, dest: Path) -> None:
    """``pg_dump --format=custom`` of ``url`` into the new file ``dest`` (removed again on failure).

    The password goes through the environment, never the command line, where ``ps`` would show it.

    Raises:
        StorageError: ``pg_dump`` is not on the PATH, or it failed (its first line, password cut out).
    """
    program = shutil.which(PG_DUMP)
    if program is None:
        raise StorageError(
            "pg_dump is not on the PATH, so a PostgreSQL backup cannot be made: install PostgreSQL's "
            "client tools (Debian/Ubuntu: apt-get install postgresql-client) or back up with your own tooling"
        )
    args = [program, "--format=custom", f"--file={dest}", "--no-password"]
    for flag, value in (("--host", url.host), ("--port", url.port), ("--username", url.username)):
        if value is not None:
            args.append(f"{flag}={value}")
    args.append(f"--dbname={url.database or ''}")
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    private_file(dest)
    try:
        process = await asyncio.create_subprocess_exec(
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        if process.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines() or [f"exit status {process.returncode}"]
            raise StorageError(f"pg_dump of {mask(url)} failed: {scrub(lines[0], url)}")
    except BaseException:
        with contextlib.suppress(OSError):
            dest.unlink()
        raise
