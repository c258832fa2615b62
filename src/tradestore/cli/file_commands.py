"""``tradestore import ohlcv`` and ``tradestore export ohlcv``: candles from and to files."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from tradestore import timeframes
from tradestore.cli.access import store
from tradestore.cli.console import CommandError, Console, table
from tradestore.domain import OHLCVBar
from tradestore.files.ohlcv import (
    DECIMAL_COLUMNS,
    DecimalShape,
    ParquetWriter,
    RowError,
    Series,
    guess_format,
    parquet_available,
    read_bars,
    write_csv,
)
from tradestore.files.plot import draw, plot_available, save_png
from tradestore.manager import DatabaseManager
from tradestore.repositories import OHLCVRepository
from tradestore.urls import mask, resolve
from tradestore.values import chunked

#: Bars per Parquet row group.
ROW_GROUP = 50_000
#: Bars read per transaction when exporting.
READ_BATCH = 10_000
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, tzinfo=UTC)


async def import_ohlcv(args: argparse.Namespace, console: Console) -> int:
    """Upsert the bars of each file, one transaction per file, stopping at the first bad row."""
    url = resolve(args.url)
    series = Series(args.exchange, args.symbol, args.timeframe)
    for path in args.files:
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
    done: list[dict[str, Any]] = []
    async with store(url) as db:
        for path in args.files:
            fmt = args.format or guess_format(path)
            size = path.stat().st_size if fmt == "csv" else None
            progress = console.progress(f"importing {path.name}", size)
            count, first, last = 0, None, None
            try:
                async with db.get_session() as session:  # the whole file or nothing of it
                    repo = OHLCVRepository(session)
                    bars = read_bars(path, series, fmt, progress=progress.update, align=args.align)
                    for chunk in chunked(bars, args.chunk_rows):
                        await repo.upsert_many(chunk)
                        count += len(chunk)
                        low, high = min(b.timestamp for b in chunk), max(b.timestamp for b in chunk)
                        first = low if first is None else min(first, low)
                        last = high if last is None else max(last, high)
            except RowError as exc:
                earlier = f"; {len(done)} earlier file(s) were imported" if done else ""
                raise CommandError(f"{exc}; nothing of {path} was written{earlier}") from None
            finally:
                progress.close()
            done.append({"file": str(path), "format": fmt, "bars": count, "first": first, "last": last})
    data = {"database": mask(url), **vars(series), "files": done, "bars": sum(d["bars"] for d in done)}

    def human() -> str:
        rows = [[d["file"], d["format"], d["bars"], d["first"], d["last"]] for d in done]
        listing = table(["file", "format", "bars", "first", "last"], rows)
        return (
            f"{listing}\n\nimported {data['bars']:,} {series.timeframe} bars of {series.exchange} {series.symbol} "
            f"into {mask(url)}"
        )

    console.emit(data, human)
    return 0


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` that becomes ``target`` only if the block succeeds."""
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        yield partial
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


async def export_ohlcv(args: argparse.Namespace, console: Console) -> int:
    """Write one series (optionally a window of it) to CSV or Parquet."""
    url = resolve(args.url)
    to_stdout = str(args.output) == "-"
    fmt = args.format or ("parquet" if args.output.suffix.lower() in (".parquet", ".pq") else "csv")
    if to_stdout and (fmt != "csv" or console.json):
        raise CommandError("-o - writes CSV to standard output: it cannot be combined with --json or Parquet")
    if fmt == "parquet" and not parquet_available():
        raise CommandError("Parquet needs pyarrow: pip install 'tradestore[parquet]' (or export to .csv)")
    if not to_stdout and args.output.exists() and not args.force:
        raise CommandError(f"{args.output} already exists: choose another name or pass --force to replace it")
    series = Series(args.exchange, args.symbol, args.timeframe)
    start, end = args.start or _EARLIEST, args.end or _LATEST
    async with store(url) as db:
        async with db.get_session() as session:
            total = await OHLCVRepository(session).count_bars(
                series.symbol, series.timeframe, series.exchange, start=start, end=end
            )
        if not total:
            raise CommandError(
                f"no {series.timeframe} bars of {series.exchange} {series.symbol} in that range: nothing written"
            )

        def bars() -> AsyncIterator[OHLCVBar]:
            return _read_in_batches(db, series, start, end)

        progress = console.progress(f"exporting {series.symbol} {series.timeframe}", total, "bars")
        try:
            if to_stdout:
                count = await write_csv(bars(), console.out, progress=progress.update)
            else:
                with _replacing(args.output) as partial:
                    if fmt == "csv":
                        with partial.open("w", newline="", encoding="utf-8") as stream:
                            count = await write_csv(bars(), stream, progress=progress.update)
                    else:
                        count = await _write_parquet(partial, bars, series, progress.update)
        finally:
            progress.close()
    if to_stdout:
        return 0
    data = {
        "file": str(args.output),
        "format": fmt,
        **vars(series),
        "bars": count,
        "start": args.start,
        "end": args.end,
    }
    console.emit(
        data,
        lambda: (
            f"exported {count:,} {series.timeframe} bars of {series.exchange} {series.symbol} to {args.output} ({fmt})"
        ),
    )
    return 0


async def _read_in_batches(
    db: DatabaseManager, series: Series, start: datetime, end: datetime
) -> AsyncIterator[OHLCVBar]:
    """The window's bars, oldest first, each batch read in a short transaction of its own.

    On SQLite a transaction holds the write lock: a bot writing next to a long export would
    otherwise wait for all of it, and give up after its busy timeout.
    """
    after, size = start, READ_BATCH
    while True:
        batch: list[OHLCVBar] = []
        async with db.get_session() as session:
            stream = cast(
                AsyncGenerator[OHLCVBar, None],
                OHLCVRepository(session).stream_range(
                    series.symbol, series.timeframe, after, end, series.exchange, batch_size=size
                ),
            )
            async with contextlib.aclosing(stream):
                async for bar in stream:
                    batch.append(bar)
                    if len(batch) == size:
                        break
        for bar in batch:
            yield bar
        if len(batch) < size:
            return
        after = batch[-1].timestamp + timedelta(microseconds=1)


async def _write_parquet(
    path: Path, bars: Callable[[], AsyncIterator[OHLCVBar]], series: Series, progress: Callable[[int], None]
) -> int:
    """Two passes: the first sizes the decimal columns, the second writes row groups."""
    widths = {name: DecimalShape() for name in DECIMAL_COLUMNS}
    async for bar in bars():
        for name, shape in widths.items():
            shape.widen(getattr(bar, name))
    writer = ParquetWriter(path, widths, series)
    count = 0
    try:
        group: list[OHLCVBar] = []
        async for bar in bars():
            group.append(bar)
            if len(group) == ROW_GROUP:
                writer.write(group)
                count += len(group)
                progress(count)
                group = []
        if group:
            writer.write(group)
            count += len(group)
            progress(count)
    finally:
        writer.close()
    return count


#: More candles than this make a picture no one can read: narrow the window instead.
PLOT_MAX_BARS = 20_000


async def plot_ohlcv(args: argparse.Namespace, console: Console) -> int:
    """Draw one series (or a window of it) as candles over volume, gaps shaded, to a PNG file."""
    if not plot_available():
        raise CommandError("plotting needs matplotlib: pip install 'tradestore[plot]'")
    if args.output.suffix.lower() != ".png":
        raise CommandError(f"{args.output}: plot writes PNG files (name it *.png)")
    if args.output.exists() and not args.force:
        raise CommandError(f"{args.output} already exists: choose another name or pass --force to replace it")
    url = resolve(args.url)
    start, end = args.start or _EARLIEST, args.end or _LATEST
    async with store(url) as db, db.get_session() as session:
        repo = OHLCVRepository(session)
        total = await repo.count_bars(args.symbol, args.timeframe, args.exchange, start=start, end=end)
        if not total:
            raise CommandError(
                f"no {args.timeframe} bars of {args.exchange} {args.symbol} in that range: nothing drawn"
            )
        if total > PLOT_MAX_BARS:
            raise CommandError(
                f"{total:,} bars are too many to draw (at most {PLOT_MAX_BARS:,}): narrow the window with --start/--end"
            )
        bars = await repo.get_range(args.symbol, args.timeframe, start, end, args.exchange)
        gaps = await repo.get_gaps(args.symbol, args.timeframe, args.exchange, start=args.start, end=args.end)
    name = f"{args.exchange} {args.symbol} {args.timeframe}"
    figure = draw(
        bars, gaps, title=f"{name}, {bars[0].timestamp:%Y-%m-%d %H:%M} to {bars[-1].timestamp:%Y-%m-%d %H:%M} UTC"
    )
    with _replacing(args.output) as partial:
        save_png(figure, partial)
    missing = sum(timeframes.count_between(args.timeframe, a, b) for a, b in gaps)
    data = {"file": str(args.output), "bars": len(bars), "gaps": len(gaps), "missing": missing}
    console.emit(
        data,
        lambda: (
            f"plotted {len(bars):,} bars of {name} with {len(gaps):,} gaps ({missing:,} missing bars) to {args.output}"
        ),
    )
    return 0
