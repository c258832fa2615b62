"""Exceptions raised by tradestore.

The tree::

    StorageError                 every error tradestore raises itself
    ├── ValidationError          bad input, rejected before any SQL (also a ValueError)
    ├── ConfigurationError       unusable settings, e.g. an unsupported URL (also a ValueError)
    ├── NotFoundError            the row asked for does not exist (also a LookupError)
    └── SchemaError              the database's schema revision does not match this code's

Messages name the field and the value at fault and never contain a password.
Errors of the database itself (for example ``sqlalchemy.exc.IntegrityError`` for a
duplicate key in ``insert_many``) are raised as SQLAlchemy raises them.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error tradestore raises itself."""


class ValidationError(StorageError, ValueError):
    """A value was rejected before it reached the database."""


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
