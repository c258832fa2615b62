"""``tradestore import ohlcv|trades|decisions|events`` and ``tradestore export ohlcv``: files in and out."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import func, select

from tradestore.admin.history import ImportReport, import_records
from tradestore.cli.access import store
from tradestore.cli.console import CommandError, Console, table
from tradestore.domain import OHLCVBar
from tradestore.errors import ValidationError
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
from tradestore.files.records import assignments, read_records
from tradestore.manager import DatabaseManager
from tradestore.models import OHLCVModel
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
                    for chunk in chunked(read_bars(path, series, fmt, progress=progress.update), args.chunk_rows):
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
            except RowError as exc:
                earlier = f"; {len(done)} earlier file(s) were imported" if done else ""
                raise CommandError(f"{exc}; nothing of {name} was written{earlier}") from None
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
            c = OHLCVModel
            total = await session.scalar(
                select(func.count()).where(
                    c.exchange == series.exchange,
                    c.symbol == series.symbol,
                    c.timeframe == series.timeframe,
                    c.timestamp >= start,
                    c.timestamp <= end,
                )
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
