"""Guarantee 8: bulk writes never hit the database's limit on bound parameters.

SQLite's classic limit is 999 variables, newer builds 32,766; asyncpg's is 32,767. This
machine's SQLite allows 250,000, which would hide a problem, so on SQLite every connection of
these tests has its limit forced down with ``Connection.setlimit`` (and the test proves the
lower limit is in force). Batches are sized so that rows x columns lands just under, at or
just over each limit, and so that the row count itself does.

They pass without any chunking arithmetic, and that is by design: the SQLite path runs one
prepared 12-parameter statement over many rows (executemany) and the PostgreSQL path sends
each chunk as one array per column (``INSERT … SELECT FROM unnest``), so the parameters per
statement never grow with the rows. The tests stay to keep it that way. A bar has 12 written
columns, so rows x 12 cannot equal 999 or 32,767 exactly: the batches bracket each limit.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError

from factories import bar, bars
from support import bar_counts, small_chunks
from tradestore import DatabaseManager, OHLCVRepository
from tradestore import engine as engine_module
from tradestore.repositories.candle_rows import WRITE_COLUMNS

LIMITS = (999, 32_766, 32_767)
COLUMNS = len(WRITE_COLUMNS)


def _batch_sizes(limit: int) -> list[int]:
    by_parameters = {(limit - 1) // COLUMNS, limit // COLUMNS, -(-limit // COLUMNS), -(-(limit + 1) // COLUMNS)}
    by_rows = {limit - 1, limit, limit + 1}
    return sorted(by_parameters | by_rows)


@pytest.fixture
async def limited(url: URL | str, request: pytest.FixtureRequest) -> AsyncIterator[DatabaseManager]:
    """A manager whose SQLite connections allow only ``request.param`` bound variables."""
    limit: int = request.param
    factory = engine_module.TradestoreSQLiteConnection

    class Limited(factory):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)

    engine_module.TradestoreSQLiteConnection = Limited  # type: ignore[misc]
    try:
        db = DatabaseManager(url)
        await db.connect()
    finally:
        engine_module.TradestoreSQLiteConnection = factory  # type: ignore[misc]
    await db.drop_all()
    await db.create_all()
    yield db
    await db.drop_all()
    await db.disconnect()


async def _sqlite_limit_is_in_force(db: DatabaseManager, limit: int) -> None:
    async with db.get_session() as session:
        conn = await session.connection()

        def probe(n: int) -> str:
            return "SELECT count(*) WHERE 0 IN (" + ", ".join("?" * n) + ")"

        assert (await conn.exec_driver_sql(probe(limit), tuple(range(limit)))).scalar() == 1
        with pytest.raises(Exception, match="too many SQL variables"):
            await conn.exec_driver_sql(probe(limit + 1), tuple(range(limit + 1)))


@pytest.mark.parametrize("limited", LIMITS, indirect=True, ids=[f"limit{n}" for n in LIMITS])
async def test_upserts_around_the_parameter_limit(
    limited: DatabaseManager, request: pytest.FixtureRequest, figures: Counter[str]
) -> None:
    db = limited
    limit = request.node.callspec.params["limited"]
    if db.backend == "sqlite":
        await _sqlite_limit_is_in_force(db, limit)
    for rows in _batch_sizes(limit):
        symbol = f"R{rows}"
        async with db.get_session() as session:
            repo = OHLCVRepository(session)
            assert await repo.upsert_many(bars(rows, symbol=symbol)) == rows
            assert await repo.upsert_many(bars(rows, symbol=symbol, close="100.75")) == rows  # the update path
            assert await repo.insert_many(bars(rows, symbol=f"I{rows}")) == rows
        counts = await bar_counts(db)
        assert counts[symbol] == rows and counts[f"I{rows}"] == rows
        figures[f"batches written around parameter limits ({db.backend})"] += 3
    async with db.get_session() as session:
        latest = await OHLCVRepository(session).get_latest(f"R{limit}", "1m", limit=1)
    assert str(latest[0].close) == "100.75"


class FailOnInsert:
    """Makes the ``n``-th INSERT statement the engine runs fail (counted from ``arm()``)."""

    def __init__(self, db: DatabaseManager) -> None:
        self.inserts = 0
        self.fail_at: int | None = None
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._before)

    def arm(self, fail_at: int | None) -> None:
        self.inserts, self.fail_at = 0, fail_at

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        upper = statement.lstrip().upper()
        # PostgreSQL's bulk writes are INSERTs inside a CTE that counts the rows they inserted.
        if upper.startswith("INSERT") or (upper.startswith("WITH") and "INSERT INTO" in upper):
            self.inserts += 1
            if self.inserts == self.fail_at:
                raise RuntimeError("injected failure in the last chunk")


async def test_a_failure_in_the_last_chunk_leaves_nothing(
    db: DatabaseManager, monkeypatch: pytest.MonkeyPatch, figures: Counter[str]
) -> None:
    small_chunks(monkeypatch, 100)
    rows = 900  # nine chunks of 100 (a batch this small is chunked on every backend)
    injector = FailOnInsert(db)
    injector.arm(None)
    async with db.get_session() as session:  # a dry run counts the statements one batch takes
        await OHLCVRepository(session).upsert_many(bars(rows, symbol="DRY"))
    chunks = injector.inserts
    assert chunks >= 2, "the batch was not split into chunks"

    # Inside one session: the failed call is undone, what the session wrote before is kept.
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(bars(5, symbol="KEPT"))
        injector.arm(chunks)
        with pytest.raises(RuntimeError, match="last chunk"):
            await repo.upsert_many(bars(rows, symbol="LOST"))
        assert injector.inserts == chunks  # the earlier chunks had been written
        assert await repo.get_latest("LOST", "1m") == []
    assert await bar_counts(db) == {"DRY": rows, "KEPT": 5}

    # The failure ends the session: nothing of it is kept.
    injector.arm(chunks)
    with pytest.raises(RuntimeError, match="last chunk"):
        async with db.get_session() as session:
            await OHLCVRepository(session).insert_many(bars(rows, symbol="LOST"))
    assert await bar_counts(db) == {"DRY": rows, "KEPT": 5}

    # A key already stored, in the last chunk of an insert: the database refuses it, 0 rows.
    injector.arm(None)
    with pytest.raises(IntegrityError):
        async with db.get_session() as session:
            await OHLCVRepository(session).insert_many([*bars(rows - 1, symbol="DUP"), bar(0, symbol="KEPT")])
    assert await bar_counts(db) == {"DRY": rows, "KEPT": 5}
    async with db.get_session() as session:
        assert (await session.execute(text("SELECT 1"))).scalar() == 1
    figures[f"failures injected into a last chunk, 0 rows left ({db.backend})"] += 3
