"""SQLite through aiosqlite: the bulk paths."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from itertools import repeat
from typing import Any

from sqlalchemy import Select, String, Table, bindparam, func, select, type_coerce
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import ClauseElement, ColumnElement

from tradestore.dialects.base import Backend, EquitySummary, NetGroup, Row
from tradestore.dialects.functions import epoch_seconds, month_index
from tradestore.dialects.sqlite_functions import Drawdown, EquityScan
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
        # The stored texts as they are (no type processing).
        ts, text = type_coerce(timestamp, String()), type_coerce(equity, String())
        # Straight from the table: the planner's scan is in timestamp order in practice (the
        # index, or the rowids of a curve written in time order), and the aggregate checks it.
        found = await _scan(conn, select(func.equity_scan(ts, text), func.count()).where(*where))
        if found is not None and not found["ordered"]:  # e.g. history imported after newer rows
            ordered = select(ts.label("ts"), text.label("eq")).where(*where).order_by(timestamp)
            sub = ordered.subquery()
            found = await _scan(conn, select(func.equity_scan(sub.c.ts, sub.c.eq), func.count()))
            if found is not None and not found["ordered"]:  # SQL promises no order to aggregates: read it
                rows = (await conn.execute(ordered)).all()
                scan = EquityScan()
                for moment, value in rows:
                    scan.step(moment, value)
                found = scan.result()
                if found is not None:
                    found["count"] = len(rows)
        if found is None:
            return None
        # Read the few rows that matter exactly (timestamps are unique in a bot's curve of one
        # mode), and replay the drawdown over them in order.
        kept: list[str] = found["kept"]
        exact: dict[str, tuple[datetime, Decimal]] = {}
        for chunk in chunked(sorted({*found["closes"], *kept}), 900):  # within any SQLite's 999 variables
            for moment, value in await conn.execute(select(ts, text).where(*where, ts.in_(chunk))):
                exact[moment] = (datetime_from_sqlite(moment), Decimal(value))
        drawdown = Drawdown()
        for moment in kept:
            drawdown.step(*exact[moment])
        best = drawdown.best
        return EquitySummary(
            count=found["count"],
            first=exact[kept[0]],
            closes=[exact[moment] for moment in found["closes"]],
            peak=None if best is None else best[0],
            trough=None if best is None else best[2],
            recovered=drawdown.recovered,
        )


async def _scan(conn: AsyncConnection, statement: Select[Any]) -> dict[str, Any] | None:
    """What ``equity_scan`` found (with ``count``, the rows read), or ``None`` for no rows."""
    found, count = (await conn.execute(statement)).one()
    return None if found is None else {**json.loads(found), "count": count}
