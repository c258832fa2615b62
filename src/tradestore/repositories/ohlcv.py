"""``OHLCVRepository``: candles in bulk, by range, newest first, and the holes between them."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import ColumnElement, Select

from tradestore import timeframes
from tradestore.dialects import Backend, backend
from tradestore.domain import OHLCVBar, SeriesInfo
from tradestore.errors import NotFoundError, ValidationError
from tradestore.models import OHLCVModel
from tradestore.pages import keyset_pages
from tradestore.repositories.base import Repository, duplicates_raise
from tradestore.values import chunked, to_count, to_optional_utc, to_text, to_utc

TABLE = cast(Table, OHLCVModel.__table__)
KEY = ("exchange", "symbol", "timeframe", "timestamp")
#: Written columns, in the order of the row tuples built by ``_encode``.
WRITE_COLUMNS = (
    "exchange", "symbol", "timeframe", "timestamp", "open", "high", "low", "close",
    "volume", "quote_volume", "trades_count", "created_at",
)  # fmt: skip
#: Read columns, in the order ``_decoder`` expects.
READ_COLUMNS = (
    "id", "exchange", "symbol", "timeframe", "timestamp", "open", "high", "low", "close",
    "volume", "quote_volume", "trades_count", "created_at",
)  # fmt: skip
_c = TABLE.c
_SERIES = and_(
    _c.exchange == bindparam("exchange"),
    _c.symbol == bindparam("symbol"),
    _c.timeframe == bindparam("timeframe"),
)


def _select_bars() -> Select[Any]:
    return select(*(_c[name] for name in READ_COLUMNS)).where(_SERIES)


def _range() -> Select[Any]:
    return (
        _select_bars()
        .where(_c.timestamp >= bindparam("start"), _c.timestamp <= bindparam("end"))
        .order_by(_c.timestamp)
    )


_JUST_AFTER = timedelta(microseconds=1)
_key = attrgetter(*KEY)


def _encode(bars: Iterable[OHLCVBar], db: Backend, created: Any) -> list[tuple[Any, ...]]:
    dec, ts = db.encode_decimal, db.encode_datetime
    return [
        (
            b.exchange,
            b.symbol,
            b.timeframe,
            ts(b.timestamp),
            dec(b.open),
            dec(b.high),
            dec(b.low),
            dec(b.close),
            dec(b.volume),
            None if b.quote_volume is None else dec(b.quote_volume),
            b.trades_count,
            created,
        )
        for b in bars
    ]


def _decode(rows: Sequence[Sequence[Any]], db: Backend) -> list[OHLCVBar]:
    """Bars from stored rows, without re-validating what was validated on the way in.

    Attributes are set one at a time in the dataclass's field order, as its own ``__init__``
    does, so CPython stores them inline: no dict per bar, about twice as fast to build and free.
    """
    dec, new = db.decode_decimal, object.__new__
    stamps = db.decode_datetimes(list(map(itemgetter(4), rows)))
    made = db.decode_datetimes(list(map(itemgetter(12), rows)))
    bars: list[OHLCVBar] = []
    append = bars.append
    gc_was_enabled = gc.isenabled()
    gc.disable()  # many small objects at once: the collector would only slow us down
    try:
        for r, timestamp, created_at in zip(rows, stamps, made, strict=True):
            bar = new(OHLCVBar)
            bar.symbol = r[2]
            bar.exchange = r[1]
            bar.timeframe = r[3]
            bar.timestamp = timestamp
            bar.open = dec(r[5])
            bar.high = dec(r[6])
            bar.low = dec(r[7])
            bar.close = dec(r[8])
            bar.volume = dec(r[9])
            bar.quote_volume = None if r[10] is None else dec(r[10])
            bar.trades_count = r[11]
            bar.id = r[0]
            bar.created_at = created_at
            append(bar)
    finally:
        if gc_was_enabled:
            gc.enable()
    return bars


def _checked(bars: Iterable[OHLCVBar]) -> list[OHLCVBar]:
    """``bars`` as a new list, once every item is known to be an ``OHLCVBar``."""
    items = list(bars)
    if not all(map(isinstance, items, repeat(OHLCVBar))):
        index, bad = next((i, b) for i, b in enumerate(items) if not isinstance(b, OHLCVBar))
        raise ValidationError(f"bars[{index}]: expected an OHLCVBar, got {bad!r}")
    return items


class OHLCVRepository(Repository):
    """Candles of one session. Rows are unique on (exchange, symbol, timeframe, timestamp).

    Bulk writes and range reads go through the driver in large chunks (no object per row
    beyond the ``OHLCVBar`` itself); gaps and series summaries are computed by the database.
    ``exchange=None`` means the manager's default exchange.
    """

    async def _connection(self) -> tuple[AsyncConnection, Backend]:
        conn = await self.session.connection()
        return conn, backend(conn.dialect)

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
            return await self._write(_checked(bars), upsert=False)

    async def upsert_many(self, bars: Iterable[OHLCVBar]) -> int:
        """Insert bars or overwrite the stored ones with the same key; all or, on error, none.

        When the input holds one key more than once the last one wins. Input of any size is
        written in chunks inside the session's transaction.

        Returns:
            The number of distinct bars written.

        Raises:
            ValidationError: an item is not an ``OHLCVBar``.
        """
        checked = _checked(bars)
        latest = dict(zip(map(_key, checked), checked, strict=True))
        return await self._write(checked if len(latest) == len(checked) else list(latest.values()), upsert=True)

    async def _write(self, bars: list[OHLCVBar], *, upsert: bool) -> int:
        if not bars:
            return 0
        conn, db = await self._connection()
        created = db.encode_datetime(datetime.now(UTC))
        if db.writes_in_key_order:
            bars.sort(key=_key)  # every writer locks rows in the same order: no deadlock
        rows = chain.from_iterable(_encode(chunk, db, created) for chunk in chunked(bars, db.chunk_rows))
        await db.write(conn, TABLE, WRITE_COLUMNS, rows, upsert_on=KEY if upsert else None)
        return len(bars)

    async def get_range(
        self, symbol: str, timeframe: str, start: datetime, end: datetime, exchange: str | None = None
    ) -> list[OHLCVBar]:
        """Bars with ``start <= timestamp <= end``, oldest first."""
        params = self._series(symbol, timeframe, self._exchange(exchange))
        lo, hi = to_utc("start", start), to_utc("end", end)
        conn, db = await self._connection()  # after validation: bad arguments open no transaction
        params.update(start=db.encode_datetime(lo), end=db.encode_datetime(hi))
        rows = await db.fetch(conn, "ohlcv.range", _range, params)
        return _decode(rows, db)

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
        params = self._series(symbol, timeframe, self._exchange(exchange))
        after, hi = to_utc("start", start), to_utc("end", end)
        conn, db = await self._connection()
        params.update(end=db.encode_datetime(hi), limit=batch_size)

        async def page(first: datetime) -> list[OHLCVBar]:
            params["start"] = db.encode_datetime(first)
            rows = await db.fetch(conn, "ohlcv.page", lambda: _range().limit(bindparam("limit")), params)
            return _decode(rows, db)

        # Bar starts are whole seconds: the next page starts just after the last bar read.
        async for bars in keyset_pages(page, after, batch_size, lambda bar: bar.timestamp + _JUST_AFTER):
            for bar in bars:
                yield bar

    async def get_latest(
        self, symbol: str, timeframe: str, limit: int = 100, exchange: str | None = None
    ) -> list[OHLCVBar]:
        """The newest ``limit`` bars, returned oldest first (ready for indicators)."""
        count = to_count("limit", limit)  # a plain int: the driver refuses numpy's
        params = self._series(symbol, timeframe, self._exchange(exchange))
        params["limit"] = count
        conn, db = await self._connection()
        rows = await db.fetch(
            conn,
            "ohlcv.latest",
            lambda: _select_bars().order_by(_c.timestamp.desc()).limit(bindparam("limit")),
            params,
        )
        bars = _decode(rows, db)
        bars.reverse()
        return bars

    async def get_gaps(
        self,
        symbol: str,
        timeframe: str,
        exchange: str | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[tuple[datetime, datetime]]:
        """Missing bars, as (first missing bar, last missing bar) pairs, both inclusive, oldest first.

        Without ``start``/``end`` only holes between stored bars count. With them (inclusive;
        either may be given alone) bars missing before the first or after the last stored
        bar inside the window count too, and an empty series is one gap covering the window.
        Bars that would start outside the years 1 to 9999 are never missing.

        Raises:
            NotFoundError: the series holds no bar at all and the window is not bounded on
                both sides (a misspelt symbol is not "no gaps"); the message names the
                exchanges that do hold ``symbol`` in ``timeframe``.
            ValidationError: a bad symbol, timeframe, exchange or bound.
        """
        params = self._series(symbol, timeframe, self._exchange(exchange))
        lo, hi = to_optional_utc("start", start), to_optional_utc("end", end)
        conn, db = await self._connection()
        params.update(
            start=None if lo is None else db.encode_datetime(lo),
            end=None if hi is None else db.encode_datetime(hi),
            step=timeframes.ordinal_step(timeframe),
        )
        month = timeframe == timeframes.MONTH
        holes = await db.gaps(
            conn,
            ("ohlcv", month, lo is None, hi is None),
            _c.timestamp,
            lambda: [_SERIES, *_window(lo, hi)],
            params,
            monthly=month,
        )
        gaps = [
            (
                timeframes.shift(timeframe, db.decode_datetime(prev), 1),
                timeframes.shift(timeframe, db.decode_datetime(ts), -1),
            )
            for prev, ts in holes
        ]
        if lo is None and hi is None:
            if not gaps:
                await self._require_series(conn, db, params)
            return gaps
        bounds = await db.fetch(
            conn,
            ("ohlcv.bounds", lo is None, hi is None),
            lambda: select(func.min(_c.timestamp), func.max(_c.timestamp)).where(_SERIES, *_window(lo, hi)),
            params,
        )
        first, last = (None if v is None else db.decode_datetime(v) for v in bounds[0])
        if first is None or last is None:  # nothing stored inside the window
            if lo is None or hi is None:
                await self._require_series(conn, db, params)
                return []
            whole = (_ceil(timeframe, lo), _floor(timeframe, hi))
            return (
                [(whole[0], whole[1])] if whole[0] is not None and whole[1] is not None and whole[0] <= whole[1] else []
            )
        if lo is not None:
            head = (_ceil(timeframe, lo), _shift(timeframe, first, -1))
            if head[0] is not None and head[1] is not None and head[0] <= head[1]:
                gaps.insert(0, (head[0], head[1]))
        if hi is not None:
            tail = (_shift(timeframe, last, 1), _floor(timeframe, hi))
            if tail[0] is not None and tail[1] is not None and tail[0] <= tail[1]:
                gaps.append((tail[0], tail[1]))
        return gaps

    async def _require_series(self, conn: AsyncConnection, db: Backend, params: dict[str, Any]) -> None:
        """Raise :class:`NotFoundError` when the series of ``params`` holds no bar at all."""
        if await db.fetch(conn, "ohlcv.any", lambda: select(_c.id).where(_SERIES).limit(1), params):
            return
        rows = await db.fetch(
            conn,
            "ohlcv.exchanges",
            lambda: (
                select(_c.exchange)
                .where(_c.symbol == bindparam("symbol"), _c.timeframe == bindparam("timeframe"))
                .group_by(_c.exchange)
                .order_by(_c.exchange)
            ),
            params,
        )
        elsewhere = ", ".join(exchange for (exchange,) in rows) or "none"
        raise NotFoundError(
            f"no {params['timeframe']} bars stored for {params['exchange']} {params['symbol']}; "
            f"exchanges holding {params['symbol']} {params['timeframe']}: {elsewhere}"
        )

    async def list_series(self, exchange: str | None = None) -> list[SeriesInfo]:
        """One ``SeriesInfo`` per stored series, sorted by exchange, symbol, timeframe."""
        statement = (
            select(_c.exchange, _c.symbol, _c.timeframe, func.min(_c.timestamp), func.max(_c.timestamp), func.count())
            .group_by(_c.exchange, _c.symbol, _c.timeframe)
            .order_by(_c.exchange, _c.symbol, _c.timeframe)
        )
        if exchange is not None:
            statement = statement.where(_c.exchange == to_text("exchange", exchange))
        rows = (await self.session.execute(statement)).all()
        return [SeriesInfo(ex, sym, tf, first, last, count) for ex, sym, tf, first, last, count in rows]

    @staticmethod
    def _series(symbol: str, timeframe: str, exchange: str) -> dict[str, Any]:
        return {
            "symbol": to_text("symbol", symbol),
            "timeframe": timeframes.check(timeframe),
            "exchange": to_text("exchange", exchange),
        }


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
        bounds.append(_c.timestamp >= bindparam("start"))
    if hi is not None:
        bounds.append(_c.timestamp <= bindparam("end"))
    return bounds
