"""Copy every tradestore table from one database to another (SQLite ⇄ PostgreSQL), then prove it.

The copy reads a consistent snapshot of the source (a SQLite file is first snapshotted with
the online backup API; PostgreSQL is read in one ``REPEATABLE READ`` transaction), so the bot
may keep writing meanwhile. The target is written in one transaction: its schema is created
by the migrations when it is empty, rows go in by chunks, and before the commit the copy is
verified table by table (row counts, and a checksum of the contents); a mismatch or any error
rolls everything back, so the target is either the complete, verified copy or untouched.

The checksum of a table is the sum, modulo 2**64, of a SHA-256 digest of each row's values
(every column but the surrogate ``id``, decimals compared by value): independent of row
order and of the backend, and additive, so an appended copy is verified as
``checksum(target before) + checksum(source) == checksum(target after)``.

Candles name their series by a small integer id (``ohlcv_series``), which differs between
databases once rows are appended: candle rows are compared and written with the series'
names instead, and the series ledger is not copied as a table but carried over (or, when
appending, recomputed from the bars) and checked against the bars before the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, insert, select, text, tuple_, update
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tradestore import schema
from tradestore.admin.backup import sqlite_snapshot
from tradestore.admin.inventory import open_engine, row_counts, sqlite_path
from tradestore.errors import ConfigurationError, SchemaError, StorageError
from tradestore.models import Base
from tradestore.urls import backend_name, is_memory, mask

#: Rows read and written per round trip.
DEFAULT_CHUNK_ROWS = 5_000
_MOD = 2**64

#: Called with (rows copied so far, rows to copy in all).
CopyProgress = Callable[[int, int], None]


def _canonical(value: Any) -> str:
    if value is None:
        return "\x00"
    if isinstance(value, Decimal):
        # By value: PostgreSQL's NUMERIC gives Decimal('1000') for Decimal('1E+3'), SQLite keeps the text.
        return "d" + str(value.normalize() if value else Decimal(0))
    if isinstance(value, datetime):
        return "t" + value.isoformat()
    if isinstance(value, dict | list):
        return "j" + json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
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
    return [Base.metadata.tables[name] for name in schema.TABLES if name != LEDGER]


def _content(table: Table) -> list[str]:
    return [c.key for c in table.columns if c.key != "id"]


def _values(table: Table, row: Mapping[str, Any], names: SeriesNames) -> Iterable[Any]:
    """What a row holds, ids aside: a candle row's series by its names, not its id."""
    for column in _content(table):
        if column == "series_id" and table.name in BY_SERIES:
            yield from names[row[column]]
        else:
            yield row[column]


async def series_names(conn: AsyncConnection) -> SeriesNames:
    """Every candle series of a database by id."""
    ledger = Base.metadata.tables[LEDGER]
    rows = await conn.execute(select(ledger.c.id, ledger.c.exchange, ledger.c.symbol, ledger.c.timeframe))
    return {row[0]: (row[1], row[2], row[3]) for row in rows.all()}


async def _chunks(conn: AsyncConnection, table: Table, size: int) -> AsyncIterator[Sequence[Mapping[str, Any]]]:
    """Every row of ``table`` in primary-key order, ``size`` rows at a time (keyset pagination)."""
    key = list(table.primary_key.columns)
    last: tuple[Any, ...] | None = None
    while True:
        statement = select(table).order_by(*key).limit(size)
        if last is not None:
            statement = statement.where(tuple_(*key) > tuple_(*last) if len(key) > 1 else key[0] > last[0])
        rows = [dict(r._mapping) for r in (await conn.execute(statement)).all()]
        if not rows:
            return
        yield rows
        last = tuple(rows[-1][c.key] for c in key)


async def table_tally(conn: AsyncConnection, table: Table, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Tally:
    """Row count and checksum of a table's contents."""
    tally = Tally()
    names = await series_names(conn) if table.name in BY_SERIES else {}
    async for rows in _chunks(conn, table, chunk_rows):
        for row in rows:
            tally.add(_values(table, row, names))
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


def _reset_sequences(conn: Connection) -> None:
    """After rows were inserted with their ids, make PostgreSQL's next id follow the largest one."""
    for table in Base.metadata.sorted_tables:
        if "id" not in table.c or table.c.id.autoincrement is False:
            continue
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), coalesce(max(id), 1), "
                f"max(id) IS NOT NULL) FROM {table.name}"
            )
        )


@contextlib.asynccontextmanager
async def _snapshot_url(url: URL) -> AsyncIterator[URL]:
    """``url`` itself, or for a SQLite file the URL of a fresh snapshot of it (removed afterwards)."""
    path = sqlite_path(url)
    if path is None:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="tradestore-copy-") as folder:
        snapshot = Path(folder) / "source.db"
        await asyncio.to_thread(sqlite_snapshot, Path(path), snapshot)
        yield url.set(database=str(snapshot))


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
    if mask(source_url) == mask(target_url) and source_url.password == target_url.password:
        raise ConfigurationError(f"source and target are the same database: {mask(source_url)}")
    report = CopyReport(mask(source_url), mask(target_url), append, created_schema=False)
    new_file = (path := sqlite_path(target_url)) is not None and not os.path.exists(path)
    try:
        async with _snapshot_url(source_url) as readable:
            source = await open_engine(readable)
            try:
                target = await open_engine(target_url, must_exist=False)
                try:
                    async with source.connect() as sconn:
                        if backend_name(source_url) == "postgresql":
                            await sconn.execution_options(isolation_level="REPEATABLE READ")
                        await _check_source(sconn, report.source)
                        async with target.begin() as tconn:
                            await _copy(sconn, tconn, report, chunk_rows, progress, backend_name(target_url))
                finally:
                    await target.dispose()
            finally:
                await source.dispose()
    except BaseException:
        if new_file and path is not None:  # leave no empty database behind where there was none
            for leftover in (path, path + "-wal", path + "-shm"):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
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
    target_backend: str,
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
        copied = Tally()
        async for rows in _chunks(sconn, table, chunk_rows):
            for row in rows:
                copied.add(_values(table, row, source_names))
            written = [{c: row[c] for c in kept} for row in rows]
            if table.name in BY_SERIES:
                for row in written:
                    row["series_id"] = to_target[row["series_id"]]
            try:
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
    if target_backend == "postgresql" and not report.append:
        await tconn.run_sync(_reset_sequences)
