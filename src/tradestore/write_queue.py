"""The queue of SQLite writers: writers of one database file, in every process, served in arrival order.

SQLite itself has no queue. A writer that finds the write lock taken sleeps in the busy
handler of the ``sqlite3`` module and tries again, with sleeps that grow to 100 ms: a bot
waiting behind an importer keeps missing the short gaps between its chunks, and waited
seconds in the measurements of issue 9 while the lock was free most of the time.

tradestore puts a queue in front of ``BEGIN IMMEDIATE``: an exclusive ``flock`` on a
sidecar file, ``<database>-lock``. The kernel keeps the processes (and the connections of
one process, each with its own open file) that wait for it in a queue and hands the lock
over as soon as it is released, with no polling. The SQLite lock is then taken at once;
SQLite's busy timeout still covers writers that do not use tradestore (the ``sqlite3``
shell, another program), and crashed holders release both locks with their process.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading

#: The sidecar file's suffix, beside SQLite's own ``-wal`` and ``-shm``.
SUFFIX = "-lock"
#: SQLite's result code for a lock not granted, so that the engine translates it like SQLite's own.
_SQLITE_BUSY = 5


class _Waiter:
    """One blocked ``flock`` call in a helper thread, abandoned when its caller gives up."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.granted = threading.Event()
        self.abandoned = False
        self.guard = threading.Lock()

    def run(self) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError:
            pass  # the caller times out and reports the lock as not granted
        else:
            with self.guard:
                if not self.abandoned:
                    self.granted.set()
                    return
        os.close(self.fd)  # granted after the caller gave up (or failed): let the next writer in

    def wait(self, timeout_s: float) -> bool:
        if self.granted.wait(timeout_s):
            return True
        with self.guard:
            self.abandoned = not self.granted.is_set()
            return not self.abandoned


class WriteQueue:
    """The writer queue of one SQLite file, used by one connection (one holder at a time).

    Args:
        database: the path of the SQLite database file.
    """

    def __init__(self, database: str) -> None:
        self.path = os.path.abspath(database) + SUFFIX
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this connection holds the queue's lock."""
        return self._fd is not None

    def acquire(self, timeout_s: float) -> None:
        """Wait for this writer's turn, at most ``timeout_s`` seconds; holding it already is fine.

        Blocks the calling thread (aiosqlite's worker thread of the connection, never the event loop).

        Raises:
            sqlite3.OperationalError: not granted in time (``SQLITE_BUSY``, translated by the engine
                into ``StorageBusyError`` like SQLite's own "database is locked").
        """
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Wait in the kernel's queue; a helper thread does it so that the wait can time out.
            waiter = _Waiter(fd)
            threading.Thread(target=waiter.run, name="tradestore-write-queue", daemon=True).start()
            if not waiter.wait(timeout_s):  # the helper closes fd when it is granted at last
                error = sqlite3.OperationalError(
                    f"database is locked: another tradestore writer kept {os.path.basename(self.path)} "
                    f"for over {timeout_s * 1000:.0f} ms"
                )
                error.sqlite_errorcode = _SQLITE_BUSY
                raise error from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Let the next writer in; calling it again does nothing."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file drops its flock
