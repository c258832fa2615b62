"""``tradestore import ohlcv|trades|decisions|events|equity`` and ``tradestore export ohlcv``: files in and out."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
from array import array
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from tradestore import timeframes
from tradestore.admin.history import ImportReport, import_records
from tradestore.cli.access import store
from tradestore.cli.console import CommandError, Console, table, writing_out
from tradestore.domain import OHLCVBar
from tradestore.errors import ValidationError
from tradestore.files.ohlcv import (
    DECIMAL_COLUMNS,
    DecimalShape,
    ParquetWriter,
    RowError,
    Series,
    guess_format,
    not_utf8,
    parquet_available,
    read_bars,
    write_csv,
)
from tradestore.files.plot import draw, plot_available, save_png
from tradestore.files.records import assignments, read_records
from tradestore.manager import DatabaseManager
from tradestore.pages import keyset_pages
from tradestore.repositories import OHLCVRepository
from tradestore.urls import mask, resolve
from tradestore.values import chunked

#: Bars per Parquet row group.
ROW_GROUP = 50_000
#: Bars read per transaction when exporting.
READ_BATCH = 10_000
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, tzinfo=UTC)
_JUST_AFTER = _MICROSECOND = timedelta(microseconds=1)


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
            written, first, last = DistinctCounter(), None, None
            try:
                async with db.get_session() as session:  # the whole file or nothing of it
                    repo = OHLCVRepository(session)
                    bars = read_bars(path, series, fmt, progress=progress.update, align=args.align)
                    for chunk in chunked(bars, args.chunk_rows):
                        await repo.upsert_many(chunk)
                        for bar in chunk:
                            written.add(bar.timestamp)
                        low, high = min(b.timestamp for b in chunk), max(b.timestamp for b in chunk)
                        first = low if first is None else min(first, low)
                        last = high if last is None else max(last, high)
            except RowError as exc:
                earlier = f"; {len(done)} earlier file(s) were imported" if done else ""
                raise CommandError(f"{exc}; nothing of {path} was written{earlier}") from None
            finally:
                progress.close()
            done.append(
                {
                    "file": str(path),
                    "format": fmt,
                    "rows": written.added,
                    "bars": written.distinct,
                    "first": first,
                    "last": last,
                }
            )
    # Bars of one file are distinct by timestamp (a repeated one overwrites the earlier); across
    # files they may overlap, so the total is what each file wrote.
    data = {"database": mask(url), **vars(series), "files": done, "bars": sum(d["bars"] for d in done)}

    def human() -> str:
        rows = [[d["file"], d["format"], d["rows"], d["bars"], d["first"], d["last"]] for d in done]
        listing = table(["file", "format", "rows", "bars", "first", "last"], rows)
        repeated = sum(d["rows"] - d["bars"] for d in done)
        note = (
            f" ({repeated:,} row{'s' if repeated != 1 else ''} repeated a timestamp of the same file: "
            "the last of each was kept)"
            if repeated
            else ""
        )
        return (
            f"{listing}\n\nimported {data['bars']:,} {series.timeframe} bars of {series.exchange} {series.symbol} "
            f"into {mask(url)}{note}"
        )

    console.emit(data, human)
    return 0


async def import_history(args: argparse.Namespace, console: Console) -> int:
    """Store the trades, decisions or events of each file (JSON array or JSON Lines), one transaction per file."""
    url = resolve(args.url)
    try:
        renames, fills = assignments(args.map, "--map"), assignments(args.set, "--set")
    except ValidationError as exc:
        raise CommandError(str(exc)) from None
    paths = [None if name == "-" else Path(name) for name in args.files]
    for path in paths:
        if path is not None and not path.is_file():
            raise CommandError(f"{path}: no such file")
    if args.skip_invalid is not None and any(
        p is not None and p.resolve() == args.skip_invalid.resolve() for p in paths
    ):
        raise CommandError(
            f"--skip-invalid {args.skip_invalid}: that is an input file; name another file for the rejects"
        )
    done: list[ImportReport] = []
    async with store(url) as db, contextlib.AsyncExitStack() as stack:
        rejects = None
        if args.skip_invalid is not None:
            rejects = stack.enter_context(args.skip_invalid.open("w", encoding="utf-8"))
        for path in paths:
            name = "<stdin>" if path is None else str(path)
            progress = console.progress(
                f"importing {'stdin' if path is None else path.name}", None if path is None else path.stat().st_size
            )
            try:
                with contextlib.ExitStack() as files:
                    stream = sys.stdin if path is None else files.enter_context(path.open(encoding="utf-8-sig"))
                    async with db.get_session() as session:  # the whole file or nothing of it
                        report = await import_records(
                            session,
                            args.kind,
                            read_records(stream, name, progress=progress.update),
                            name,
                            renames=renames,
                            fills=fills,
                            rejects=rejects,
                            exchange=db.exchange,
                        )
            except (RowError, UnicodeDecodeError) as exc:
                earlier = f"; {len(done)} earlier file(s) were imported" if done else ""
                error = not_utf8(path) if isinstance(exc, UnicodeDecodeError) and path is not None else exc
                raise CommandError(f"{error}; nothing of {name} was written{earlier}") from None
            finally:
                progress.close()
            done.append(report)
    data = {
        "database": mask(url),
        "kind": args.kind,
        "files": [vars(r) for r in done],
        "written": sum(r.written for r in done),
        "already_stored": sum(r.already_stored for r in done),
        "rejected": sum(r.rejected for r in done),
        "rejects_file": args.skip_invalid,
    }

    def human() -> str:
        headers = ["file", "records", "written", "already stored", "rejected"]
        listing = table(headers, [[r.file, r.records, r.written, r.already_stored, r.rejected] for r in done])
        lines = [listing, "", f"imported {data['written']:,} {args.kind} into {mask(url)}"]
        if data["already_stored"]:
            lines.append(f"{data['already_stored']:,} were already stored and left as they are")
        if args.skip_invalid is not None:
            lines.append(f"{data['rejected']:,} rejected, each with its reason, in {args.skip_invalid}")
        kept = sorted({name for r in done for name in r.kept_in_metadata})
        if kept:
            where = "details" if args.kind == "events" else "metadata"
            lines.append(f"fields without a column, kept in {where}: {', '.join(kept)}")
        return "\n".join(lines)

    console.emit(data, human)
    return 0


class DistinctCounter:
    """Counts values and distinct values, at 8 bytes a value while they arrive in ascending order.

    Candle files are nearly always sorted: then a value is new exactly when it is above the
    last one. Once the order breaks, the values seen so far move into a set.
    """

    def __init__(self) -> None:
        self.added = 0
        self.distinct = 0
        self._ascending: array[int] | None = array("q")
        self._seen: set[int] = set()
        self._last: int | None = None

    def add(self, moment: datetime) -> None:
        """Count one value."""
        value = (moment - timeframes.EPOCH) // _MICROSECOND
        self.added += 1
        if self._ascending is not None:
            if self._last is None or value > self._last:
                self._ascending.append(value)
                self._last = value
                self.distinct += 1
                return
            if value == self._last:
                return
            self._seen, self._ascending = set(self._ascending), None
        if value not in self._seen:
            self._seen.add(value)
            self.distinct += 1


@contextlib.contextmanager
def _destination(target: Path) -> Iterator[Path]:
    """The path to write ``target``'s contents to; the user's path in every error.

    A new or regular file is written beside it under a temporary name that replaces it only
    when the block succeeds. A symbolic link is followed: the file it points to is replaced and
    the link stays. A FIFO, a device or a socket is written into directly, never replaced.

    Raises:
        CommandError: ``target`` is a folder, its folder does not exist, or writing failed.
    """
    try:
        mode: int | None = target.stat().st_mode  # through any link, /dev/stdout's included
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise CommandError(f"{target} is a folder: give a file name")
    if mode is not None and not stat.S_ISREG(mode):
        try:
            with writing_out():  # a pipe's reader leaving early (`-o /dev/stdout | head`) is no failure
                yield target
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from None
        return
    real = target.resolve()  # the file a symbolic link points to is the one replaced
    if not real.parent.is_dir():
        raise CommandError(f"cannot write {target}: the folder {real.parent} does not exist")
    partial = real.with_name(f".{real.name}.partial-{os.getpid()}")
    try:
        yield partial
        os.replace(partial, real)
    except OSError as exc:  # the user never heard of the temporary name: name their path
        raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from None
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
                with writing_out():
                    count = await write_csv(bars(), console.out, progress=progress.update)
            else:
                with _destination(args.output) as path:
                    if fmt == "csv":
                        with path.open("w", newline="", encoding="utf-8") as stream:
                            count = await write_csv(bars(), stream, progress=progress.update)
                    else:
                        count = await _write_parquet(path, bars, series, progress.update)
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

    async def batch(after: datetime) -> list[OHLCVBar]:
        async with db.get_session() as session:
            stream = cast(
                AsyncGenerator[OHLCVBar, None],
                OHLCVRepository(session).stream_range(
                    series.symbol, series.timeframe, after, end, series.exchange, batch_size=READ_BATCH
                ),
            )
            page: list[OHLCVBar] = []
            async with contextlib.aclosing(stream):  # the stream's first page, then let go
                async for bar in stream:
                    page.append(bar)
                    if len(page) == READ_BATCH:
                        break
            return page

    async for page in keyset_pages(batch, start, READ_BATCH, lambda bar: bar.timestamp + _JUST_AFTER):
        for bar in page:
            yield bar


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
    with _destination(args.output) as partial:
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
