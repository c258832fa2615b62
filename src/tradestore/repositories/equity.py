"""``EquityRepository``: a bot's equity over time, and its performance computed by the database."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.sql.expression import ColumnElement

from tradestore import metrics, timeframes
from tradestore.dialects import Backend, backend, period_index
from tradestore.domain import EquitySnapshot, PerformanceReport, TradeStatistics
from tradestore.domain.common import MODES
from tradestore.errors import NotFoundError, ValidationError
from tradestore.models import EquitySnapshotModel, PerformanceReportModel
from tradestore.repositories.base import ALL_EXCHANGES, Repository, all_of
from tradestore.repositories.trades import TradeRepository
from tradestore.values import (
    chunked,
    json_dumps,
    to_count,
    to_decimal,
    to_json_object,
    to_optional_utc,
    to_text,
)

TABLE = cast(Table, EquitySnapshotModel.__table__)
REPORTS = cast(Table, PerformanceReportModel.__table__)
KEY = ("bot_id", "mode", "timestamp")
_FIELDS = tuple(f.name for f in dataclasses.fields(EquitySnapshot))
#: Written columns, in the order of the row tuples ``_encode`` builds.
WRITE_COLUMNS = ("bot_id", "mode", "timestamp", "equity", "balance", "unrealized_pnl", "open_positions", "metadata")
_REPORT_FIELDS = tuple(f.name for f in dataclasses.fields(PerformanceReport))
_STAT_FIELDS = {f.name: f.type for f in dataclasses.fields(TradeStatistics)}
_key = attrgetter(*KEY)
_c = TABLE.c


def _record(db: Backend) -> Any:
    """The upsert of one snapshot, its values bound per call."""
    insert = db.insert(TABLE).values({name: bindparam(name) for name in WRITE_COLUMNS})
    return insert.on_conflict_do_update(
        index_elements=list(KEY), set_={name: insert.excluded[name] for name in WRITE_COLUMNS if name not in KEY}
    ).returning(_c.id)


def _same(value: Any) -> Any:
    return value


def _encode(snapshots: list[EquitySnapshot], db: Backend) -> list[tuple[Any, ...]]:
    # the column types' own bulk encoders: the one definition of each stored form
    dec = db.encoder(TABLE.c.equity) or _same
    ts = db.encoder(TABLE.c.timestamp) or _same
    return [
        (
            s.bot_id,
            s.mode,
            ts(s.timestamp),
            dec(s.equity),
            None if s.balance is None else dec(s.balance),
            None if s.unrealized_pnl is None else dec(s.unrealized_pnl),
            s.open_positions,
            None if s.metadata is None else json_dumps(s.metadata),
        )
        for s in snapshots
    ]


def _snapshot(row: Any) -> EquitySnapshot:
    return EquitySnapshot(**{name: row[name] for name in _FIELDS})


def _statistics(stored: dict[str, Any]) -> TradeStatistics:
    values: dict[str, Any] = {
        name: (None if stored.get(name) is None else (int(stored[name]) if kind == "int" else Decimal(stored[name])))
        for name, kind in _STAT_FIELDS.items()
    }
    return TradeStatistics(**values)


class EquityRepository(Repository):
    """Equity snapshots and performance reports of one session.

    Snapshots are unique per (bot_id, mode, timestamp): recording the same key again replaces
    the stored one. In every filter, ``None`` means no filter.
    """

    async def record(self, snapshot: EquitySnapshot) -> int:
        """Store one snapshot (replacing one with the same key) and return its id. One statement."""
        if not isinstance(snapshot, EquitySnapshot):
            raise ValidationError(f"snapshot: expected an EquitySnapshot, got {snapshot!r}")
        snapshot = dataclasses.replace(snapshot)  # built anew: attributes changed since are checked again
        statement = self._built("equity.record", _record)
        return int(await self._scalar(statement, {name: getattr(snapshot, name) for name in WRITE_COLUMNS}))

    async def record_many(self, snapshots: Iterable[EquitySnapshot]) -> int:
        """Store snapshots in bulk (the candles' bulk path); all of them or, on error, none.

        A key given twice keeps the last; a stored key is replaced.

        Returns:
            The number of distinct snapshots written.

        Raises:
            ValidationError: an item is not an ``EquitySnapshot``.
        """
        checked = all_of(EquitySnapshot, snapshots, "snapshots")
        latest = dict(zip(map(_key, checked), checked, strict=True))
        items = checked if len(latest) == len(checked) else list(latest.values())
        if not items:
            return 0
        conn = await self.session.connection()
        db = backend(conn.dialect)
        if db.writes_in_key_order:
            items.sort(key=_key)
        rows = [row for chunk in chunked(items, db.chunk_rows) for row in _encode(chunk, db)]
        await db.write(conn, TABLE, WRITE_COLUMNS, rows, upsert_on=KEY)
        return len(items)

    def _where(
        self, bot_id: str, mode: str | None, start: datetime | None, end: datetime | None
    ) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = [_c.bot_id == to_text("bot_id", bot_id)]
        if mode is not None:
            where.append(_c.mode == to_text("mode", mode, choices=MODES))
        if (lo := to_optional_utc("start", start)) is not None:
            where.append(_c.timestamp >= lo)
        if (hi := to_optional_utc("end", end)) is not None:
            where.append(_c.timestamp <= hi)
        return where

    async def get_curve(
        self,
        bot_id: str,
        *,
        mode: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        every: str | None = None,
    ) -> list[EquitySnapshot]:
        """Snapshots with ``start <= timestamp <= end``, oldest first.

        With ``every`` (a timeframe: ``"1h"``, ``"1d"``, ``"1w"``, ``"1M"`` …) only the last snapshot
        of each period (UTC, aligned as candles are) and mode, chosen by the database.
        """
        where = self._where(bot_id, mode, start, end)
        columns = [_c[name] for name in _FIELDS]
        if every is None:
            statement = select(*columns).where(*where).order_by(_c.timestamp, _c.mode)
        else:
            period = period_index(_c.timestamp, timeframes.check(every))
            following = func.lead(period).over(partition_by=_c.mode, order_by=_c.timestamp)
            marked = select(*columns, period.label("period"), following.label("next_period")).where(*where).subquery()
            statement = (
                select(*(marked.c[name] for name in _FIELDS))
                .where((marked.c.next_period.is_(None)) | (marked.c.next_period != marked.c.period))
                .order_by(marked.c.timestamp, marked.c.mode)
            )
        return [_snapshot(row) for row in (await self._execute(statement)).mappings().all()]

    async def _mode_of(self, bot_id: str, mode: str | None) -> str:
        """``mode``, or the one mode the bot has snapshots in."""
        if mode is not None:
            return to_text("mode", mode, choices=MODES)
        name = to_text("bot_id", bot_id)
        # Two statements: each is one index lookup, where min() and max() together would scan.
        low = await self._scalar(select(func.min(_c.mode)).where(_c.bot_id == name))
        high = await self._scalar(select(func.max(_c.mode)).where(_c.bot_id == name))
        if low is None:
            raise NotFoundError(f"bot_id: no equity snapshots of bot {name!r}")
        if low != high:
            raise ValidationError(f"mode: bot {name!r} has equity in several modes ({low} … {high}): pass mode=")
        return str(low)

    async def performance(
        self,
        bot_id: str,
        *,
        mode: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        periods_per_year: Decimal | int | str | float = 365,
        risk_free_rate: Decimal | int | str | float = 0,
    ) -> PerformanceReport:
        """The performance of the bot's equity curve between ``start`` and ``end`` (see the README).

        The database reads every snapshot once: daily closes and the largest drawdown; the
        figures drawn from the (at most one per day) closes follow in 50-digit decimals.
        ``mode=None`` takes the one mode the bot has snapshots in. It reads with a few statements:
        in a read-only session they see one snapshot on both backends; in a write session on
        PostgreSQL a snapshot committed meanwhile by another transaction may reach some of them.

        Raises:
            NotFoundError: no snapshot of the bot (in that mode and window).
            ValidationError: bad arguments, or ``mode=None`` for a bot with snapshots in several modes.
        """
        per_year = to_decimal("periods_per_year", periods_per_year)
        if per_year <= 0:
            raise ValidationError(f"periods_per_year: must be greater than 0, got {periods_per_year!r}")
        rate = to_decimal("risk_free_rate", risk_free_rate)
        where = self._where(bot_id, mode, start, end)
        chosen = await self._mode_of(bot_id, mode)
        if mode is None:
            where.append(_c.mode == chosen)
        conn = await self.session.connection()
        summary = await backend(conn.dialect).equity_summary(conn, _c.timestamp, _c.equity, where)
        if summary is None:
            raise NotFoundError(f"bot_id: no equity snapshots of bot {bot_id!r} ({chosen}) in that window")
        last_at, ending = summary.closes[-1]
        found = metrics.figures(summary, ending, last_at, periods_per_year=per_year, risk_free_rate=rate)
        trades = await TradeRepository(self.session).get_statistics(
            days=None, exchange=ALL_EXCHANGES, bot_id=bot_id, mode=chosen, start=start, end=end
        )
        return PerformanceReport(
            bot_id=bot_id,
            mode=chosen,
            start=summary.first[0],
            end=last_at,
            snapshots=summary.count,
            starting_equity=summary.first[1],
            ending_equity=ending,
            total_return=metrics.rounded(found.total_return),
            cagr=metrics.rounded(found.cagr),
            max_drawdown=found.max_drawdown,
            max_drawdown_peak=None if summary.peak is None else summary.peak[0],
            max_drawdown_trough=None if summary.trough is None else summary.trough[0],
            max_drawdown_recovered=summary.recovered,
            volatility=metrics.rounded(found.volatility),
            sharpe=metrics.rounded(found.sharpe),
            sortino=metrics.rounded(found.sortino),
            calmar=metrics.rounded(found.calmar),
            periods=found.periods,
            periods_per_year=per_year,
            risk_free_rate=rate,
            trades=trades,
            calculated_at=datetime.now(UTC),
        )

    async def store_report(self, report: PerformanceReport) -> int:
        """Store a report (seed 002's performance-metrics table) and return its id."""
        if not isinstance(report, PerformanceReport):
            raise ValidationError(f"report: expected a PerformanceReport, got {report!r}")
        values = {name: getattr(report, name) for name in _REPORT_FIELDS if name not in ("id", "trades")}
        values["trades"] = to_json_object("trades", dataclasses.asdict(report.trades))
        statement = REPORTS.insert().values(values).returning(REPORTS.c.id)
        return int(await self._scalar(statement))

    async def get_reports(self, bot_id: str, *, mode: str | None = None, limit: int = 100) -> list[PerformanceReport]:
        """The ``limit`` newest stored reports of the bot (of ``mode``, if given), newest first."""
        r = REPORTS.c
        statement = (
            select(*(r[name] for name in _REPORT_FIELDS))
            .where(r.bot_id == to_text("bot_id", bot_id))
            .order_by(r.calculated_at.desc(), r.id.desc())
            .limit(to_count("limit", limit))
        )
        if mode is not None:
            statement = statement.where(r.mode == to_text("mode", mode, choices=MODES))
        rows = (await self._execute(statement)).mappings().all()
        return [PerformanceReport(**{**row, "trades": _statistics(row["trades"])}) for row in rows]
