"""Copy every tradestore table from one database to another (SQLite ⇄ PostgreSQL), then prove it.

The copy reads a consistent snapshot of the source (a SQLite file is first snapshotted with
the online backup API; PostgreSQL is read in one ``REPEATABLE READ`` transaction), so the bot
may keep writing meanwhile. The target is written in one transaction: its schema is created
by the migrations when it is empty, rows go in by chunks, and before the commit the copy is
verified table by table (row counts, and a checksum of the contents); a mismatch or any error
rolls everything back, so the target is either the complete, verified copy or untouched.

The checksum of a table is the sum, modulo 2**64, of a SHA-256 digest of each row's values
(every column but the surrogate ``id``): independent of row order and of the backend, and
additive, so an appended copy is verified as
``checksum(target before) + checksum(source) == checksum(target after)``. Values are compared
exactly as both backends store them: a decimal by its exact value, every digit (PostgreSQL
keeps ``1E+3`` as ``1000``, SQLite keeps the text); a JSON document (event details, trade
metadata) by its stored text read back exactly, keys in any order, each number by its exact
value (PostgreSQL's JSONB keeps ``1e16`` as ``10000000000000000`` and ``-0.0`` as ``0.0``).
A JSON ``null`` and SQL ``NULL`` both mean "no document" and count the same.

Candles name their series by a small integer id (``ohlcv_series``), which differs between
databases once rows are appended: candle rows are compared and written with the series'
names instead, and the series ledger is not copied as a table but carried over (or, when
appending, recomputed from the bars) and checked against the bars before the commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Select, Table, Text, cast, func, insert, literal, select, tuple_, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tradestore import engine, schema
from tradestore.admin.inventory import row_counts
from tradestore.dialects.operations import operations
from tradestore.errors import ConfigurationError, SchemaError, StorageError
from tradestore.health import open_engine
from tradestore.models import Base
from tradestore.pages import keyset_pages
from tradestore.urls import is_memory, mask
from tradestore.values import EXACT
from tradestore.write_queue import NEXT_SUFFIX, WRITER_SUFFIX

#: Rows read and written per round trip.
DEFAULT_CHUNK_ROWS = 5_000
_MOD = 2**64

#: Called with (rows copied so far, rows to copy in all).
CopyProgress = Callable[[int, int], None]


def _number(value: Decimal) -> str:
    """A number's exact value as text: every digit kept, no trailing zeros, no sign on zero."""
    if not value:
        return "0"
    return str(value.normalize(EXACT))


def _json_value(value: Any) -> str:
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _json_value(v) for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(_json_value, value)) + "]"
    if isinstance(value, Decimal):
        return _number(value)
    return json.dumps(value, ensure_ascii=False)  # a string, true, false or null


def json_canonical(document: str | None) -> str | None:
    """The canonical text of a stored JSON document: keys sorted, numbers by exact value; ``None`` for null."""
    if document is None:
        return None
    value = json.loads(document, parse_float=Decimal, parse_int=Decimal)
    return None if value is None else _json_value(value)


def _canonical(value: Any) -> str:
    if value is None:
        return "\x00"
    if isinstance(value, Decimal):
        return "d" + _number(value)
    if isinstance(value, datetime):
        return "t" + value.isoformat()
    return type(value).__name__[0] + str(value)


def row_digest(values: Iterable[Any]) -> int:
    """A 64-bit digest of one row's values, the same on every backend."""
    data = "\x1f".join(_canonical(v) for v in values).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


@dataclass
class Tally:
    """Rows seen and their order-independent checksum."""

    rows: int = 0
    checksum: int = 0

    def add(self, values: Iterable[Any]) -> None:
        """Count one row."""
        self.rows += 1
        self.checksum = (self.checksum + row_digest(values)) % _MOD

    def plus(self, other: Tally) -> Tally:
        """The tally of both sets of rows."""
        return Tally(self.rows + other.rows, (self.checksum + other.checksum) % _MOD)

    @property
    def hex(self) -> str:
        """The checksum as 16 hex digits."""
        return f"{self.checksum:016x}"


@dataclass(frozen=True)
class TableCopy:
    """The outcome for one table."""

    table: str
    source_rows: int
    copied: int
    target_rows: int
    checksum: str
    verified: bool


@dataclass
class CopyReport:
    """What :func:`copy_database` did."""

    source: str
    target: str
    append: bool
    created_schema: bool
    tables: list[TableCopy] = field(default_factory=list)

    @property
    def copied(self) -> int:
        """Rows copied over all tables."""
        return sum(t.copied for t in self.tables)


def _reason(exc: IntegrityError) -> str:
    """The driver's own one-line reason, without the exception class SQLAlchemy prefixes."""
    lines = str(exc.orig).strip().splitlines() or [type(exc.orig).__name__]
    return re.sub(r"^<class '[^']+'>: ", "", lines[0])


#: The candle series ledger: carried over with the bars, not copied as a table of its own.
LEDGER = "ohlcv_series"
#: Tables whose rows name their candle series by its id.
BY_SERIES = ("ohlcv", "ohlcv_fetched")
#: A series id → (exchange, symbol, timeframe).
SeriesNames = dict[int, tuple[str, str, str]]


def _tables() -> list[Table]:
    """Every tradestore table but the series ledger, parents first (trades before orders)."""
    return [table for table in Base.metadata.sorted_tables if table.name in schema.TABLES and table.name != LEDGER]


def _referred() -> set[str]:
    """The tables some foreign key refers to (their ids must be followed when they change)."""
    return {key.column.table.name for table in _tables() for key in table.foreign_keys}


def _remap(row: dict[str, Any], table: Table, new_ids: Mapping[str, Mapping[int, int]]) -> dict[str, Any]:
    """``row`` with each foreign key turned from the source's id into the id the target gave that row."""
    for key in table.foreign_keys:
        name, value = key.parent.key, row[key.parent.key]
        if value is not None:
            row[name] = new_ids[key.column.table.name][value]
    return row


def _content(table: Table) -> list[str]:
    return [c.key for c in table.columns if c.key != "id"]


def _json_columns(table: Table) -> list[str]:
    return [c.key for c in table.columns if isinstance(c.type, JSON)]


def _text_of(name: str) -> str:
    return f"{name}/stored text"


def _reader(table: Table) -> Select[Any]:
    """Every column with its type's decoding, and each JSON column's stored text besides, in primary-key order."""
    texts = [cast(table.c[name], Text).label(_text_of(name)) for name in _json_columns(table)]
    return select(table, *texts).order_by(*table.primary_key.columns)


def _digest_values(table: Table, names: SeriesNames) -> Callable[[Mapping[str, Any]], list[Any]]:
    """The values of a row :func:`row_digest` takes: JSON documents in their canonical text, a
    candle row's series by its names (ids differ between databases once rows are appended)."""
    documents = set(_json_columns(table))
    columns = _content(table)
    by_series = table.name in BY_SERIES

    def values(row: Mapping[str, Any]) -> list[Any]:
        found: list[Any] = []
        for c in columns:
            if c in documents:
                found.append(json_canonical(row[_text_of(c)]))
            elif by_series and c == "series_id":
                found.extend(names[row[c]])
            else:
                found.append(row[c])
        return found

    return values


async def series_names(conn: AsyncConnection) -> SeriesNames:
    """Every candle series of a database by id."""
    ledger = Base.metadata.tables[LEDGER]
    rows = await conn.execute(select(ledger.c.id, ledger.c.exchange, ledger.c.symbol, ledger.c.timeframe))
    return {row[0]: (row[1], row[2], row[3]) for row in rows.all()}


def _pages(conn: AsyncConnection, table: Table, size: int) -> AsyncIterator[Sequence[Mapping[str, Any]]]:
    """Every row of ``table`` in primary-key order, ``size`` rows at a time."""
    key = list(table.primary_key.columns)
    statement = _reader(table).limit(size)

    async def read(after: tuple[Any, ...] | None) -> list[Mapping[str, Any]]:
        page = statement
        if after is not None:  # the key's values bound through the columns' types (a bar start is an integer on SQLite)
            bound = [literal(value, column.type) for column, value in zip(key, after, strict=True)]
            page = statement.where(tuple_(*key) > tuple_(*bound) if len(key) > 1 else key[0] > bound[0])
        return [r._mapping for r in (await conn.execute(page)).all()]

    return keyset_pages(read, None, size, lambda row: tuple(row[c.key] for c in key))


async def table_tally(conn: AsyncConnection, table: Table, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Tally:
    """Row count and checksum of a table's contents."""
    tally = Tally()
    values = _digest_values(table, await series_names(conn) if table.name in BY_SERIES else {})
    async for rows in _pages(conn, table, chunk_rows):
        for row in rows:
            tally.add(values(row))
    return tally


async def _carry_ledger(sconn: AsyncConnection, tconn: AsyncConnection, append: bool) -> dict[int, int]:
    """Bring the source's series into the target; returns source id → target id.

    Without ``append`` the ledger rows are copied as they are (ids included). With it a
    series the target already holds keeps its target id, a new one gets a new id, and both
    are recomputed from the bars by :func:`_settle_ledger` once they are copied.
    """
    ledger = Base.metadata.tables[LEDGER]
    rows = [dict(r._mapping) for r in (await sconn.execute(select(ledger).order_by(ledger.c.id))).all()]
    if not append:
        if rows:
            await tconn.execute(insert(ledger), rows)
        return {row["id"]: row["id"] for row in rows}
    known = {names: id_ for id_, names in (await series_names(tconn)).items()}
    mapping: dict[int, int] = {}
    for row in rows:
        names = (row["exchange"], row["symbol"], row["timeframe"])
        if names not in known:
            fresh = {k: v for k, v in row.items() if k != "id"}
            known[names] = int((await tconn.execute(insert(ledger).values(fresh).returning(ledger.c.id))).scalar_one())
        mapping[row["id"]] = known[names]
    return mapping


async def _settle_ledger(conn: AsyncConnection, database: str, *, recompute: bool) -> None:
    """Make (``recompute``) or check the target's series ledger against its bars.

    Raises:
        StorageError: a ledger row disagrees with the bars (only when not recomputing).
    """
    ledger, bars = Base.metadata.tables[LEDGER], Base.metadata.tables["ohlcv"]
    found = {
        row[0]: (row[1], row[2], row[3])
        for row in (
            await conn.execute(
                select(bars.c.series_id, func.count(), func.min(bars.c.time), func.max(bars.c.time)).group_by(
                    bars.c.series_id
                )
            )
        ).all()
    }
    recorded = await conn.execute(select(ledger.c.id, ledger.c.bar_count, ledger.c.first_bar, ledger.c.last_bar))
    for series_id, count, first, last in recorded.all():
        count_, first_, last_ = found.get(series_id, (0, None, None))
        first_, last_ = _as_bar_time(first_), _as_bar_time(last_)
        if (count, first, last) == (count_, first_, last_):
            continue
        if not recompute:
            raise StorageError(
                f"verification failed for {LEDGER} in {database}: series {series_id} records {count} bars "
                f"but holds {count_}; nothing was written"
            )
        await conn.execute(
            update(ledger)
            .where(ledger.c.id == series_id)
            .values(bar_count=count_, first_bar=first_, last_bar=last_, updated_at=datetime.now(UTC))
        )


def _as_bar_time(value: Any) -> Any:
    """A bar start read through an aggregate (SQLite hands back the stored epoch seconds)."""
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) else value


async def copy_database(
    source_url: URL,
    target_url: URL,
    *,
    append: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: CopyProgress | None = None,
) -> CopyReport:
    """Copy every tradestore table from ``source_url`` to ``target_url`` and verify the copy.

    Args:
        source_url, target_url: async-driver URLs (see :func:`tradestore.urls.resolve`).
        append: add to a target that already holds rows (rows get new ids there); without it a
            non-empty target is refused.
        chunk_rows: rows per read and write.
        progress: called after each chunk with (rows copied, rows in all).

    Returns:
        Per table: rows in the source, rows copied, rows now in the target, the checksum.

    Raises:
        ConfigurationError: source and target are the same, or one is in-memory.
        SchemaError: either database's schema is not at this code's head revision (an empty
            target is fine: the migrations build it).
        StorageError: the target is not empty and ``append`` is off, a row conflicts with one
            already in the target, or verification failed; nothing was written then.
    """
    for name, url in (("source", source_url), ("target", target_url)):
        if is_memory(url):
            raise ConfigurationError(f"{name}: an in-memory database lives only inside its process; give a file")
    reading, writing = operations(source_url), operations(target_url)
    if reading.identity() == writing.identity():  # the database itself, not how the URL spells it
        raise ConfigurationError(f"source and target are the same database: {mask(source_url)} and {mask(target_url)}")
    report = CopyReport(mask(source_url), mask(target_url), append, created_schema=False)
    path = writing.file()
    new_file = path is not None and not path.exists()
    try:
        async with reading.readable_snapshot(busy_timeout_ms=engine.SQLITE_BUSY_TIMEOUT_MS) as readable:
            source = await open_engine(readable, must_exist=True)
            try:
                target = await open_engine(target_url)
                try:
                    async with source.connect() as sconn:
                        await reading.begin_snapshot_read(sconn)
                        await _check_source(sconn, report.source)
                        async with target.begin() as tconn:
                            await _copy(sconn, tconn, report, chunk_rows, progress)
                            if not report.append:
                                await writing.follow_copied_ids(
                                    tconn, [t for t in Base.metadata.sorted_tables if "id" in t.c]
                                )
                finally:
                    await target.dispose()
            finally:
                await source.dispose()
    except BaseException:
        if new_file and path is not None:  # leave no empty database behind where there was none
            leftovers = ("-wal", "-shm", WRITER_SUFFIX, NEXT_SUFFIX)
            for leftover in (path, *(Path(f"{path}{suffix}") for suffix in leftovers)):
                with contextlib.suppress(OSError):
                    leftover.unlink()
        raise
    return report


async def _check_source(conn: AsyncConnection, database: str) -> None:
    state = await conn.run_sync(schema.read_state)
    if state.status == "empty":
        raise SchemaError(f"source {database} has no tradestore schema: nothing to copy")
    reason = schema.refusal(state, database, has_password=False)
    if reason is not None:
        raise SchemaError(f"source: {reason}")


async def _copy(
    sconn: AsyncConnection,
    tconn: AsyncConnection,
    report: CopyReport,
    chunk_rows: int,
    progress: CopyProgress | None,
) -> None:
    state = await tconn.run_sync(schema.read_state)
    if state.status == "empty":
        await tconn.run_sync(schema.upgrade_sync)
        report.created_schema = True
    else:
        reason = schema.refusal(state, report.target, has_password=False)
        if reason is not None:
            raise SchemaError(f"target: {reason}")
    before = await row_counts(tconn)
    if any(before.values()) and not report.append:
        filled = ", ".join(f"{name}: {rows:,} rows" for name, rows in before.items() if rows)
        raise StorageError(f"target {report.target} is not empty ({filled}): pass --append to add to it")
    totals = await row_counts(sconn)
    everything, done = sum(n for name, n in totals.items() if name != LEDGER), 0
    if progress is not None:
        progress(0, everything)
    # Appended rows get new ids in the target: foreign keys are turned to them as rows are copied.
    new_ids: dict[str, dict[int, int]] = {name: {} for name in _referred()} if report.append else {}
    existing_tallies = {
        table.name: await table_tally(tconn, table, chunk_rows=chunk_rows) if before[table.name] else Tally()
        for table in _tables()
    }
    source_names = await series_names(sconn)
    to_target = await _carry_ledger(sconn, tconn, report.append)
    for table in _tables():
        columns = _content(table)
        kept = columns if report.append or "id" not in table.c else ["id", *columns]
        existing = existing_tallies[table.name]
        copied, values = Tally(), _digest_values(table, source_names)
        async for rows in _pages(sconn, table, chunk_rows):
            if report.append:
                rows = [_remap(dict(row), table, new_ids) for row in rows]
            for row in rows:
                copied.add(values(row))
            written = [{c: row[c] for c in kept} for row in rows]
            if table.name in BY_SERIES:
                for row in written:
                    row["series_id"] = to_target[row["series_id"]]
            try:
                if table.name in new_ids:
                    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
                    given = (await tconn.execute(statement, written)).scalars().all()
                    new_ids[table.name].update(zip((row["id"] for row in rows), given, strict=True))
                else:
                    await tconn.execute(insert(table), written)
            except IntegrityError as exc:
                conflict = f"a row of {table.name} conflicts with one already in the target ({_reason(exc)})"
                raise StorageError(f"{conflict}; nothing was written") from None
            done += len(rows)
            if progress is not None:
                progress(done, everything)
        after = await table_tally(tconn, table, chunk_rows=chunk_rows)
        expected = existing.plus(copied)
        verified = (after.rows, after.checksum) == (expected.rows, expected.checksum) and copied.rows == totals[
            table.name
        ]
        report.tables.append(TableCopy(table.name, totals[table.name], copied.rows, after.rows, after.hex, verified))
        if not verified:
            raise StorageError(
                f"verification failed for {table.name}: source {totals[table.name]} rows, copied {copied.rows}, "
                f"target {after.rows} (expected {expected.rows}), checksum {after.hex} (expected {expected.hex}); "
                "nothing was written"
            )
    await _settle_ledger(tconn, report.target, recompute=report.append)
