"""Candle files: read CSV, ccxt ``fetch_ohlcv`` JSON and Parquet into bars, write CSV and Parquet.

Readers validate every row and stop at the first bad one with a :class:`RowError` naming the
file, the line (CSV) or row (JSON), the field and the value. Writers stream: memory stays
flat for any number of bars.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from tradestore import timeframes
from tradestore.domain import OHLCVBar
from tradestore.domain.candles import from_epoch_ms
from tradestore.errors import ConfigurationError, ValidationError
from tradestore.values import to_utc

FORMATS = ("csv", "ccxt-json", "parquet")
#: Where a file's time column puts each bar: at its start (tradestore's own files, ccxt) or at
#: its end (many daily and monthly files); ``end`` moves each bar back to its start.
ALIGNMENTS = ("start", "end")
EXPORT_FORMATS = ("csv", "parquet")
#: Columns written to CSV and Parquet, in order.
CSV_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume", "quote_volume", "trades_count")
#: Header names accepted for the bar start (case-insensitive).
TIMESTAMP_NAMES = ("timestamp", "time", "datetime", "date", "open_time", "ts")
REQUIRED = ("open", "high", "low", "close", "volume")
OPTIONAL = ("quote_volume", "trades_count")
ACCEPTED = (
    f"a bar start named {', '.join(TIMESTAMP_NAMES)} (or an unnamed first column, as pandas writes its index); "
    f"{', '.join(REQUIRED)}; optionally {', '.join(OPTIONAL)} (any case and order; other columns are ignored)"
)
#: Epoch numbers at least this large are milliseconds (as seconds they would be past the year 5000).
MILLIS_THRESHOLD = 10**11

#: Called with how far a reader has got, in bytes (CSV) or rows (JSON).
Progress = Callable[[int], None]


class RowError(ValidationError):
    """A row of an input file that cannot become a bar."""

    def __init__(self, file: str, where: str, message: str) -> None:
        super().__init__(f"{file} {where}: {message}")
        self.file, self.where, self.reason = file, where, message


@dataclass(frozen=True)
class Series:
    """Which series the rows of a file belong to."""

    exchange: str
    symbol: str
    timeframe: str


def guess_format(path: Path) -> str:
    """``ccxt-json`` for a ``.json`` file, ``parquet`` for ``.parquet``/``.pq``, else ``csv``."""
    suffix = path.suffix.lower()
    return "ccxt-json" if suffix == ".json" else "parquet" if suffix in (".parquet", ".pq") else "csv"


def bar_start(timeframe: str, stamp: datetime, align: str) -> datetime:
    """The start of the bar a file stamps at ``stamp``.

    ``start``: ``stamp`` itself (it must be a bar start). ``end``: the bar that ``stamp``
    closes, whether stamped at its last moment (``23:59:59.999``) or at the next bar's start
    (``00:00`` of the next day, the 1st of the next month). The last moment is the next bar's
    start less one second, millisecond or microsecond; for bars longer than a day (``3d``,
    ``1w``, ``1M``) the 00:00 of their last day (``2024-01-31`` for January) is one too. Any
    other time lies inside a bar, and would merge rows silently: it is refused.

    Raises:
        ValidationError: ``align="end"`` and ``stamp`` is none of these times, naming it.
    """
    if align == "start":
        return stamp
    try:
        start = timeframes.floor(timeframe, stamp - timedelta(microseconds=1))
    except (OverflowError, ValueError):
        raise ValidationError(f"timestamp: {stamp.isoformat()} closes no {timeframe} bar (out of range)") from None
    try:
        before = timeframes.shift(timeframe, start, 1) - stamp
    except (OverflowError, ValueError):  # the calendar's last bar: its end is past year 9999
        before = datetime.max.replace(tzinfo=stamp.tzinfo) - stamp + timedelta(microseconds=1)
    if before in _END_GAPS or (before == timedelta(days=1) and timeframe in _LONGER_THAN_A_DAY):
        return start
    raise ValidationError(
        f"timestamp: {stamp.isoformat()} does not close a {timeframe} bar: with align end a time must be "
        f"the next bar's start ({_iso(start, timeframe)}) or the bar's last moment (one second, millisecond "
        f"or microsecond before it{', or 00:00 of its last day' if timeframe in _LONGER_THAN_A_DAY else ''})"
    )


#: How far before the next bar's start a time stamping a bar at its end may be.
_END_GAPS = frozenset((timedelta(0), timedelta(seconds=1), timedelta(milliseconds=1), timedelta(microseconds=1)))
_LONGER_THAN_A_DAY = frozenset(("3d", "1w", timeframes.MONTH))


def _iso(start: datetime, timeframe: str) -> str:
    try:
        return timeframes.shift(timeframe, start, 1).isoformat()
    except (OverflowError, ValueError):
        return "past 9999-12-31"


def parse_timestamp(text: str) -> datetime:
    """An aware UTC datetime from ISO-8601 text (naive means UTC) or epoch seconds/milliseconds.

    A number of at least 10**11 is taken as milliseconds, a smaller one as seconds.

    Raises:
        ValidationError: naming the value.
    """
    value = text.strip()
    try:
        number = Decimal(value)
    except InvalidOperation:
        number = None
    if number is not None and number.is_finite():
        micros = number * (1_000 if abs(number) >= MILLIS_THRESHOLD else 1_000_000)
        if micros != micros.to_integral_value():
            raise ValidationError(f"timestamp: {text!r} has more digits than microseconds")
        try:
            return timeframes.EPOCH + timedelta(microseconds=int(micros))
        except OverflowError:
            raise ValidationError(f"timestamp: {text!r} is out of range") from None
    try:
        return to_utc("timestamp", datetime.fromisoformat(value))
    except ValueError:
        raise ValidationError(f"timestamp: cannot read {text!r} as ISO-8601 or epoch seconds/milliseconds") from None


def _count(text: str) -> int | None:
    if not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise ValidationError(f"trades_count: not a whole number: {text!r}") from None


def _header(names: list[str], file: str, where: str = "line 1") -> dict[str, int]:
    """Column positions by field name; raises, listing the accepted names, for a header without the required columns."""
    lowered = [n.strip().lower() for n in names]
    positions: dict[str, int] = {}
    for candidate in TIMESTAMP_NAMES:
        if candidate in lowered:
            positions["timestamp"] = lowered.index(candidate)
            break
    else:
        if lowered and not lowered[0]:  # pandas' to_csv writes its index under an empty name
            positions["timestamp"] = 0
    for name in (*REQUIRED, *OPTIONAL):
        if name in lowered:
            positions[name] = lowered.index(name)
    missing = [n for n in ("timestamp", *REQUIRED) if n not in positions]
    if missing:
        found = ", ".join(repr(n) for n in names) or "nothing"
        raise RowError(
            file, where, f"the header has no {', '.join(missing)} column (found: {found}); accepted: {ACCEPTED}"
        )
    return positions


class CountingLines:
    """A text file's lines, counting the characters handed out (for the progress bar)."""

    def __init__(self, stream: IO[str], progress: Progress | None) -> None:
        self.stream, self.progress, self.done = stream, progress, 0

    def __iter__(self) -> Iterator[str]:
        for line in self.stream:
            self.done += len(line)
            if self.progress is not None:
                self.progress(self.done)
            yield line


def not_utf8(path: Path) -> RowError:
    """The error for a file that is not UTF-8 text, naming the first line and byte that is not."""
    with path.open("rb") as stream:
        for number, line in enumerate(stream, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = line[exc.start : exc.end]
                return RowError(
                    str(path),
                    f"line {number}",
                    f"not UTF-8 text (byte {bad.hex(' ')} at column {exc.start + 1}): save the file as UTF-8",
                )
    return RowError(str(path), "line 1", "not UTF-8 text: save the file as UTF-8")  # pragma: no cover


def _decoded(rows: Iterator[list[str]], path: Path) -> Iterator[list[str]]:
    """``rows``, with a file that is not UTF-8 reported as a :class:`RowError` naming its line."""
    try:
        yield from rows
    except UnicodeDecodeError:
        raise not_utf8(path) from None


def read_csv(
    path: Path, series: Series, *, progress: Progress | None = None, align: str = "start"
) -> Iterator[OHLCVBar]:
    """The bars of a CSV file with a header, in file order.

    The header names the columns (any order, case-insensitive): a bar start (``timestamp``,
    ``time``, ``datetime``, ``date``, ``open_time`` or ``ts``, or an unnamed first column),
    ``open high low close volume`` and optionally ``quote_volume`` and ``trades_count``;
    other columns are ignored. Blank lines are skipped. ``align="end"``: the times close their
    bars (see :func:`bar_start`).

    Raises:
        RowError: at the first row that is not a valid bar.
    """
    file = str(path)
    with path.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.reader(CountingLines(stream, progress))
        rows = _decoded(reader, path)
        try:
            header = next(rows)
        except StopIteration:
            raise RowError(file, "line 1", "the file is empty (expected a header)") from None
        positions = _header(header, file)
        width = len(header)
        for row in rows:
            if not row or all(not cell.strip() for cell in row):
                continue
            where = f"line {reader.line_num}"
            if len(row) != width:
                raise RowError(file, where, f"expected {width} fields like the header, got {len(row)}: {row!r}")
            try:
                fields: dict[str, Any] = {name: row[i] for name, i in positions.items()}
                fields["timestamp"] = bar_start(series.timeframe, parse_timestamp(fields["timestamp"]), align)
                if "quote_volume" in fields:
                    fields["quote_volume"] = fields["quote_volume"].strip() or None
                if "trades_count" in fields:
                    fields["trades_count"] = _count(fields["trades_count"])
                yield OHLCVBar(series.symbol, series.exchange, series.timeframe, **fields)
            except ValidationError as exc:
                raise RowError(file, where, str(exc)) from None


def read_ccxt_json(
    path: Path, series: Series, *, progress: Progress | None = None, align: str = "start"
) -> Iterator[OHLCVBar]:
    """The bars of a ccxt ``fetch_ohlcv`` JSON file: ``[[timestamp_ms, open, high, low, close, volume], …]``.

    Numbers are read as exact Decimals (every digit in the file is kept). ``align="end"``:
    the times close their bars (see :func:`bar_start`).

    Raises:
        RowError: the file is not such a list, or at the first row that is not a valid bar.
    """
    file = str(path)
    try:
        with path.open(encoding="utf-8") as stream:
            rows = json.load(stream, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise RowError(file, f"line {exc.lineno}", f"not JSON: {exc.msg}") from None
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    if not isinstance(rows, list):
        raise RowError(
            file,
            "top level",
            f"expected a list of [timestamp_ms, open, high, low, close, volume] rows, got a {type(rows).__name__}",
        )
    for number, row in enumerate(rows, start=1):
        try:
            if align == "end" and isinstance(row, list) and len(row) == 6:
                start = bar_start(series.timeframe, from_epoch_ms(row[0]), align)
                yield OHLCVBar(series.symbol, series.exchange, series.timeframe, start, *row[1:])
            else:
                yield OHLCVBar.from_ccxt(
                    row, exchange=series.exchange, symbol=series.symbol, timeframe=series.timeframe
                )
        except ValidationError as exc:
            raise RowError(file, f"row {number}", str(exc)) from None
        if progress is not None:
            progress(number)


def read_parquet(
    path: Path, series: Series, *, progress: Progress | None = None, align: str = "start"
) -> Iterator[OHLCVBar]:
    """The bars of a Parquet file, a row group at a time: what ``export ohlcv`` writes, or any
    file with the columns :func:`read_csv` accepts (a pandas index column too).

    Decimal columns come back as exact ``Decimal`` values, without the trailing zeros a fixed
    Parquet scale adds (``42000.120000000000000000`` is read as ``42000.12``); float columns
    become the Decimal of their shortest text. A file whose metadata names another timeframe
    is refused.

    Raises:
        RowError: the file is not Parquet, lacks a column, or at the first row that is not a valid bar.
    """
    pa = _pyarrow()
    file = str(path)
    try:
        parquet = pa.parquet.ParquetFile(str(path))
    except (OSError, pa.ArrowInvalid) as exc:
        raise RowError(file, "file", f"not a Parquet file: {exc}") from None
    metadata = {k.decode(): v.decode() for k, v in (parquet.schema_arrow.metadata or {}).items()}
    stored = metadata.get("tradestore.timeframe")
    if stored is not None and stored != series.timeframe:
        raise RowError(file, "metadata", f"the file holds {stored} bars, not {series.timeframe}")
    original = list(parquet.schema_arrow.names)
    indexes = json.loads(metadata.get("pandas", "{}")).get("index_columns", [])
    index = indexes[0] if indexes and isinstance(indexes[0], str) and indexes[0] in original else None
    if index is not None:  # pandas' index: the bar start, whatever its name (read as an unnamed first column)
        original = [index, *(name for name in original if name != index)]
    names = ["" if name == index else name for name in original]
    positions = _header(names, file, "header")
    columns = {field: original[i] for field, i in positions.items()}
    number = 0
    for batch in parquet.iter_batches(columns=list(dict.fromkeys(columns.values()))):
        values = {field: batch.column(name).to_pylist() for field, name in columns.items()}
        for i in range(batch.num_rows):
            number += 1
            try:
                fields: dict[str, Any] = {field: _from_parquet(values[field][i]) for field in columns}
                stamp = fields["timestamp"]
                stamp = parse_timestamp(str(stamp)) if not isinstance(stamp, datetime) else to_utc("timestamp", stamp)
                fields["timestamp"] = bar_start(series.timeframe, stamp, align)
                yield OHLCVBar(series.symbol, series.exchange, series.timeframe, **fields)
            except ValidationError as exc:
                raise RowError(file, f"row {number}", str(exc)) from None
        if progress is not None:
            progress(number)


def _from_parquet(value: Any) -> Any:
    """A Parquet cell as a bar field takes it: decimals without the scale's padding zeros."""
    if not isinstance(value, Decimal) or not value.is_finite():
        return value
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if not any(digits):
        return Decimal((sign, (0,), max(exponent, 0)))
    kept = len(digits)
    while exponent < 0 and digits[kept - 1] == 0:
        kept -= 1
        exponent += 1
    return Decimal((sign, digits[:kept], exponent))


def read_bars(
    path: Path, series: Series, fmt: str, *, progress: Progress | None = None, align: str = "start"
) -> Iterator[OHLCVBar]:
    """The bars of ``path`` in format ``fmt`` (one of :data:`FORMATS`); ``align`` one of :data:`ALIGNMENTS`."""
    if align not in ALIGNMENTS:
        raise ConfigurationError(f"align: expected one of {', '.join(ALIGNMENTS)}, got {align!r}")
    if fmt == "csv":
        return read_csv(path, series, progress=progress, align=align)
    if fmt == "ccxt-json":
        return read_ccxt_json(path, series, progress=progress, align=align)
    if fmt == "parquet":
        return read_parquet(path, series, progress=progress, align=align)
    raise ConfigurationError(f"format: unknown input format {fmt!r}; known: {', '.join(FORMATS)}")


def _plain_decimal(value: Decimal | None) -> str:
    """Decimal text without exponent (``1E-8`` → ``0.00000001``): every spreadsheet reads it."""
    return "" if value is None else format(value, "f")


def iso_utc(moment: datetime) -> str:
    """``2024-01-01T00:00:00Z``: ISO-8601 in UTC, microseconds only when there are some."""
    return moment.isoformat().replace("+00:00", "Z")


def csv_row(bar: OHLCVBar) -> list[str]:
    """One bar as the fields of :data:`CSV_COLUMNS`."""
    return [
        iso_utc(bar.timestamp),
        *(_plain_decimal(getattr(bar, name)) for name in ("open", "high", "low", "close", "volume", "quote_volume")),
        "" if bar.trades_count is None else str(bar.trades_count),
    ]


async def write_csv(bars: AsyncIterable[OHLCVBar], stream: IO[str], *, progress: Progress | None = None) -> int:
    """Write a header and one line per bar; returns the number of bars written.

    The file reads back with :func:`read_csv` into the same bars.
    """
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    async for bar in bars:
        writer.writerow(csv_row(bar))
        count += 1
        if progress is not None:
            progress(count)
    return count


DECIMAL_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume")


#: Parquet decimals are ``decimal128(38, 18)`` unless the data needs more digits: one type
#: for every file tradestore writes, so files of one series can be read as one dataset.
DEFAULT_PRECISION, DEFAULT_SCALE = 38, 18
MAX_PRECISION = 76  # decimal256


@dataclass
class DecimalShape:
    """The widest decimal seen in a column: digits before and after the point."""

    integer_digits: int = 1
    scale: int = 0

    def widen(self, value: Decimal | None) -> None:
        """Grow to hold ``value`` too."""
        if value is None:
            return
        _, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)  # bars hold finite numbers only
        self.scale = max(self.scale, -exponent)
        self.integer_digits = max(self.integer_digits, len(digits) + exponent)

    @property
    def parquet(self) -> tuple[int, int]:
        """(precision, scale) of a Parquet decimal that holds every value seen exactly."""
        scale = max(DEFAULT_SCALE, self.scale)
        return max(DEFAULT_PRECISION, self.integer_digits + scale), scale


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ConfigurationError("Parquet needs pyarrow: pip install 'tradestore[parquet]'") from None
    return pyarrow


def parquet_available() -> bool:
    """Whether pyarrow is installed."""
    try:
        _pyarrow()
    except ConfigurationError:
        return False
    return True


class ParquetWriter:
    """Bars to a Parquet file in row groups, with exact decimal columns sized to the data.

    Prices and volumes are ``decimal128(38, 18)``, wider (``decimal256``) only when a first
    pass over the bars (a :class:`DecimalShape` per column) finds values that need it; the bar
    start is ``timestamp[us, UTC]``; the series' exchange, symbol and timeframe are stored in
    the file's metadata.
    """

    def __init__(self, path: Path, shapes: dict[str, DecimalShape], series: Series) -> None:
        pa = self._pa = _pyarrow()
        fields = [pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False)]
        for name, shape in shapes.items():
            precision, scale = shape.parquet
            if precision > MAX_PRECISION:
                raise ValidationError(
                    f"{name}: {precision} digits are more than a Parquet decimal holds ({MAX_PRECISION})"
                )
            kind = pa.decimal128 if precision <= DEFAULT_PRECISION else pa.decimal256
            fields.append(pa.field(name, kind(precision, scale), nullable=name == "quote_volume"))
        fields.append(pa.field("trades_count", pa.int64()))
        metadata = {
            "tradestore.exchange": series.exchange,
            "tradestore.symbol": series.symbol,
            "tradestore.timeframe": series.timeframe,
        }
        self.schema = pa.schema(fields, metadata=metadata)
        self._writer = pa.parquet.ParquetWriter(str(path), self.schema)

    def write(self, bars: list[OHLCVBar]) -> None:
        """Write one row group."""
        columns = {name: [getattr(b, name) for b in bars] for name in CSV_COLUMNS}
        table = self._pa.Table.from_pydict(columns, schema=self.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        """Finish the file (its footer)."""
        self._writer.close()
