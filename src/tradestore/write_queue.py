"""The queue of SQLite writers: writers of one database file, in every process, served in arrival order.

SQLite itself has no queue. A writer that finds the write lock taken sleeps in the busy
handler of the ``sqlite3`` module and tries again, with sleeps that grow to 100 ms: a bot
waiting behind an importer keeps missing the short gaps between its chunks, and waited
seconds in the measurements of issue 9 while the lock was free most of the time.

tradestore puts a queue in front of ``BEGIN IMMEDIATE``, made of two ``flock`` locks on
sidecar files that the kernel hands over without polling:

- ``<database>-writer``: held by the one tradestore writer of the file, from before its
  ``BEGIN IMMEDIATE`` until its commit or rollback;
- ``<database>-next``: held by the writer next in line while it waits for ``-writer``.
  Everyone else waits for ``-next`` in the kernel's queue, in arrival order. A writer that
  has just finished and wants to write again (an importer going from one chunk to the next)
  must queue for ``-next`` behind the one already waiting, instead of taking ``-writer``
  back before that one has even woken up.

Each connection, and so each process, has its own open files, so tasks of one process queue
as processes do. SQLite's busy timeout still covers writers that do not use tradestore (the
``sqlite3`` shell, another program); a crashed holder releases its locks with its process.

The write-ahead log is copied back into the database by a :class:`Checkpointer` thread,
not inside a writer's ``COMMIT``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import ClassVar

log = logging.getLogger("tradestore")

#: The sidecar files' suffixes, beside SQLite's own ``-wal`` and ``-shm``.
WRITER_SUFFIX = "-writer"
NEXT_SUFFIX = "-next"
#: SQLite's result code for a lock not granted, so that the engine translates it like SQLite's own.
_SQLITE_BUSY = 5


def _open(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class _Waiter:
    """The blocking part of one turn, in a helper thread, so that its caller can give up in time.

    A caller that gave up leaves the files to the helper, which closes them (dropping both
    locks) as soon as the turn it was waiting for comes.
    """

    def __init__(self, writer_fd: int, next_fd: int, *, next_held: bool) -> None:
        self.writer_fd, self.next_fd, self.next_held = writer_fd, next_fd, next_held
        self.granted = threading.Event()
        self.abandoned = False
        self.guard = threading.Lock()

    def run(self) -> None:
        try:
            if not self.next_held:
                fcntl.flock(self.next_fd, fcntl.LOCK_EX)
            fcntl.flock(self.writer_fd, fcntl.LOCK_EX)
            fcntl.flock(self.next_fd, fcntl.LOCK_UN)
        except OSError:
            pass  # the caller times out and reports the lock as not granted
        else:
            with self.guard:
                if not self.abandoned:
                    self.granted.set()
                    return
        os.close(self.writer_fd)
        os.close(self.next_fd)

    def wait(self, timeout_s: float) -> bool:
        if self.granted.wait(timeout_s):
            return True
        with self.guard:
            self.abandoned = not self.granted.is_set()
            return not self.abandoned


class WriteQueue:
    """The writer queue of one SQLite file, as seen by one connection (one turn at a time).

    Args:
        database: the path of the SQLite database file.
    """

    def __init__(self, database: str) -> None:
        path = os.path.abspath(database)
        self.writer_path, self.next_path = path + WRITER_SUFFIX, path + NEXT_SUFFIX
        self._fds: tuple[int, int] | None = None  # opened on the first write, kept until close()
        self.held = False

    def acquire(self, timeout_s: float) -> None:
        """Wait for this writer's turn, at most ``timeout_s`` seconds; holding it already is fine.

        Blocks the calling thread (aiosqlite's worker thread of the connection, never the event loop).

        Raises:
            sqlite3.OperationalError: not granted in time (``SQLITE_BUSY``, translated by the engine
                into ``StorageBusyError`` like SQLite's own "database is locked").
        """
        if self.held:
            return
        writer_fd, next_fd = self._files()
        next_held = _try_lock(next_fd)
        if next_held and _try_lock(writer_fd):
            fcntl.flock(next_fd, fcntl.LOCK_UN)
            self.held = True
            return
        waiter = _Waiter(writer_fd, next_fd, next_held=next_held)
        threading.Thread(target=waiter.run, name="tradestore-write-queue", daemon=True).start()
        if not waiter.wait(timeout_s):
            self._fds = None  # the helper owns (and closes) them now
            error = sqlite3.OperationalError(
                f"database is locked: other tradestore writers kept {os.path.basename(self.writer_path)} "
                f"for over {timeout_s * 1000:.0f} ms"
            )
            error.sqlite_errorcode = _SQLITE_BUSY
            raise error
        self.held = True

    def try_acquire(self) -> bool:
        """Take this writer's turn if nobody holds or waits for it, without waiting; ``True`` if held."""
        if self.held:
            return True
        writer_fd, next_fd = self._files()
        if not _try_lock(next_fd):
            return False
        self.held = _try_lock(writer_fd)
        fcntl.flock(next_fd, fcntl.LOCK_UN)
        return self.held

    def _files(self) -> tuple[int, int]:
        """The ``-writer`` and ``-next`` files, opened on the first write and kept until :meth:`close`."""
        if self._fds is None:
            self._fds = (_open(self.writer_path), _open(self.next_path))
        return self._fds

    def release(self) -> None:
        """Let the next writer in; calling it again does nothing."""
        if self.held and self._fds is not None:
            fcntl.flock(self._fds[0], fcntl.LOCK_UN)
        self.held = False

    def close(self) -> None:
        """Release, and close the files."""
        self.release()
        fds, self._fds = self._fds, None
        for fd in fds or ():
            os.close(fd)


class Checkpointer:
    """Copies a SQLite file's write-ahead log back into the database, off the writers' path.

    SQLite's automatic checkpoint runs inside the ``COMMIT`` that crosses 1,000 WAL pages:
    that writer (often a bot) pays for copying the pages and syncing the file, and holds its
    turn in the :class:`WriteQueue` meanwhile. tradestore connections turn it off
    (``wal_autocheckpoint=0``) and signal this checkpointer instead: a thread that runs a
    ``PASSIVE`` checkpoint (it never blocks a reader or a writer) on a connection of its own,
    at most once per :attr:`INTERVAL_S` while commits keep coming, and ends after
    :attr:`IDLE_S` without one. One per file and process.
    """

    INTERVAL_S = 0.5
    IDLE_S = 10.0
    _all: ClassVar[dict[tuple[int, str], Checkpointer]] = {}
    _all_guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, database: str) -> None:
        self.database = database
        self._dirty = threading.Event()
        self._guard = threading.Lock()
        self._running = False

    @classmethod
    def of(cls, database: str) -> Checkpointer:
        """The checkpointer of ``database`` in this process (a forked child gets its own)."""
        key = (os.getpid(), os.path.abspath(database))
        with cls._all_guard:
            checkpointer = cls._all.get(key)
            if checkpointer is None:
                checkpointer = cls._all[key] = cls(key[1])
            return checkpointer

    def committed(self) -> None:
        """A transaction was committed: checkpoint soon."""
        with self._guard:
            self._dirty.set()
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="tradestore-checkpoint", daemon=True).start()

    def _run(self) -> None:
        while True:
            if not self._dirty.wait(self.IDLE_S):
                with self._guard:
                    if not self._dirty.is_set():
                        self._running = False
                        return
            time.sleep(self.INTERVAL_S)  # one checkpoint for all the commits of an interval
            self._dirty.clear()
            self.checkpoint()

    def checkpoint(self) -> None:
        """One ``PASSIVE`` checkpoint; a failure (the file is gone, say) is logged and skipped."""
        try:
            # mode=rw: never create a database that was removed meanwhile. A connection of its own
            # each time: holding one open would keep the -wal and -shm files after every
            # manager has disconnected.
            conn = sqlite3.connect(f"{Path(self.database).as_uri()}?mode=rw", uri=True, check_same_thread=False)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            log.debug("checkpoint of %s skipped: %s", self.database, exc)
