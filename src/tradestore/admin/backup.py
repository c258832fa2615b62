"""Backups: SQLite through its online backup API, PostgreSQL through ``pg_dump``.

A SQLite backup is a consistent snapshot even while writers run (one read transaction copies
every page; in WAL mode writers carry on meanwhile), is a single file in rollback-journal
mode, passes ``PRAGMA integrity_check``, and is readable by its owner only (0600). Either kind
is written beside the destination under a temporary name and renamed into place only when
complete, so a failed backup never leaves a half-written file under the real name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import URL

from tradestore.admin.inventory import sqlite_path
from tradestore.dialects import register_sqlite_functions
from tradestore.engine import SQLITE_BUSY_TIMEOUT_MS
from tradestore.errors import ConfigurationError, StorageError
from tradestore.urls import backend_name, mask, scrub

PG_DUMP = "pg_dump"


@dataclass(frozen=True)
class BackupReport:
    """What a backup wrote."""

    database: str
    destination: str
    method: str
    size_bytes: int
    integrity: str | None = None


def destination_for(dest: Path, url: URL, *, overwrite: bool) -> Path:
    """The file to write: ``dest`` itself, or a time-stamped name inside ``dest`` when it is a folder.

    Raises:
        StorageError: the file exists and ``overwrite`` is off, or its folder does not exist.
    """
    if dest.is_dir():
        stem = Path(sqlite_path(url) or url.database or "tradestore").stem
        suffix = ".db" if backend_name(url) == "sqlite" else ".dump"
        dest = dest / f"{stem}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}{suffix}"
    if dest.exists() and not overwrite:
        raise StorageError(f"{dest} already exists: choose another name or pass --force to replace it")
    if not dest.parent.is_dir():
        raise StorageError(f"{dest.parent} is not a folder")
    return dest


def _private_file(path: Path) -> None:
    """Create ``path`` empty, readable by its owner only whatever the umask."""
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)


def _partial(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.partial-{os.getpid()}")


def sqlite_snapshot(source: Path, dest: Path) -> str:
    """Copy the SQLite database at ``source`` into the new file ``dest`` with the online backup API.

    Returns:
        The result of ``PRAGMA integrity_check`` on the copy (``'ok'``).

    Raises:
        StorageError: the source is missing or unreadable, or the copy fails its integrity check
            (nothing is left at ``dest`` then).
    """
    if not source.is_file():
        raise StorageError(f"no database file at {source}")
    _private_file(dest)
    try:
        src = sqlite3.connect(source, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)  # it only reads
        try:
            dst = sqlite3.connect(dest)
            try:
                # One step (pages=-1) is one read transaction: a snapshot writers cannot disturb.
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
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


async def backup(url: URL, dest: Path, *, overwrite: bool = False) -> BackupReport:
    """Back up the database at ``url`` into ``dest`` (a file, or a folder to put a time-stamped file in).

    SQLite: the online backup API (see the module docstring). PostgreSQL: ``pg_dump`` in its
    custom format (restore with ``pg_restore``), when it is on the PATH.

    Raises:
        StorageError: the destination exists (without ``overwrite``), ``pg_dump`` is missing or
            fails, or the copy fails its integrity check.
        ConfigurationError: an in-memory database, which has nothing on disk to back up.
    """
    target = destination_for(dest, url, overwrite=overwrite)
    partial = _partial(target)
    if backend_name(url) == "sqlite":
        source = sqlite_path(url)
        if source is None:
            raise ConfigurationError("an in-memory SQLite database lives only inside its process: nothing to back up")
        integrity = await asyncio.to_thread(sqlite_snapshot, Path(source), partial)
        method = "sqlite online backup"
    else:
        await _pg_dump(url, partial)
        integrity, method = None, "pg_dump (custom format)"
    os.replace(partial, target)
    os.chmod(target, 0o600)
    return BackupReport(mask(url), str(target), method, target.stat().st_size, integrity)


async def _pg_dump(url: URL, dest: Path) -> None:
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
        env["PGPASSWORD"] = str(url.password)  # never on the command line, where `ps` would show it
    _private_file(dest)
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
