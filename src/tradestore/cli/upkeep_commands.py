"""``tradestore copy | backup | prune | optimize``: moving, saving and tidying a database."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from tradestore.admin import maintenance
from tradestore.admin.backup import backup as make_backup
from tradestore.admin.transfer import copy_database
from tradestore.cli.access import engine_for, store
from tradestore.cli.console import CommandError, Console, cell, human_bytes, pairs, table
from tradestore.dialects.operations import operations
from tradestore.repositories import OHLCVRepository
from tradestore.urls import mask, resolve


async def copy(args: argparse.Namespace, console: Console) -> int:
    """Copy every table from SOURCE (or ``--url``) to TARGET, verified by row counts and checksums."""
    if len(args.urls) > 2:
        raise CommandError("copy takes SOURCE_URL TARGET_URL (or only TARGET_URL, with the source from --url)")
    source = resolve(args.urls[0] if len(args.urls) == 2 else args.url)
    target = resolve(args.urls[-1])
    progress = console.progress("copying", unit="rows")
    try:
        report = await copy_database(
            source, target, append=args.append, chunk_rows=args.chunk_rows, progress=lambda d, t: progress.update(d, t)
        )
    finally:
        progress.close()
    data = asdict(report) | {"copied": report.copied, "verified": all(t.verified for t in report.tables)}

    def human() -> str:
        rows = [[t.table, t.source_rows, t.copied, t.target_rows, t.checksum, t.verified] for t in report.tables]
        listing = table(["table", "source rows", "copied", "target rows", "checksum", "verified"], rows)
        created = " (schema created by the migrations)" if report.created_schema else ""
        return (
            f"{listing}\n\ncopied {report.copied:,} rows from {report.source} to {report.target}{created}; "
            "verified: row counts and checksums match"
        )

    console.emit(data, human)
    return 0


async def backup(args: argparse.Namespace, console: Console) -> int:
    """A consistent copy of the database in DEST (SQLite backup API, or pg_dump)."""
    report = await make_backup(resolve(args.url), args.dest, overwrite=args.force)
    data = asdict(report)

    def human() -> str:
        lines = {
            "database": report.database,
            "backup": report.destination,
            "method": report.method,
            "size": human_bytes(report.size_bytes),
        }
        if report.integrity is not None:
            lines["integrity_check"] = report.integrity
        lines["mode"] = "0600 (owner only)"
        return pairs(lines)

    console.emit(data, human)
    return 0


async def prune(args: argparse.Namespace, console: Console) -> int:
    """Apply one retention rule per table given; ``--dry-run`` only counts what would go."""
    if args.bars_older_than is not None and args.timeframe is None:
        raise CommandError("--bars-older-than needs --timeframe (e.g. --timeframe 1m): other timeframes are kept")
    if args.equity_keep_daily and args.equity_older_than is None:
        raise CommandError("--equity-keep-daily needs --equity-older-than (e.g. --equity-older-than 90d)")
    policy = maintenance.RetentionPolicy(
        events=args.events_older_than,
        bars=args.bars_older_than,
        bars_timeframe=args.timeframe,
        trades=args.trades_older_than,
        orders=args.orders_older_than,
        positions=args.positions_older_than,
        equity=args.equity_older_than,
        equity_keep_daily=args.equity_keep_daily,
        reports=args.reports_older_than,
        bots=args.bots_older_than,
        decisions=args.decisions_older_than,
        proposals=args.proposals_older_than,
    )
    if policy.empty:
        raise CommandError(
            "nothing to prune: give at least one of --events-older-than, --bars-older-than (with --timeframe), "
            "--trades-older-than, --orders-older-than, --positions-older-than, --equity-older-than, "
            "--reports-older-than, --bots-older-than, --decisions-older-than, --proposals-older-than"
        )
    url = resolve(args.url)
    async with store(url) as db, db.get_session() as session:
        results = await maintenance.prune(session, policy, dry_run=args.dry_run)
    data = {"database": mask(url), "dry_run": args.dry_run, "pruned": [asdict(r) for r in results]}
    verb = "would remove" if args.dry_run else "removed"

    def human() -> str:
        rows = [[r.table, f"{r.rule} {r.cutoff:%Y-%m-%d %H:%M:%SZ}", r.rows] for r in results]
        listing = table(["table", "rule", "rows"], rows)
        note = " (dry run: nothing was removed)" if args.dry_run else ""
        return f"{listing}\n\n{verb} {sum(r.rows for r in results):,} rows from {mask(url)}{note}"

    console.emit(data, human)
    return 0


async def delete_ohlcv(args: argparse.Namespace, console: Console) -> int:
    """Remove one series' bars within ``--start``/``--end`` (the whole series without them); ``--dry-run`` counts."""
    url = resolve(args.url)
    whole = args.start is None and args.end is None
    async with store(url) as db, db.get_session() as session:
        repo = OHLCVRepository(session)
        known = {(s.exchange, s.symbol, s.timeframe) for s in await repo.list_series(exchange=args.exchange)}
        # A dry run stops where the deletion would: on a series holding no bars, window or not.
        if (whole or args.dry_run) and (args.exchange, args.symbol, args.timeframe) not in known:
            raise CommandError(
                f"no {args.timeframe} bars stored for {args.exchange} {args.symbol} (`tradestore series` lists what is)"
            )
        if args.dry_run:
            bars = await repo.count_bars(args.symbol, args.timeframe, args.exchange, start=args.start, end=args.end)
        elif whole:
            bars = await repo.delete_series(args.symbol, args.timeframe, args.exchange)
        else:
            bars = await repo.delete_range(args.symbol, args.timeframe, args.start, args.end, args.exchange)
    data = {
        "database": mask(url),
        "exchange": args.exchange,
        "symbol": args.symbol,
        "timeframe": args.timeframe,
        "start": args.start,
        "end": args.end,
        "bars": bars,
        "dry_run": args.dry_run,
    }

    def human() -> str:
        verb = "would remove" if args.dry_run else "removed"
        what = f"{'all ' if whole else ''}{bars:,} {args.timeframe} bars of {args.exchange} {args.symbol}"
        first = "the first" if args.start is None else cell(args.start)
        window = "" if whole else f" from {first} to {'the last' if args.end is None else cell(args.end)}"
        note = " (dry run: nothing was removed)" if args.dry_run else ""
        return f"{verb} {what}{window} in {mask(url)}{note}"

    console.emit(data, human)
    return 0


async def optimize(args: argparse.Namespace, console: Console) -> int:
    """VACUUM and ANALYZE on SQLite, ANALYZE on PostgreSQL."""
    url = resolve(args.url)
    disk = operations(url)
    before = disk.file_size()
    async with engine_for(url) as engine:
        statements = await maintenance.optimize(engine)
    after = disk.file_size()
    data = {"database": mask(url), "statements": statements, "size_before": before, "size_after": after}

    def human() -> str:
        lines = {"database": mask(url), "ran": ", ".join(statements)}
        if before is not None:
            lines["size"] = f"{human_bytes(before)} -> {human_bytes(after)}"
        return pairs(lines)

    console.emit(data, human)
    return 0
