"""Backups: SQLite through its online backup API, PostgreSQL through ``pg_dump``.

A SQLite backup is a consistent snapshot even while writers run (one read transaction copies
every page; in WAL mode writers carry on meanwhile), is a single file in rollback-journal
mode, passes ``PRAGMA integrity_check``, and is readable by its owner only (0600). Either kind
is written beside the destination under a temporary name and renamed into place only when
complete, so a failed backup never leaves a half-written file under the real name. How each
backend copies itself is :mod:`tradestore.dialects.operations`'.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import URL

from tradestore import engine
from tradestore.dialects.operations import operations
from tradestore.errors import StorageError
from tradestore.urls import mask


@dataclass(frozen=True)
class BackupReport:
    """What a backup wrote.

    Attributes:
        database: the URL backed up, password masked.
        destination: the backup file.
        method: ``'sqlite online backup'`` or ``'pg_dump (custom format)'``.
        size_bytes: the backup file's size.
        integrity: ``PRAGMA integrity_check`` of a SQLite copy (``'ok'``); ``None`` for pg_dump.
    """

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
        ops = operations(url)
        stem = Path(str(ops.file() or url.database or "tradestore")).stem
        dest = dest / f"{stem}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}{ops.backup_suffix}"
    if dest.exists() and not overwrite:
        raise StorageError(f"{dest} already exists: choose another name or pass --force to replace it")
    if not dest.parent.is_dir():
        raise StorageError(f"{dest.parent} is not a folder")
    return dest


async def backup(url: URL, dest: Path, *, overwrite: bool = False) -> BackupReport:
    """Back up the database at ``url`` into ``dest`` (a file, or a folder to put a time-stamped file in).

    SQLite: the online backup API (see the module docstring). PostgreSQL: ``pg_dump`` in its
    custom format (restore with ``pg_restore``), when it is on the PATH.

    Raises:
        StorageError: the destination exists (without ``overwrite``), ``pg_dump`` is missing or
            fails, or the copy fails its integrity check.
        ConfigurationError: an in-memory database, which has nothing on disk to back up.
    """
    ops = operations(url)
    target = destination_for(dest, url, overwrite=overwrite)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    integrity = await ops.backup(partial, busy_timeout_ms=engine.SQLITE_BUSY_TIMEOUT_MS)
    os.replace(partial, target)
    os.chmod(target, 0o600)
    return BackupReport(mask(url), str(target), ops.backup_method, target.stat().st_size, integrity)
