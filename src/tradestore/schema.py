"""Schema revisions: which one a database is at, which one this code needs, and moving between them.

The migration scripts ship inside the package (``tradestore/migrations``), and Alembic's
``Config`` is built here in code, so everything below works from an installed wheel as well
as from a checkout, without ``alembic.ini``.

A database made by ``create_all()`` before revisions were recorded has the tables but no
``alembic_version``: it is taken to be at :data:`BASELINE`, the initial schema, which is what
that code created.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from tradestore.dialects import backend
from tradestore.errors import SchemaError
from tradestore.models import Base
from tradestore.urls import mask

log = logging.getLogger("tradestore")

#: Where the migration scripts are, inside the installed package.
SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"
#: The revision an unversioned database with tradestore tables is taken to be at.
BASELINE = "0001"
VERSION_TABLE = "alembic_version"
TABLES: tuple[str, ...] = tuple(sorted(Base.metadata.tables))

Status = Literal["empty", "current", "older", "newer"]


@lru_cache(maxsize=4)
def _scripts(location: Path) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(location=location))


#: Called by long migrations with (rows done, rows in all); see :func:`upgrade`.
MigrationProgress = Callable[[int, int], None]
#: Where a migration script finds the progress callback: ``context.config.attributes[PROGRESS]``.
PROGRESS = "tradestore.progress"


def alembic_config(
    connection: Connection | None = None, *, location: Path | None = None, progress: MigrationProgress | None = None
) -> Config:
    """An Alembic ``Config`` for the packaged migrations, built without ``alembic.ini``.

    Args:
        connection: run the migrations on this connection (inside its transaction) instead of
            letting ``env.py`` open one.
        location: the folder of migration scripts; :data:`SCRIPT_LOCATION` by default.
        progress: told how far a long migration (one converting rows in batches) has come.
    """
    config = Config()
    # ConfigParser interpolates '%': a path holding one must be escaped.
    config.set_main_option("script_location", str(location or SCRIPT_LOCATION).replace("%", "%%"))
    config.attributes["configure_logger"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    if progress is not None:
        config.attributes[PROGRESS] = progress
    return config


def scripts() -> ScriptDirectory:
    """The packaged migration scripts (read once per location)."""
    return _scripts(SCRIPT_LOCATION)


def head_revision() -> str:
    """The newest revision this code knows: the one it needs the database at."""
    head = scripts().get_current_head()
    if head is None:  # pragma: no cover - the package always ships its migrations
        raise SchemaError(f"no migration scripts found in {SCRIPT_LOCATION}")
    return head


def is_known(revision: str) -> bool:
    """Whether ``revision`` is one of this code's migration scripts."""
    try:
        return scripts().get_revision(revision) is not None
    except CommandError:
        return False


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands against this code's migrations.

    Attributes:
        revisions: what ``alembic_version`` records (empty when nothing is recorded).
        head: the revision this code needs.
        tables: the tradestore tables present.
    """

    revisions: tuple[str, ...]
    head: str
    tables: tuple[str, ...]

    @property
    def unversioned(self) -> bool:
        """Tables but no recorded revision: made by ``create_all()`` before revisions were stamped."""
        return not self.revisions and bool(self.tables)

    @property
    def revision(self) -> str | None:
        """The revision the database is at (:data:`BASELINE` when unversioned); ``None`` when empty."""
        if self.revisions:
            return ",".join(self.revisions)
        return BASELINE if self.tables else None

    @property
    def status(self) -> Status:
        """``empty`` (no schema), ``current`` (at head), ``older`` (behind head) or ``newer`` (unknown here)."""
        revisions = self.revisions or ((BASELINE,) if self.tables else ())
        if not revisions:
            return "empty"
        if not all(is_known(r) for r in revisions):
            return "newer"
        return "current" if revisions == (self.head,) else "older"


def read_state(connection: Connection) -> SchemaState:
    """The :class:`SchemaState` of the database behind a (sync) connection; reads only."""
    present = set(inspect(connection).get_table_names())
    revisions: tuple[str, ...] = ()
    if VERSION_TABLE in present:
        revisions = tuple(sorted(MigrationContext.configure(connection).get_current_heads()))
    return SchemaState(revisions, head_revision(), tuple(t for t in TABLES if t in present))


def upgrade_hint(database: str, has_password: bool) -> str:
    """The command that upgrades ``database`` (a masked URL), as a user would type it."""
    url = "<your database URL>" if has_password else database
    return f"tradestore db upgrade --url '{url}'"


def refusal(state: SchemaState, database: str, *, has_password: bool) -> str | None:
    """Why code at ``state.head`` must not use this database, or ``None`` when it may."""
    if state.status == "newer":
        return (
            f"{database} is at schema revision {state.revision}, which this tradestore does not know "
            f"(it knows up to {state.head}): the database was migrated by a newer tradestore; "
            "use that version (or a newer one) with it"
        )
    if state.status == "older":
        return (
            f"{database} is at schema revision {state.revision} but this tradestore needs {state.head}: "
            f"back it up, then run `{upgrade_hint(database, has_password)}` "
            "(or open it with DatabaseManager(..., auto_migrate=True))"
        )
    return None


def stamp_head(connection: Connection) -> None:
    """Record the head revision in ``alembic_version`` (after ``create_all()`` built the schema)."""
    MigrationContext.configure(connection).stamp(scripts(), "head")


def _migrate(
    connection: Connection, run: Callable[[Config], None], progress: MigrationProgress | None = None
) -> tuple[str | None, str | None]:
    # Two processes migrating one database at once: the second waits here, then finds it done.
    backend(connection.dialect).lock_migrations(connection)
    before = read_state(connection)
    if before.status == "newer":
        raise SchemaError(
            f"the database is at schema revision {before.revision}, which this tradestore does not know "
            f"(it knows up to {before.head}); it was migrated by a newer tradestore"
        )
    if before.unversioned:
        MigrationContext.configure(connection).stamp(scripts(), BASELINE)
    try:
        run(alembic_config(connection, progress=progress))
    except CommandError as exc:
        raise SchemaError(str(exc).splitlines()[0]) from None
    return before.revision, read_state(connection).revision


def upgrade_sync(
    connection: Connection, revision: str = "head", progress: MigrationProgress | None = None
) -> tuple[str | None, str | None]:
    """Upgrade to ``revision`` inside the connection's transaction; returns (before, after)."""
    return _migrate(connection, lambda config: command.upgrade(config, revision), progress)


def downgrade_sync(
    connection: Connection, revision: str, progress: MigrationProgress | None = None
) -> tuple[str | None, str | None]:
    """Downgrade to ``revision`` (``base`` removes every table) in the connection's transaction."""
    return _migrate(connection, lambda config: command.downgrade(config, revision), progress)


_RUNNING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _one_at_a_time() -> asyncio.Lock:
    """The lock that lets one migration run at a time in this event loop.

    Alembic's ``context`` and ``op`` are module-wide proxies: two migrations interleaved on one
    event loop (even of two different databases) would run each other's steps.
    """
    loop = asyncio.get_running_loop()
    lock = _RUNNING.get(loop)
    if lock is None:
        lock = _RUNNING[loop] = asyncio.Lock()
    return lock


async def upgrade(
    engine: AsyncEngine, revision: str = "head", *, progress: MigrationProgress | None = None
) -> tuple[str | None, str | None]:
    """Upgrade the database to ``revision`` in one transaction.

    ``progress`` is called with (rows done, rows in all) by migrations that convert rows in
    batches (0005 rewrites every candle).

    Returns:
        The revision before and after (``None`` for an empty database).

    Raises:
        SchemaError: the database is newer than this code, or ``revision`` is unknown.
    """
    async with _one_at_a_time(), engine.begin() as conn:
        before, after = await conn.run_sync(upgrade_sync, revision, progress)
    if before != after:
        log.info("schema of %s upgraded: %s -> %s", mask(engine.url), before or "(none)", after)
    return before, after


async def downgrade(
    engine: AsyncEngine, revision: str, *, progress: MigrationProgress | None = None
) -> tuple[str | None, str | None]:
    """Downgrade the database to ``revision`` in one transaction; see :func:`upgrade`."""
    async with _one_at_a_time(), engine.begin() as conn:
        before, after = await conn.run_sync(downgrade_sync, revision, progress)
    if before != after:
        log.info("schema of %s downgraded: %s -> %s", mask(engine.url), before, after or "(none)")
    return before, after


async def state_of(engine: AsyncEngine) -> SchemaState:
    """The :class:`SchemaState` of the database behind ``engine``."""
    async with engine.connect() as conn:
        return await conn.run_sync(read_state)


async def ensure_current(engine: AsyncEngine, database: str, *, has_password: bool, auto_migrate: bool) -> None:
    """Refuse a database this code must not use; with ``auto_migrate`` upgrade an older or empty one.

    An empty database is accepted as it is (``create_all()`` or a migration will build it).

    Raises:
        SchemaError: the database is newer than this code, or older and ``auto_migrate`` is off.
    """
    state = await state_of(engine)
    if auto_migrate and state.status in ("older", "empty"):
        await upgrade(engine)
        return
    reason = refusal(state, database, has_password=has_password)
    if reason is not None:
        raise SchemaError(reason)


def differences(connection: Connection) -> list[Any]:
    """What Alembic's autogenerate finds different between the database and ``tradestore.models``."""
    with warnings.catch_warnings():
        # Neither backend's reflection reads expression indexes back (the open-position index).
        warnings.filterwarnings("ignore", message=".*expression-based index")
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))
