"""``tradestore db upgrade | downgrade REV | current | check``: the schema revision, through Alembic."""

from __future__ import annotations

import argparse
from typing import Any

from tradestore import schema
from tradestore.admin.inventory import row_counts
from tradestore.cli.access import engine_for
from tradestore.cli.console import CommandError, Console, pairs
from tradestore.urls import mask, resolve


def _revision(value: str | None) -> str:
    return value or "(none)"


async def upgrade(args: argparse.Namespace, console: Console) -> int:
    """Upgrade to ``args.revision`` (head by default), creating the database file if needed."""
    url = resolve(args.url)
    progress = console.progress("converting", unit="rows")
    try:
        async with engine_for(url, must_exist=False) as engine:
            before, after = await schema.upgrade(engine, args.revision, progress=progress.update)
    finally:
        progress.close()
    data = {"database": mask(url), "before": before, "after": after, "head": schema.head_revision()}

    def human() -> str:
        if before == after:
            return f"{mask(url)} is already at {_revision(after)}: nothing to do"
        return f"upgraded {mask(url)}: {_revision(before)} -> {_revision(after)}"

    console.emit(data, human)
    return 0


async def downgrade(args: argparse.Namespace, console: Console) -> int:
    """Downgrade to ``args.revision``; refuses a database holding rows unless ``--yes``."""
    url = resolve(args.url)
    async with engine_for(url) as engine:
        state = await schema.state_of(engine)
        if state.tables and not args.yes:
            async with engine.connect() as conn:
                rows = sum((await row_counts(conn, state.tables)).values())
            if rows:
                raise CommandError(
                    f"a downgrade can drop tables and columns with their data, and {mask(url)} holds {rows:,} rows: "
                    "back it up (`tradestore backup`), then pass --yes"
                )
        progress = console.progress("converting", unit="rows")
        try:
            before, after = await schema.downgrade(engine, args.revision, progress=progress.update)
        finally:
            progress.close()
    data = {"database": mask(url), "before": before, "after": after, "head": schema.head_revision()}
    console.emit(data, lambda: f"downgraded {mask(url)}: {_revision(before)} -> {_revision(after)}")
    return 0


def _state_dict(url: str, state: schema.SchemaState) -> dict[str, Any]:
    return {
        "database": url,
        "revision": state.revision,
        "head": state.head,
        "status": state.status,
        "unversioned": state.unversioned,
        "tables": list(state.tables),
    }


_MEANING = {
    "empty": "no tradestore schema yet (`tradestore db upgrade` creates it)",
    "current": "at the head revision: this tradestore can use it",
    "older": "behind this tradestore: `tradestore db upgrade` brings it up to date",
    "newer": "migrated by a newer tradestore: use that version with it",
}


async def current(args: argparse.Namespace, console: Console) -> int:
    """Show the database's revision next to this code's head."""
    url = resolve(args.url)
    async with engine_for(url) as engine:
        state = await schema.state_of(engine)
    data = _state_dict(mask(url), state)

    def human() -> str:
        revision = _revision(state.revision) + (" (unversioned: made by create_all)" if state.unversioned else "")
        return pairs(
            {"database": mask(url), "revision": revision, "head": state.head, "status": _MEANING[state.status]}
        )

    console.emit(data, human)
    return 0


def describe_difference(difference: Any) -> str:
    """One line for one item of Alembic's ``compare_metadata`` output."""
    if isinstance(difference, list):
        return "; ".join(describe_difference(d) for d in difference)
    operation, *objects = difference
    names = [getattr(o, "name", o) for o in objects if o is not None and not isinstance(o, dict)]
    return " ".join(str(x) for x in [operation, *names[:3]])


async def check(args: argparse.Namespace, console: Console) -> int:
    """Succeed only when the database is at head and its tables match the code's models."""
    url = resolve(args.url)
    async with engine_for(url) as engine:
        state = await schema.state_of(engine)
        differences: list[str] = []
        if state.status == "current":
            async with engine.connect() as conn:
                differences = [describe_difference(d) for d in await conn.run_sync(schema.differences)]
    data = _state_dict(mask(url), state) | {
        "differences": differences,
        "ok": state.status == "current" and not differences,
    }
    lines = {"database": mask(url), "revision": _revision(state.revision), "head": state.head}
    console.emit(data, lambda: pairs(lines | {"status": _MEANING[state.status], "differences": len(differences)}))
    if state.status != "current":
        raise CommandError(f"{mask(url)} is {state.status} (revision {_revision(state.revision)}, head {state.head})")
    if differences:
        raise CommandError(
            f"{mask(url)} differs from the models: {differences[0]}"
            + (f" (and {len(differences) - 1} more)" if len(differences) > 1 else "")
        )
    return 0
