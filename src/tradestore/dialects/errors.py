"""How each driver says "a lock was not granted", "the connection broke" and "this transaction
is read-only", as typed errors.

Translated at the engine boundary (a ``handle_error`` hook, see :mod:`tradestore.engine`) and
by the bulk paths that talk to the driver directly (:meth:`Backend.fetch`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

from tradestore.errors import (
    ConnectionLostError,
    ReadOnlyError,
    StorageBusyError,
    StorageError,
    TransactionAbortedError,
)
from tradestore.urls import describe, mask

#: SQLite's primary result codes for a lock not granted: SQLITE_BUSY, SQLITE_LOCKED.
_SQLITE_BUSY_CODES = (5, 6)
#: PostgreSQL SQLSTATEs of a lock not granted: deadlock_detected, lock_not_available.
_PG_BUSY_STATES = ("40P01", "55P03")
#: PostgreSQL SQLSTATE classes of a broken connection: connection_exception (08) and the
#: server going away (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now).
_PG_LOST_STATES = ("08", "57P")
_ASYNCPG_LOST_WORDS = ("connection is closed", "cannot switch to state")
#: SQLite's result code for a write refused by a read-only connection (``query_only``); PostgreSQL's
#: SQLSTATE read_only_sql_transaction (a READ ONLY transaction, or a hot standby).
_SQLITE_READONLY = 8
_PG_READ_ONLY_STATE = "25006"
#: PostgreSQL's SQLSTATE in_failed_sql_transaction: a statement after one that failed.
_PG_ABORTED_STATE = "25P02"
#: Set in a pooled PostgreSQL connection's ``info`` when a statement of its transaction failed
#: (outside a savepoint rolled back since): PostgreSQL has aborted that transaction.
FAILED = "tradestore.failed"
#: What to do about a PostgreSQL transaction that an earlier error aborted.
ABORTED_ADVICE = (
    "an earlier statement of this transaction failed (or was cancelled), so PostgreSQL aborted the transaction "
    "and nothing of it can be written; leave the session after an error (its writes are rolled back), "
    "or catch the error inside session.begin_nested()"
)


def interrupted_begin(adapter: Any) -> bool:
    """Whether a ``BEGIN`` on this pooled asyncpg connection was interrupted (cancelled, or it failed).

    asyncpg then still counts a transaction its SQLAlchemy adapter does not know of: the server
    may be inside a transaction nothing would end, and the connection's next ``BEGIN`` would be
    a ``SAVEPOINT`` inside it. :func:`end_interrupted_begin` ends it before the connection is
    used again or goes back to the pool.
    """
    driver = adapter.driver_connection
    return (
        isinstance(driver, asyncpg.Connection)
        and adapter._transaction is None
        and driver._top_xact is not None
        and not driver.is_closed()
    )


#: Seconds the ``ROLLBACK`` after an interrupted ``BEGIN`` may take before the connection is closed instead.
CLEANUP_TIMEOUT_S = 2.0


async def end_interrupted_begin(adapter: Any) -> None:
    """Forget an interrupted ``BEGIN`` (see :func:`interrupted_begin`) and roll back whatever it began.

    A ``ROLLBACK`` outside a transaction is only a warning, so this is safe whether or not the
    server received the ``BEGIN``. If the server does not answer within :data:`CLEANUP_TIMEOUT_S`
    (a hung replica), or the ``ROLLBACK`` is cancelled, the connection is closed instead: its next
    checkout makes a new one.
    """
    driver = adapter.driver_connection
    driver._top_xact = None
    try:
        await asyncio.wait_for(driver.execute("ROLLBACK"), CLEANUP_TIMEOUT_S)
    except BaseException as exc:  # cancelled too: nothing would know the server is in a transaction
        driver.terminate()
        if not isinstance(exc, Exception):
            raise


def note_failure(dialect_name: str, info: dict[Any, Any] | None, typed: StorageError | None) -> None:
    """Note in a pooled connection's ``info`` that a statement failed, when that aborts its transaction.

    PostgreSQL aborts the whole transaction at a failed statement (not a lost connection: that
    connection is discarded); ``info`` is ``None`` when the connection is already gone.
    """
    if dialect_name == "postgresql" and info is not None and not isinstance(typed, ConnectionLostError):
        info[FAILED] = True


def translate(
    error: Exception, url: URL | None, *, disconnect: bool = False, busy_ms: int | None = None
) -> StorageError | None:
    """The typed error for a driver's ``error``: a write refused as read-only (:class:`ReadOnlyError`),
    a statement in an aborted PostgreSQL transaction (:class:`TransactionAbortedError`), a lock
    not granted or a lost connection (both ``TransientError``), else ``None``.

    Used by the engine's ``handle_error`` hook and by the bulk paths that talk to the driver
    directly. The driver's error is the typed error's ``orig``; raise it ``from`` the driver's.

    Args:
        error: what the driver raised.
        url: the database's URL, for the message (its password never appears).
        disconnect: SQLAlchemy already judged the connection broken.
        busy_ms: the SQLite busy timeout, for the message.
    """
    where = mask(url) if url is not None else "the database"
    detail = describe(error, url)
    if _write_refused(error):
        return ReadOnlyError(
            f"{where}: a write was refused: the transaction is read-only ({detail}); writes belong in a "
            "session of get_session(), not get_session(readonly=True) (or the file or server is read-only)"
        )
    if getattr(error, "sqlstate", None) == _PG_ABORTED_STATE:
        return TransactionAbortedError(f"{where}: {ABORTED_ADVICE} ({detail})")
    if _lock_not_granted(error):
        waited = f" for {busy_ms} ms" if isinstance(error, sqlite3.Error) and busy_ms is not None else ""
        return StorageBusyError(
            f"{where}: a lock was not granted{waited} ({detail}); the transaction was rolled back: retry it", error
        )
    if disconnect or _connection_broken(error):
        return ConnectionLostError(
            f"{where}: the connection was lost ({detail}); a transaction not yet committed was rolled "
            "back, and the next session reconnects",
            error,
        )
    return None


def _write_refused(error: Exception) -> bool:
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", 0) & 0xFF == _SQLITE_READONLY
    return getattr(error, "sqlstate", None) == _PG_READ_ONLY_STATE


def _lock_not_granted(error: Exception) -> bool:
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", 0) & 0xFF in _SQLITE_BUSY_CODES
    return getattr(error, "sqlstate", None) in _PG_BUSY_STATES


def _connection_broken(error: Exception) -> bool:
    if isinstance(error, OSError):  # reset, refused, timed out: the socket itself failed
        return True
    if isinstance(error, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        # asyncpg's words for a backend that went away under a direct driver call.
        return any(words in str(error) for words in _ASYNCPG_LOST_WORDS)
    state = getattr(error, "sqlstate", None)
    return isinstance(state, str) and state.startswith(_PG_LOST_STATES)


#: PostgreSQL's SQLSTATE of a unique key already taken (unique_violation).
_PG_UNIQUE_STATE = "23505"
#: SQLite's extended result codes of the same: SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE.
_SQLITE_UNIQUE_CODES = (1555, 2067)


def is_unique_violation(error: BaseException | None) -> bool:
    """Whether a driver's ``error`` says a row with the same unique key exists."""
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", None) in _SQLITE_UNIQUE_CODES
    return getattr(error, "sqlstate", None) == _PG_UNIQUE_STATE
