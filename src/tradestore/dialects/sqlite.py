"""SQLite through aiosqlite: the bulk paths."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from itertools import repeat
from typing import Any

from sqlalchemy import String, Table, bindparam, func, select, type_coerce
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import ClauseElement, ColumnElement

from tradestore.dialects.base import Backend, EquitySummary, NetGroup, Row
from tradestore.dialects.functions import epoch_seconds, month_index
from tradestore.dialects.sqlite_functions import EquityPass
from tradestore.values import chunked, datetime_from_sqlite


class SQLiteBackend(Backend):
    """SQLite through aiosqlite: one prepared statement run over many rows (executemany).

    Gaps and trade statistics take one pass of a registered aggregate (one Python call per
    row) instead of SQLite's window functions and several decimal functions per row.
    """

    name = "sqlite"
    insert = staticmethod(sqlite_insert)

    def lock_migrations(self, connection: Connection) -> None:
        """Nothing to do: the migration's transaction began with ``BEGIN IMMEDIATE``, which excludes other writers."""

    def _insert_rows(self, table: Table, columns: Sequence[str]) -> Any:
        return self.insert(table).values({c: bindparam(c) for c in columns})

    async def _write(
        self,
        conn: AsyncConnection,
        table: Table,
        columns: tuple[str, ...],
        rows: Iterable[Row],
        upsert_on: tuple[str, ...] | None,
        ignore: bool,
    ) -> None:
        # executemany returns no rows: callers that need the number of new rows count them.
        sql = self.statement(table, columns, upsert_on, ignore).sql
        for chunk in chunked(rows, self.chunk_rows):
            await conn.exec_driver_sql(sql, chunk)

    async def _fetch(self, driver: Any, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        return list(await driver.execute_fetchall(sql, tuple(params)))

    async def run_single(self, raw: Any, sql: str, params: Sequence[Any]) -> tuple[list[Any], Iterable[Any], int]:
        driver = raw.driver_connection
        connection = driver._conn

        def run() -> tuple[list[Any], int]:
            cursor = connection.execute(sql, params)
            try:
                return cursor.fetchall(), cursor.rowcount
            finally:
                cursor.close()

        if getattr(connection, "write_locked", False) and connection.in_transaction:
            # The transaction holds the write lock (BEGIN IMMEDIATE): a single-row statement has
            # no lock to wait for and takes microseconds, less than waking aiosqlite's thread
            # and waiting for its answer. Nothing else uses this connection meanwhile (a session
            # runs one statement at a time), and sqlite3 releases the GIL while it works.
            rows, rowcount = run()
        else:  # in aiosqlite's thread: execute, fetch and count in one hop instead of four
            rows, rowcount = await driver._execute(run)
        return rows, repeat(None), rowcount  # sqlite3 reports no column types

    async def gaps(
        self,
        conn: AsyncConnection,
        key: Hashable,
        column: ColumnElement[datetime],
        where: Callable[[], Sequence[ColumnElement[bool]]],
        params: Mapping[str, Any],
        *,
        monthly: bool,
    ) -> list[tuple[Any, Any]]:
        def build() -> ClauseElement:
            ordinal = month_index(column) if monthly else epoch_seconds(column)
            ordered = select(column.label("ts"), ordinal.label("o")).where(*where()).order_by(column).subquery()
            return select(func.step_gaps(ordered.c.ts, ordered.c.o, bindparam("step")))

        ((found,),) = await self.fetch(conn, ("step_gaps", key), build, params)
        pairs = [] if found is None else json.loads(found)  # SQL NULL: no rows at all
        if pairs is None:  # the rows did not arrive in order after all: let LAG() sort them
            return await super().gaps(conn, key, column, where, params, monthly=monthly)
        return [(prev, ts) for prev, ts in pairs]

    async def net_by_sign(
        self,
        conn: AsyncConnection,
        gain: Any,
        cost: Any,
        where: Sequence[ColumnElement[bool]],
    ) -> dict[int, NetGroup]:
        found = (await conn.execute(select(func.decimal_net_by_sign(gain, cost)).where(*where))).scalar_one()
        if found is None:  # no rows at all
            return {}
        return {
            int(sign): NetGroup(count, Decimal(total), Decimal(largest), Decimal(smallest), Decimal(costs))
            for sign, (count, total, largest, smallest, costs) in json.loads(found).items()
        }

    async def equity_summary(
        self,
        conn: AsyncConnection,
        timestamp: ColumnElement[datetime],
        equity: ColumnElement[Decimal],
        where: Sequence[ColumnElement[bool]],
    ) -> EquitySummary | None:
        # The stored text as it is (no type processing): what the aggregate and its fallback read.
        ts, eq = type_coerce(timestamp, String()).label("ts"), type_coerce(equity, String()).label("eq")
        ordered = select(ts, eq).where(*where).order_by(timestamp).subquery()
        found = (await conn.execute(select(func.equity_summary(ordered.c.ts, ordered.c.eq)))).scalar_one()
        if found is None:
            return None
        summary: dict[str, Any] = json.loads(found)
        if not summary["ordered"]:  # SQL does not promise the order rows reach an aggregate: read them sorted
            rows = (await conn.execute(select(ts, eq).where(*where).order_by(timestamp))).all()
            again = EquityPass()
            for row in rows:
                again.step(row[0], row[1])
            summary = again.result() or summary
        return _summary(summary)


def _point(pair: Any) -> tuple[datetime, Decimal] | None:
    return None if pair is None else (datetime_from_sqlite(pair[0]), Decimal(pair[1]))


def _summary(found: dict[str, Any]) -> EquitySummary:
    first = _point(found["first"])
    assert first is not None
    recovered = found["recovered"]
    return EquitySummary(
        count=found["count"],
        first=first,
        closes=[(datetime_from_sqlite(ts), Decimal(eq)) for ts, eq in found["closes"]],
        peak=_point(found["peak"]),
        trough=_point(found["trough"]),
        recovered=None if recovered is None else datetime_from_sqlite(recovered),
    )
