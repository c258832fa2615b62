"""Exceptions raised by tradestore.

The tree::

    StorageError                 every error tradestore raises itself
    ├── ValidationError          bad input, rejected before any SQL (also a ValueError)
    │   ├── ConflictError        the same key already stored with other values
    │   └── InvalidTransitionError  a state machine was asked for a move it does not allow
    ├── DuplicateError           a row with this unique key exists (also SQLAlchemy's IntegrityError)
    ├── NotConnectedError        the manager is not connected (connect() first) or is closed
    ├── ConfigurationError       unusable settings, e.g. an unsupported URL (also a ValueError)
    ├── NotFoundError            the row asked for does not exist (also a LookupError)
    ├── SchemaError              the database's schema revision does not match this code's
    ├── ReadOnlyError            a write in a read-only session (``get_session(readonly=True)``)
    └── TransientError           a passing failure; the unit of work was not applied: retry it
        ├── StorageBusyError     a lock was not granted in time (SQLite busy timeout,
        │                        PostgreSQL deadlock or lock timeout)
        └── ConnectionLostError  the connection broke, or none could be made (server
                                 restart, network drop)

Messages name the field and the value at fault and never contain a password.
``StorageBusyError`` and ``ConnectionLostError`` are translated at the engine boundary
from the driver's own errors, which stay chained as ``__cause__``. So that code written
against SQLAlchemy keeps working, three are also SQLAlchemy's errors: ``DuplicateError`` is
a ``sqlalchemy.exc.IntegrityError``, ``StorageBusyError`` and ``ConnectionLostError`` are
``sqlalchemy.exc.OperationalError``s. ``NotConnectedError`` is none of these: it is a
programming mistake, never worth retrying. Other errors of the database itself are raised
as SQLAlchemy raises them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError


class StorageError(Exception):
    """Base class of every error tradestore raises itself."""


class ValidationError(StorageError, ValueError):
    """A value was rejected before it reached the database."""


class ConflictError(ValidationError):
    """A row with the same key is already stored with different values; nothing was written."""


class InvalidTransitionError(ValidationError):
    """A state change that the state machine does not allow; nothing was written."""


class DuplicateError(StorageError, IntegrityError):
    """A row with the same unique key already exists; nothing was written.

    Also a ``sqlalchemy.exc.IntegrityError``, so code written against SQLAlchemy's error
    keeps working. The driver's error, when there is one, is ``__cause__`` and ``orig``.
    """

    def __init__(self, message: str, orig: BaseException | None = None) -> None:
        IntegrityError.__init__(self, None, None, orig if orig is not None else Exception(message))
        self.args = (message,)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,))


class NotConnectedError(StorageError):
    """The manager is used before ``connect()`` or after ``disconnect()``: a programming mistake.

    Never transient: retrying does not help until the code calls ``await manager.connect()``.
    """


class ConfigurationError(StorageError, ValueError):
    """The manager cannot be built from the settings given."""


class NotFoundError(StorageError, LookupError):
    """The row asked for does not exist."""


class SchemaError(StorageError):
    """The database's schema revision is not the one this code was written for.

    Raised by ``DatabaseManager.connect()`` for a database migrated by a newer tradestore,
    or for an older one when ``auto_migrate`` is off (the message gives the command that
    upgrades it).
    """


class ReadOnlyError(StorageError):
    """A write was attempted in a read-only transaction; it was refused and nothing was written.

    Raised for a write inside ``get_session(readonly=True)`` (SQLite ``query_only``,
    PostgreSQL ``READ ONLY``), and by a PostgreSQL standby, which refuses every write.
    Never transient: write in a session of ``get_session()``.
    """


class TransactionAbortedError(StorageError):
    """A statement of this PostgreSQL transaction failed earlier, so the server aborted it.

    PostgreSQL keeps nothing of a transaction once one of its statements failed (outside a
    savepoint that was rolled back): every later statement is refused, and its commit would
    roll it back. tradestore raises this instead of letting such a commit pass in silence.
    After an error inside a session, leave the session (nothing of it is written) or catch
    the error inside ``session.begin_nested()``.
    """


class TransientError(StorageError):
    """The operation failed for a passing reason and its transaction was rolled back.

    Nothing of the unit of work was written; running it again later may succeed. A
    failure while committing is the one exception: see :class:`ConnectionLostError`.
    """


class _OperationalError(OperationalError):
    """tradestore's message, and the shape of ``sqlalchemy.exc.OperationalError``.

    ``orig`` is the driver's error when there is one (also ``__cause__``).
    """

    def __init__(self, message: str, orig: BaseException | None = None) -> None:
        OperationalError.__init__(self, None, None, orig if orig is not None else Exception(message))
        self.args = (message,)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,))


class StorageBusyError(TransientError, _OperationalError):
    """A lock was not granted in time.

    SQLite: another connection or process held the write lock for longer than the busy
    timeout (``tradestore.engine.SQLITE_BUSY_TIMEOUT_MS``). PostgreSQL: the server broke a
    deadlock by failing this transaction, or a ``lock_timeout`` expired.
    """


class ConnectionLostError(TransientError, _OperationalError):
    """The connection to the database broke, or a new one could not be made.

    A PostgreSQL restart, a terminated backend or a network drop. The broken connection
    is discarded and the pool reconnects on the next use. If the connection broke while
    the transaction was committing, the server may have committed it before the loss.
    """
