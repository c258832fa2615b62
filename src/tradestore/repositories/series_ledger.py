"""The ledgers of the candle series: one ``ohlcv_series`` row per series, and its fetched ranges.

The series ledger (first bar, last bar, bar count, last write) and the coverage ledger
(``ohlcv_fetched``: the ranges asked of the exchange) are read and changed by
:class:`tradestore.OHLCVRepository` in the transaction of every write and delete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update

from tradestore import bar_ranges
from tradestore.bar_ranges import BarRange
from tradestore.dialects import backend
from tradestore.models import FetchedRangeModel, SeriesModel
from tradestore.repositories.base import Repository
from tradestore.repositories.candle_rows import TABLE, time_bounds

SERIES = cast(Table, SeriesModel.__table__)
FETCHED = cast(Table, FetchedRangeModel.__table__)
_c, _s, _f = TABLE.c, SERIES.c, FETCHED.c
#: A series by its name, from the bound parameters ``exchange``, ``symbol`` and ``timeframe``.
NAMED = (
    _s.exchange == bindparam("exchange"),
    _s.symbol == bindparam("symbol"),
    _s.timeframe == bindparam("timeframe"),
)


@dataclass
class Ledger:
    """One ``ohlcv_series`` row, as read (and then changed) inside a write."""

    id: int
    exchange: str
    symbol: str
    timeframe: str
    first: datetime | None
    last: datetime | None
    count: int


class SeriesLedgers(Repository):
    """The ledgers of a session's candle series (used by ``OHLCVRepository``, in its transaction)."""

    async def find(
        self, exchange: str, symbol: str, timeframe: str, *, lock: bool = False, create: bool = False
    ) -> Ledger | None:
        """The ledger row of a series (``None`` if there is none and ``create`` is off).

        With ``lock`` the row is locked until the transaction ends (PostgreSQL; SQLite's
        ``BEGIN IMMEDIATE`` already serialises writers), so concurrent writers of one series
        keep its counts right.
        """
        params = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe}
        statement = select(_s.id, _s.first_bar, _s.last_bar, _s.bar_count).where(*NAMED)
        if lock:
            statement = statement.with_for_update()
        row = await self._one_or_none(statement, params)
        if row is None and create:
            conn = await self.session.connection()
            await self._execute(
                backend(conn.dialect)
                .insert(SERIES)
                .values(**params, bar_count=0, updated_at=datetime.now(UTC))
                .on_conflict_do_nothing(index_elements=["exchange", "symbol", "timeframe"])
            )
            row = await self._one_or_none(statement, params)
        if row is None:
            return None
        return Ledger(row[0], exchange, symbol, timeframe, row[1], row[2], row[3])

    async def save(
        self, ledger: Ledger, first: datetime | None, last: datetime | None, count: int, now: datetime
    ) -> None:
        ledger.first, ledger.last, ledger.count = first, last, count
        await self._execute(
            update(SERIES)
            .where(_s.id == ledger.id)
            .values(first_bar=first, last_bar=last, bar_count=count, updated_at=now)
        )

    async def count(self, series_id: int, lo: datetime, hi: datetime) -> int:
        statement = (
            select(func.count()).select_from(TABLE).where(_c.series_id == series_id, _c.time >= lo, _c.time <= hi)
        )
        return int(await self._scalar(statement) or 0)

    async def extremes(
        self, series_id: int, lo: datetime | None = None, hi: datetime | None = None
    ) -> tuple[datetime | None, datetime | None]:
        """The first and last stored bar start of a series, within ``lo``/``hi`` when given."""
        row = await self._one_or_none(
            select(func.min(_c.time), func.max(_c.time)).where(_c.series_id == series_id, *time_bounds(lo, hi))
        )
        if row is None:
            return None, None
        return as_time(row[0]), as_time(row[1])

    async def fetched(self, ledger: Ledger, lo: datetime, hi: datetime) -> list[BarRange]:
        """The recorded fetched ranges of a series that touch ``lo``..``hi``."""
        rows = await self._execute(
            select(_f.first_bar, _f.last_bar)
            .where(_f.series_id == ledger.id, _f.first_bar <= hi, _f.last_bar >= lo)
            .order_by(_f.first_bar)
        )
        found: Sequence[Any] = rows.all()
        return [(row[0], row[1]) for row in found]

    async def cover(self, ledger: Ledger, ranges: list[BarRange]) -> None:
        """Merge ``ranges`` (sorted) into the series' fetched ranges."""
        if not ranges:
            return
        timeframe = ledger.timeframe
        lo, hi = bar_ranges.step(timeframe, ranges[0][0], -1), bar_ranges.step(timeframe, ranges[-1][1], 1)
        existing = await self.fetched(ledger, lo, hi)
        merged = bar_ranges.merge(timeframe, [*existing, *ranges])
        await self._replace_fetched(ledger, existing, merged)

    async def uncover(self, ledger: Ledger, cut: BarRange | None) -> None:
        """Remove ``cut`` (``None``: everything) from the series' fetched ranges."""
        if cut is None:
            await self._execute(delete(FETCHED).where(_f.series_id == ledger.id))
            return
        if cut[0] > cut[1]:
            return
        existing = await self.fetched(ledger, cut[0], cut[1])
        await self._replace_fetched(ledger, existing, bar_ranges.subtract(ledger.timeframe, existing, [cut]))

    async def _replace_fetched(self, ledger: Ledger, old: list[BarRange], new: list[BarRange]) -> None:
        if old == new:
            return
        if old:
            await self._execute(
                delete(FETCHED).where(_f.series_id == ledger.id, _f.first_bar.in_([first for first, _ in old]))
            )
        if new:
            await self.session.execute(  # one statement, many rows
                insert(FETCHED), [{"series_id": ledger.id, "first_bar": a, "last_bar": b} for a, b in new]
            )

    async def uncovered(self, ledger: Ledger, window: BarRange) -> list[BarRange]:
        """The bars of ``window`` outside every fetched range, found with a window function in the database.

        The query returns each fetched range touching the window with the furthest bar any
        earlier range reaches; a range starting beyond that leaves a hole before it.
        """
        lo, hi = window
        furthest_before = func.max(_f.last_bar).over(order_by=_f.first_bar, rows=(None, -1))
        ranked = (
            select(_f.first_bar.label("first_bar"), _f.last_bar.label("last_bar"), furthest_before.label("reach"))
            .where(_f.series_id == ledger.id, _f.first_bar <= hi, _f.last_bar >= lo)
            .subquery()
        )
        rows: Sequence[Any] = (
            await self._execute(
                select(ranked.c.first_bar, ranked.c.last_bar, ranked.c.reach)
                .where((ranked.c.reach.is_(None)) | (ranked.c.first_bar > ranked.c.reach))
                .order_by(ranked.c.first_bar)
            )
        ).all()
        furthest = await self._scalar(
            select(func.max(_f.last_bar)).where(_f.series_id == ledger.id, _f.first_bar <= hi, _f.last_bar >= lo)
        )
        timeframe = ledger.timeframe
        holes: list[BarRange] = []
        for row in rows:
            first, reach = as_time(row[0]) or lo, as_time(row[2])
            start = lo if reach is None else max(lo, bar_ranges.step(timeframe, reach, 1))
            stop = bar_ranges.step(timeframe, first, -1)
            if start <= stop < first:
                holes.append((start, stop))
        end_of_cover = as_time(furthest)
        if end_of_cover is None:
            return [window]
        tail = (bar_ranges.step(timeframe, end_of_cover, 1), hi)
        if tail[0] <= tail[1] and tail[0] > end_of_cover:
            holes.append(tail)
        return holes


def as_time(value: Any) -> datetime | None:
    """A bar start read through an aggregate, which may bypass the column type (SQLite: epoch seconds)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(int(value), UTC)
