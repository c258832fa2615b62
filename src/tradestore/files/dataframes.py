"""pandas interop (the ``tradestore[pandas]`` extra): bars to a DataFrame and back.

A frame holds one series: a UTC ``DatetimeIndex`` named ``timestamp`` and the columns
``open high low close volume quote_volume trades_count``; the series' exchange, symbol and
timeframe travel in ``frame.attrs``. Prices and volumes are ``Decimal`` objects (exact) or
``float64`` (fast, rounded), at the caller's choice. For backtesting libraries
(backtesting.py, mplfinance, vectorbt) the columns can be title case (``Open High Low Close
Volume``) and the index tz-naive UTC; :func:`frame_to_bars` reads either case back.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from tradestore.domain import OHLCVBar
from tradestore.errors import ConfigurationError, ValidationError

PRICE_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume")
COLUMNS = (*PRICE_COLUMNS, "trades_count")
SERIES_KEYS = ("exchange", "symbol", "timeframe")
#: ``bars_to_frame(columns=...)``: ``open`` … or ``Open`` … (backtesting.py, mplfinance).
COLUMN_CASES = ("lower", "title")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ConfigurationError("pandas is not installed: pip install 'tradestore[pandas]'") from None
    return pandas


def bars_to_frame(
    bars: Iterable[OHLCVBar],
    *,
    decimals: bool = True,
    floats: bool = False,
    columns: str = "lower",
    naive_index: bool = False,
) -> Any:
    """A ``pandas.DataFrame`` of one series' bars, indexed by bar start (UTC).

    Args:
        bars: bars of one exchange, symbol and timeframe, in any order (the frame is sorted).
        decimals: ``True`` keeps prices and volumes as exact ``Decimal`` objects (object
            columns); ``False`` makes them ``float64``.
        floats: ``True`` makes prices and volumes ``float64`` (the same as ``decimals=False``):
            what numeric libraries compute with.
        columns: ``"lower"`` (``open``, …) or ``"title"`` (``Open``, ``High``, ``Low``,
            ``Close``, ``Volume``, ``Quote_Volume``, ``Trades_Count``: what backtesting.py
            and mplfinance expect).
        naive_index: a tz-naive index holding UTC times, for libraries that refuse aware ones.

    Returns:
        The frame; ``frame.attrs`` holds ``exchange``, ``symbol`` and ``timeframe`` (empty for no bars).

    Raises:
        ValidationError: the bars belong to more than one series.
        ConfigurationError: pandas is not installed.
    """
    pd = _pandas()
    if columns not in COLUMN_CASES:
        raise ValidationError(f"columns: expected one of {', '.join(COLUMN_CASES)}, got {columns!r}")
    decimals = decimals and not floats
    rows = list(bars)
    series = {(b.exchange, b.symbol, b.timeframe) for b in rows}
    if len(series) > 1:
        raise ValidationError(f"bars: a frame holds one series, got {len(series)}: {sorted(series)[:3]}")
    index = pd.DatetimeIndex([b.timestamp for b in rows], tz="UTC", name="timestamp")
    data: dict[str, Any] = {}
    for name in PRICE_COLUMNS:
        values = [getattr(b, name) for b in rows]
        if decimals:
            data[name] = pd.Series(values, index=index, dtype=object)
        else:
            numbers = [math.nan if v is None else float(v) for v in values]
            data[name] = pd.Series(numbers, index=index, dtype="float64")
    data["trades_count"] = pd.Series([b.trades_count for b in rows], index=index, dtype="Int64")
    frame = pd.DataFrame(data, index=index).sort_index()
    if columns == "title":
        frame.columns = [name.title() for name in frame.columns]
    if naive_index:
        frame.index = frame.index.tz_localize(None)
    if series:
        frame.attrs.update(zip(SERIES_KEYS, series.pop(), strict=True))
    return frame


def _plain(value: Any) -> Any:
    """A bar field from a pandas/numpy cell: ``None`` for missing, numbers as they are.

    numpy's numbers are left as numpy scalars, so a cell converts exactly as the same value
    given to ``OHLCVBar`` does (``to_decimal``): a ``float32`` 0.1 is ``Decimal('0.1')``, not
    the ``0.10000000149011612`` of its widening to a Python float.
    """
    if value is None or value is _pandas().NA:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and math.isnan(value):
        return None
    if isinstance(value, numbers.Number):
        return value
    item = getattr(value, "item", None)  # other numpy scalars (np.bool_ …): their Python value
    return item() if callable(item) else value


def frame_to_bars(
    frame: Any, *, exchange: str | None = None, symbol: str | None = None, timeframe: str | None = None
) -> list[OHLCVBar]:
    """Bars from a frame shaped like :func:`bars_to_frame`'s output.

    The bar start comes from a ``DatetimeIndex`` (naive means UTC) or else a ``timestamp``
    column; ``quote_volume`` and ``trades_count`` are optional. Column names are read in any
    case (``Open`` or ``open``). Floats become the Decimal of their shortest text, so ``0.1``
    is ``Decimal('0.1')``.

    Args:
        frame: the DataFrame.
        exchange, symbol, timeframe: the series; each defaults to ``frame.attrs``.

    Raises:
        ValidationError: a missing column or series key, or a value an ``OHLCVBar`` refuses
            (the message names the row's timestamp).
    """
    pd = _pandas()
    names: dict[str, list[str]] = {}
    for column in frame.columns:
        if isinstance(column, str) and column.lower() in (*COLUMNS, "timestamp"):
            names.setdefault(column.lower(), []).append(column)
    clashes = [found for found in names.values() if len(found) > 1]
    if clashes:
        listed = "; ".join(", ".join(repr(c) for c in found) for found in clashes)
        raise ValidationError(f"frame: columns {listed} name the same field (column names are read in any case)")
    frame = frame.rename(columns={c: c.lower() for c in frame.columns if isinstance(c, str) and c.lower() != c})
    given = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe}
    keys: dict[str, Any] = {k: v if v is not None else frame.attrs.get(k) for k, v in given.items()}
    missing_keys = [k for k, v in keys.items() if v is None]
    if missing_keys:
        raise ValidationError(f"frame: give {', '.join(missing_keys)} (not found in frame.attrs either)")
    if isinstance(frame.index, pd.DatetimeIndex):
        stamps = frame.index
    elif "timestamp" in frame.columns:
        try:
            stamps = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"]))
        except (ValueError, TypeError, OverflowError) as exc:  # pandas' DateParseError, OutOfBoundsDatetime …
            raise ValidationError(f"timestamp: the frame's 'timestamp' column cannot be read as times: {exc}") from None
    else:
        raise ValidationError("frame: expected a DatetimeIndex or a 'timestamp' column")
    stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
    required = ("open", "high", "low", "close", "volume")
    absent = [c for c in required if c not in frame.columns]
    if absent:
        raise ValidationError(f"frame: missing column(s) {', '.join(absent)}")
    present = [c for c in COLUMNS if c in frame.columns]
    bars: list[OHLCVBar] = []
    cells = [frame[name].to_numpy() for name in present]  # numpy scalars: itertuples would widen float32
    for stamp, values in zip(stamps, zip(*cells, strict=True), strict=True):
        fields: dict[str, Any] = {name: _plain(value) for name, value in zip(present, values, strict=True)}
        try:
            bars.append(OHLCVBar(timestamp=stamp.to_pydatetime(), **keys, **fields))
        except ValidationError as exc:
            raise ValidationError(f"frame row {stamp.isoformat()}: {exc}") from None
    return bars
