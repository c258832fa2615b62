"""``OHLCVRepository``: candles in bulk, by range, newest first, the holes between them, and the ledgers.

Storage (see :mod:`tradestore.models.candles`): a bar row is (series id, bar start, the
numbers); the series ledger (``ohlcv_series``: first bar, last bar, bar count, last write)
and the coverage ledger (``ohlcv_fetched``: ranges asked of the exchange) are updated in
the transaction of every write and delete.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, Literal, cast

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.expression import ColumnElement, Select

from tradestore import bar_ranges, timeframes
from tradestore.bar_ranges import BarRange
from tradestore.dialects import Backend, backend, single_row
from tradestore.domain import OHLCVBar, SeriesInfo
from tradestore.errors import NotFoundError, ValidationError
from tradestore.pages import keyset_pages
from tradestore.repositories.base import Repository, all_of, duplicates_raise
from tradestore.repositories.candle_rows import READ_COLUMNS, TABLE, WRITE_COLUMNS, aware, decode, encode, time_bounds
from tradestore.repositories.series_ledger import FETCHED, NAMED, SERIES, Ledger, SeriesLedgers
from tradestore.values import ceil_second, floor_second, to_count, to_optional_utc, to_text, to_utc

KEY = ("series_id", "time")
#: ``get_gaps(calendar=...)``: every bar expected, or none on Saturdays and Sundays (UTC).
CALENDARS = ("24/7", "weekdays")
OnConflict = Literal["replace", "ignore"]

_c, _s, _f = TABLE.c, SERIES.c, FETCHED.c
_OF_SERIES = _c.series_id == select(_s.id).where(*NAMED).scalar_subquery()
_JUST_AFTER = timedelta(microseconds=1)
_EARLIEST, _LATEST = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)
_series_key = attrgetter("exchange", "symbol", "timeframe")
_bar_key = attrgetter("exchange", "symbol", "timeframe", "timestamp")
_time = attrgetter("timestamp")


def _select_bars() -> Select[Any]:
    return select(*(_c[name] for name in READ_COLUMNS)).where(_OF_SERIES)


def _range() -> Select[Any]:
    return _select_bars().where(_c.time >= bindparam("start"), _c.time <= bindparam("end")).order_by(_c.time)


class OHLCVRepository(Repository):
    """Candles of one session. Bars are unique per (exchange, symbol, timeframe, timestamp).

    Bulk writes and range reads go through the driver in large chunks (no object per row
    beyond the ``OHLCVBar`` itself); gaps are computed by the database; ``list_series`` reads
    the series ledger. Calls that name no exchange use the manager's default exchange.
    """

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self._ledgers = SeriesLedgers(session)

    async def _connection(self) -> tuple[AsyncConnection, Backend]:
        conn = await self.session.connection()
        return conn, backend(conn.dialect)

    async def _driver(self) -> tuple[single_row.Driver, Backend]:
        """For reads: the session's driver connection (on PostgreSQL its lease, as single-row calls)."""
        found = await single_row.driver(self.session)
        return found, backend(found.dialect)

    # --- writes -------------------------------------------------------------------------

    async def insert_many(self, bars: Iterable[OHLCVBar]) -> int:
        """Insert new bars; all of them or, on any error, none.

        Returns:
            The number of bars inserted (0 for empty input).

        Raises:
            DuplicateError: a bar's key is already stored or repeated (also a
                ``sqlalchemy.exc.IntegrityError``); nothing of the call was written.
            ValidationError: an item is not an ``OHLCVBar``.
        """
        with duplicates_raise(
            "bars: a bar with the same exchange, symbol, timeframe and timestamp is stored or repeated"
        ):
            return await self._write(all_of(OHLCVBar, bars, "bars"), "insert")

    async def upsert_many(self, bars: Iterable[OHLCVBar], *, on_conflict: OnConflict = "replace") -> int:
        """Insert bars, and overwrite (``"replace"``) or keep (``"ignore"``) stored ones with the same key.

        All or, on error, none; input of any size is written in chunks inside the session's
        transaction. A key given twice in one call: the last one wins with ``"replace"``, the
        first with ``"ignore"``. Every bar given is marked as fetched (see :meth:`mark_fetched`).

        Returns:
            The number of distinct bars written: with ``"ignore"`` the stored ones left alone
            are not counted.

        Raises:
            ValidationError: an item is not an ``OHLCVBar``, or ``on_conflict`` is unknown.
        """
        mode = cast(OnConflict, to_text("on_conflict", on_conflict, choices=("replace", "ignore")))
        checked = all_of(OHLCVBar, bars, "bars")
        if mode == "ignore":
            checked.reverse()  # so that the first of a repeated key is the one kept
        latest = dict(zip(map(_bar_key, checked), checked, strict=True))
        if len(latest) != len(checked):
            checked = list(latest.values())
        return await self._write(checked, mode)

    async def _write(self, bars: list[OHLCVBar], mode: Literal["insert", "replace", "ignore"]) -> int:
        if not bars:
            return 0
        names = set(map(_series_key, bars))
        groups: dict[tuple[str, str, str], list[OHLCVBar]] = {}
        if len(names) == 1:  # the usual call: one series
            groups[names.pop()] = bars
        else:
            for bar in bars:
                groups.setdefault(_series_key(bar), []).append(bar)
        conn, db = await self._connection()
        now = datetime.now(UTC)
        written = 0
        async with db.atomically(conn):  # the bars, the ledger and the coverage: all or nothing
            for key in sorted(groups):  # every writer locks series in the same order: no deadlock
                ledger = await self._ledgers.find(*key, lock=True, create=True)
                assert ledger is not None
                series_bars = groups[key]
                stamps = list(map(_time, series_bars))
                if any(map(datetime.__gt__, stamps, stamps[1:])):
                    series_bars.sort(key=_time)
                    stamps = list(map(_time, series_bars))
                lo, hi = stamps[0], stamps[-1]
                overlaps = (
                    ledger.first is not None and ledger.last is not None and lo <= ledger.last and hi >= ledger.first
                )
                # Only then may a bar already be stored; PostgreSQL's write tells how many were new.
                counted = overlaps and mode != "insert" and not db.counts_inserted
                before = await self._ledgers.count(ledger.id, lo, hi) if counted else 0
                inserted = await db.write(
                    conn,
                    TABLE,
                    WRITE_COLUMNS,
                    encode(series_bars, ledger.id, db),
                    upsert_on=None if mode == "insert" else KEY,
                    ignore=mode == "ignore",
                    savepoint=False,
                )
                if counted:
                    added = await self._ledgers.count(ledger.id, lo, hi) - before
                else:
                    added = len(series_bars) if inserted is None or not overlaps else inserted
                written += added if mode == "ignore" else len(series_bars)
                await self._ledgers.save(
                    ledger,
                    lo if ledger.first is None else min(lo, ledger.first),
                    hi if ledger.last is None else max(hi, ledger.last),
                    ledger.count + added,
                    now,
                )
                await self._ledgers.cover(ledger, bar_ranges.runs(ledger.timeframe, stamps))
        return written

    async def mark_fetched(
        self, symbol: str, timeframe: str, start: datetime, end: datetime, exchange: str | None = None
    ) -> None:
        """Record that the exchange was asked for the bars from ``start`` to ``end`` (inclusive).

        Bars missing there are then known to be missing at the source (a delisted hour, an
        outage): ``get_gaps(..., exclude_fetched=True)`` leaves them out and
        :meth:`missing_ranges` does not ask for them again. ``upsert_many`` marks the bars it
        writes by itself. Marks merge with the ranges already recorded.

        Raises:
            ValidationError: a bad name, timeframe or datetime, or ``start`` after ``end``.
        """
        window = self._window(timeframe, start, end)
        params = self._series(symbol, timeframe, exchange)
        if window is None:
            return
        conn, db = await self._connection()
        async with db.atomically(conn):
            ledger = await self._ledgers.find(
                params["exchange"], params["symbol"], params["timeframe"], lock=True, create=True
            )
            assert ledger is not None
            await self._ledgers.cover(ledger, [window])

    async def missing_ranges(
        self, symbol: str, timeframe: str, start: datetime, end: datetime, exchange: str | None = None
    ) -> list[tuple[datetime, datetime]]:
        """The bars from ``start`` to ``end`` never fetched: the backfill plan of a downloader.

        Returns:
            ``[(first bar, last bar), …]``, both inclusive, oldest first; a series never
            written or marked is one range covering the window.

        Raises:
            ValidationError: a bad name, timeframe or datetime, or ``start`` after ``end``.
        """
        window = self._window(timeframe, start, end)
        params = self._series(symbol, timeframe, exchange)
        if window is None:
            return []
        ledger = await self._ledgers.find(params["exchange"], params["symbol"], params["timeframe"])
        if ledger is None:
            return [window]
        return await self._ledgers.uncovered(ledger, window)

    async def delete_range(
        self,
        symbol: str,
        timeframe: str,
        start: datetime | None,
        end: datetime | None,
        exchange: str | None = None,
    ) -> int:
        """Remove the bars with ``start <= timestamp <= end`` (``None``: no bound).

        The window also counts as never fetched again (its fetched ranges are forgotten), so a
        downloader's :meth:`missing_ranges` asks for it anew.

        Returns:
            The number of bars removed.

        Raises:
            NotFoundError: no such series (never written or marked).
            ValidationError: a bad name, timeframe or datetime.
        """
        params = self._series(symbol, timeframe, exchange)
        lo, hi = to_optional_utc("start", start), to_optional_utc("end", end)
        conn, db = await self._connection()
        async with db.atomically(conn):
            ledger = await self._ledgers.find(params["exchange"], params["symbol"], params["timeframe"], lock=True)
            if ledger is None:
                raise NotFoundError(self._unknown(params))
            bounds = time_bounds(lo, hi)
            result = await self._execute(delete(TABLE).where(_c.series_id == ledger.id, *bounds))
            removed = int(cast(Any, result).rowcount or 0)
            if removed:
                first, last = await self._ledgers.extremes(ledger.id)
                await self._ledgers.save(ledger, first, last, ledger.count - removed, datetime.now(UTC))
            # The window counts as never fetched again, whether bars were stored in it or not.
            if lo is None and hi is None:
                await self._ledgers.uncover(ledger, None)
            else:
                first_cut = _EARLIEST if lo is None else _ceil(timeframe, lo)
                last_cut = _LATEST if hi is None else _floor(timeframe, hi)
                # None: no bar starts there (beyond the years 1 to 9999); nor in an empty window.
                if first_cut is not None and last_cut is not None and first_cut <= last_cut:
                    await self._ledgers.uncover(ledger, (first_cut, last_cut))
        return removed

    async def delete_series(self, symbol: str, timeframe: str, exchange: str | None = None) -> int:
        """Remove a series: its bars, its ledger and its fetched ranges.

        Returns:
            The number of bars removed.

        Raises:
            NotFoundError: no such series.
        """
        params = self._series(symbol, timeframe, exchange)
        conn, db = await self._connection()
        async with db.atomically(conn):
            ledger = await self._ledgers.find(params["exchange"], params["symbol"], params["timeframe"], lock=True)
            if ledger is None:
                raise NotFoundError(self._unknown(params))
            result = await self._execute(delete(TABLE).where(_c.series_id == ledger.id))
            await self._execute(delete(FETCHED).where(_f.series_id == ledger.id))
            await self._execute(delete(SERIES).where(_s.id == ledger.id))
        return int(cast(Any, result).rowcount or 0)

    # --- reads --------------------------------------------------------------------------

    async def get_range(
        self, symbol: str, timeframe: str, start: datetime, end: datetime, exchange: str | None = None
    ) -> list[OHLCVBar]:
        """Bars with ``start <= timestamp <= end``, oldest first."""
        params = self._series(symbol, timeframe, exchange)
        lo, hi = ceil_second(to_utc("start", start)), floor_second(to_utc("end", end))
        conn, db = await self._driver()  # after validation: bad arguments open no transaction
        params.update(start=db.encode(_c.time, lo), end=db.encode(_c.time, hi))
        rows = await db.fetch(conn, "ohlcv.range", _range, params)
        return decode(rows, db, params)

    async def stream_range(
        self,
        symbol: str,
        timeframe: str,
        start: datetime,
        end: datetime,
        exchange: str | None = None,
        *,
        batch_size: int = 10_000,
    ) -> AsyncIterator[OHLCVBar]:
        """Like :meth:`get_range`, but yields bars a batch at a time: memory stays flat for any range."""
        batch_size = to_count("batch_size", batch_size)
        if batch_size < 1:
            raise ValidationError(f"batch_size: must be at least 1, got {batch_size!r}")
        params = self._series(symbol, timeframe, exchange)
        after, hi = ceil_second(to_utc("start", start)), floor_second(to_utc("end", end))
        conn, db = await self._driver()
        params.update(end=db.encode(_c.time, hi), limit=batch_size)

        async def page(first: datetime) -> list[OHLCVBar]:
            params["start"] = db.encode(_c.time, first)
            conn.check_open()
            rows = await db.fetch(conn, "ohlcv.page", lambda: _range().limit(bindparam("limit")), params)
            return decode(rows, db, params)

        # Bar starts are whole seconds: the next page starts at the second after the last bar read.
        async for bars in keyset_pages(page, after, batch_size, lambda bar: ceil_second(bar.timestamp + _JUST_AFTER)):
            for bar in bars:
                yield bar

    async def get_latest(
        self, symbol: str, timeframe: str, limit: int = 100, exchange: str | None = None
    ) -> list[OHLCVBar]:
        """The newest ``limit`` bars, returned oldest first (ready for indicators)."""
        count = to_count("limit", limit)  # a plain int: the driver refuses numpy's
        params = self._series(symbol, timeframe, exchange)
        params["limit"] = count
        conn, db = await self._driver()
        rows = await db.fetch(
            conn,
            "ohlcv.latest",
            lambda: _select_bars().order_by(_c.time.desc()).limit(bindparam("limit")),
            params,
        )
        bars = decode(rows, db, params)
        bars.reverse()
        return bars

    async def count_bars(
        self,
        symbol: str,
        timeframe: str,
        exchange: str | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """How many bars of a series start within ``start``/``end`` (inclusive; ``None``: no bound).

        Without bounds the series ledger answers (no scan); an unknown series has 0 bars.
        """
        params = self._series(symbol, timeframe, exchange)
        lo, hi = to_optional_utc("start", start), to_optional_utc("end", end)
        ledger = await self._ledgers.find(params["exchange"], params["symbol"], params["timeframe"])
        if ledger is None:
            return 0
        if lo is None and hi is None:
            return ledger.count
        return int(
            await self._scalar(
                select(func.count()).select_from(TABLE).where(_c.series_id == ledger.id, *time_bounds(lo, hi))
            )
            or 0
        )

    async def get_gaps(
        self,
        symbol: str,
        timeframe: str,
        exchange: str | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        exclude_fetched: bool = False,
        calendar: str = "24/7",
    ) -> list[tuple[datetime, datetime]]:
        """Missing bars, as (first missing bar, last missing bar) pairs, both inclusive, oldest first.

        Without ``start``/``end`` only holes between stored bars count. With them (inclusive;
        either may be given alone) bars missing before the first or after the last stored
        bar inside the window count too, and an empty series is one gap covering the window.

        Args:
            exclude_fetched: leave out bars recorded as fetched (:meth:`mark_fetched`): the
                exchange was asked and had none.
            calendar: ``"24/7"`` (every bar is expected) or ``"weekdays"`` (bars lying wholly
                in Saturday or Sunday UTC are not).

        Raises:
            NotFoundError: no window and no bar of the series is stored (a misspelt series
                never reads as "no gaps").
            ValidationError: a bad name, timeframe, datetime or calendar.
        """
        params = self._series(symbol, timeframe, exchange)
        lo, hi = to_optional_utc("start", start), to_optional_utc("end", end)
        to_text("calendar", calendar, choices=CALENDARS)
        ledger = await self._ledgers.find(params["exchange"], params["symbol"], params["timeframe"])
        if ledger is None or ledger.first is None or ledger.last is None:
            if lo is None or hi is None:  # no bar and no bounded window: a misspelt series is not "no gaps"
                raise NotFoundError(await self._unknown_series(params))
            gaps: list[BarRange] = _whole(timeframe, lo, hi)
        else:
            gaps = await self._holes(ledger, lo, hi)
        if exclude_fetched and gaps and ledger is not None:
            fetched = await self._ledgers.fetched(ledger, gaps[0][0], gaps[-1][1])
            gaps = bar_ranges.subtract(timeframe, gaps, fetched)
        if calendar == "weekdays":
            gaps = bar_ranges.weekdays_only(timeframe, gaps)
        return gaps

    async def _holes(self, ledger: Ledger, lo: datetime | None, hi: datetime | None) -> list[BarRange]:
        """The gaps of a series with stored bars (see :meth:`get_gaps`)."""
        assert ledger.first is not None and ledger.last is not None
        timeframe = ledger.timeframe
        conn, db = await self._connection()
        low = None if lo is None else ceil_second(lo)
        high = None if hi is None else floor_second(hi)
        params = {
            "series_id": ledger.id,
            "start": None if low is None else db.encode(_c.time, low),
            "end": None if high is None else db.encode(_c.time, high),
            "step": timeframes.ordinal_step(timeframe),
        }
        month = timeframe == timeframes.MONTH
        holes = await db.gaps(
            conn,
            ("ohlcv", month, lo is None, hi is None),
            _c.time,
            lambda: [_c.series_id == bindparam("series_id"), *_window(low, high)],
            params,
            monthly=month,
        )
        gaps = [
            (
                bar_ranges.step(timeframe, aware(db.decode(_c.time, prev)), 1),
                bar_ranges.step(timeframe, aware(db.decode(_c.time, ts)), -1),
            )
            for prev, ts in holes
        ]
        if lo is None and hi is None:
            return gaps
        first: datetime | None
        last: datetime | None
        if (lo is None or lo <= ledger.first) and (hi is None or hi >= ledger.last):
            first, last = ledger.first, ledger.last  # the whole series is inside the window
        else:
            first, last = await self._ledgers.extremes(ledger.id, low, high)
        if first is None or last is None:  # nothing stored inside the window
            return [] if lo is None or hi is None else _whole(timeframe, lo, hi)
        if lo is not None:
            head = (_ceil(timeframe, lo), _shift(timeframe, first, -1))
            if head[0] is not None and head[1] is not None and head[0] <= head[1]:
                gaps.insert(0, (head[0], head[1]))
        if hi is not None:
            tail = (_shift(timeframe, last, 1), _floor(timeframe, hi))
            if tail[0] is not None and tail[1] is not None and tail[0] <= tail[1]:
                gaps.append((tail[0], tail[1]))
        return gaps

    async def list_series(self, exchange: str | None = None) -> list[SeriesInfo]:
        """One ``SeriesInfo`` per series holding bars, sorted by exchange, symbol, timeframe.

        Read from the series ledger: one row per series, whatever the number of bars.
        ``exchange=None`` lists the manager's default exchange, ``ALL_EXCHANGES`` every exchange.
        """
        chosen = self._exchange_filter(exchange)
        params = {} if chosen is None else {"exchange": chosen}

        def build() -> Select[Any]:
            statement = (
                select(_s.exchange, _s.symbol, _s.timeframe, _s.first_bar, _s.last_bar, _s.bar_count, _s.updated_at)
                .where(_s.bar_count > 0)
                .order_by(_s.exchange, _s.symbol, _s.timeframe)
            )
            return statement if chosen is None else statement.where(_s.exchange == bindparam("exchange"))

        conn, db = await self._driver()
        rows = await db.fetch(conn, ("ohlcv.series", chosen is None), build, params)
        first, last, updated = (db.decoder(c) or aware for c in (_s.first_bar, _s.last_bar, _s.updated_at))
        return [SeriesInfo(r[0], r[1], r[2], first(r[3]), last(r[4]), r[5], updated(r[6])) for r in rows]

    # --- arguments ------------------------------------------------------------------------

    def _series(self, symbol: str, timeframe: str, exchange: str | None) -> dict[str, Any]:
        return {
            "symbol": to_text("symbol", symbol),
            "timeframe": timeframes.check(timeframe),
            "exchange": to_text("exchange", self._exchange(exchange)),
        }

    @staticmethod
    def _window(timeframe: str, start: datetime, end: datetime) -> BarRange | None:
        """The bar starts within ``start``..``end`` as a range (``None`` when none lies there)."""
        timeframes.check(timeframe)
        lo, hi = to_utc("start", start), to_utc("end", end)
        if lo > hi:
            raise ValidationError(f"start: {lo.isoformat()} is after end {hi.isoformat()}")
        first, last = _ceil(timeframe, lo), _floor(timeframe, hi)  # None: beyond the years 1 to 9999
        return (first, last) if first is not None and last is not None and first <= last else None

    async def _unknown_series(self, params: dict[str, Any]) -> str:
        """Why there is no such series, naming the exchanges that hold the symbol in the timeframe."""
        rows = await self._execute(
            select(_s.exchange)
            .where(_s.symbol == params["symbol"], _s.timeframe == params["timeframe"], _s.bar_count > 0)
            .order_by(_s.exchange)
        )
        elsewhere = ", ".join(exchange for (exchange,) in rows.all()) or "none"
        return (
            f"no {params['timeframe']} bars stored for {params['exchange']} {params['symbol']}; "
            f"exchanges holding {params['symbol']} {params['timeframe']}: {elsewhere}"
        )

    @staticmethod
    def _unknown(params: dict[str, Any]) -> str:
        return (
            f"no {params['timeframe']} bars of {params['exchange']} {params['symbol']} are stored "
            "(check the exchange, symbol and timeframe)"
        )


def _whole(timeframe: str, lo: datetime, hi: datetime) -> list[BarRange]:
    """The bars of the window ``lo``..``hi`` as one range (none when no bar starts inside)."""
    first, last = _ceil(timeframe, lo), _floor(timeframe, hi)
    return [(first, last)] if first is not None and last is not None and first <= last else []


def _shift(timeframe: str, bar_start: datetime, bars: int) -> datetime | None:
    """:func:`timeframes.shift`, or ``None`` beyond the years 1 to 9999 (no bar starts there)."""
    try:
        return timeframes.shift(timeframe, bar_start, bars)
    except (OverflowError, ValueError):
        return None


def _ceil(timeframe: str, moment: datetime) -> datetime | None:
    """The first bar start at or after ``moment``; ``None`` when it would be after 9999."""
    try:
        if timeframe == timeframes.MONTH:
            return timeframes.ceil(timeframe, moment)
        # The floor of the last instant before the next bar: unlike ceil(), it never steps
        # below year 1 on the way (the bar containing a moment of year 1 may start before it).
        step = timedelta(seconds=timeframes.FIXED_SECONDS[timeframe])
        return timeframes.floor(timeframe, moment + step - _JUST_AFTER)
    except (OverflowError, ValueError):
        return None


def _floor(timeframe: str, moment: datetime) -> datetime | None:
    """The last bar start at or before ``moment``; ``None`` when it would be before year 1."""
    try:
        return timeframes.floor(timeframe, moment)
    except (OverflowError, ValueError):
        return None


def _window(lo: datetime | None, hi: datetime | None) -> list[ColumnElement[bool]]:
    bounds = []
    if lo is not None:
        bounds.append(_c.time >= bindparam("start"))
    if hi is not None:
        bounds.append(_c.time <= bindparam("end"))
    return bounds
