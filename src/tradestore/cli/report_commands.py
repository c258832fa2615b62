"""``tradestore health | stats | series | gaps``: what the database is and what it holds."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tradestore import timeframes
from tradestore.admin.inventory import inventory, mode_order
from tradestore.cli.access import store
from tradestore.cli.console import CommandError, Console, human_bytes, pairs, table
from tradestore.health import health as health_of
from tradestore.models import SeriesModel
from tradestore.repositories import OHLCVRepository
from tradestore.repositories.base import ALL_EXCHANGES
from tradestore.urls import resolve


def _schema_text(revision: str | None, head: str | None, status: str | None) -> str:
    return f"{revision or '(none)'} ({status}; this tradestore needs {head})"


async def health(args: argparse.Namespace, console: Console) -> int:
    """Whether the database answers, how fast, and whether its schema is the one this code needs."""
    url = resolve(args.url)
    report = await health_of(url)

    def human() -> str:
        rows: dict[str, Any] = {"status": report.status, "backend": report.backend, "database": report.database}
        if report.error is None:
            rows |= {
                "server version": report.server_version,
                "latency": f"{report.latency_ms:.1f} ms",
                "schema": _schema_text(report.schema_revision, report.schema_head, report.schema_status),
            }
        rows["size"] = human_bytes(report.size_bytes)
        return pairs(rows)

    console.emit(report.as_dict(), human)
    if report.error is not None:
        raise CommandError(report.error)
    return 0


async def stats(args: argparse.Namespace, console: Console) -> int:
    """What the database holds: rows per table and per mode, open and closed trades, proposals, size."""
    found = await inventory(resolve(args.url))

    def human() -> str:
        head: dict[str, Any] = {
            "database": found.database,
            "backend": f"{found.backend} {found.server_version}",
            "schema": _schema_text(found.schema_revision, found.schema_head, found.schema_status),
            "size": human_bytes(found.size_bytes),
            "series": found.series,
        }
        if found.free_pages is not None:
            head["free"] = (
                f"{found.free_pages:,} pages, {human_bytes(found.free_bytes)} (`tradestore optimize` reclaims them)"
            )
        modes = sorted({m for split in found.rows_by_mode.values() for m in split}, key=mode_order)
        rows = [
            [name, count, *(found.rows_by_mode[name].get(m, 0) if name in found.rows_by_mode else None for m in modes)]
            for name, count in sorted(found.rows.items())
        ]
        bots = found.bots_by_status
        activity: dict[str, Any] = {
            "open trades": found.open_trades,
            "closed trades": found.closed_trades,
            "open orders": found.open_orders,
            "pending proposals": found.pending_proposals,
            "bots": None if bots is None else ", ".join(f"{n:,} {status}" for status, n in bots.items()) or "none",
        }
        return "\n\n".join([pairs(head), table(["table", "rows", *modes], rows), pairs(activity)])

    console.emit(found.as_dict(), human)
    return 0


async def series(args: argparse.Namespace, console: Console) -> int:
    """Every stored candle series with its span, bar count and holes."""
    url = resolve(args.url)
    rows: list[dict[str, Any]] = []
    async with store(url) as db, db.get_session() as session:
        repo = OHLCVRepository(session)
        for info in await repo.list_series(args.exchange or ALL_EXCHANGES):
            gaps = await repo.get_gaps(info.symbol, info.timeframe, info.exchange)
            missing = sum(timeframes.count_between(info.timeframe, a, b) for a, b in gaps)
            rows.append(
                {
                    "exchange": info.exchange,
                    "symbol": info.symbol,
                    "timeframe": info.timeframe,
                    "first": info.first,
                    "last": info.last,
                    "bars": info.count,
                    "gaps": len(gaps),
                    "missing": missing,
                }
            )

    def human() -> str:
        if not rows:
            return "no candles stored" + (f" for {args.exchange}" if args.exchange else "")
        headers = ["exchange", "symbol", "timeframe", "first", "last", "bars", "gaps", "missing"]
        return table(headers, [[r[h] for h in headers] for r in rows])

    console.emit(rows, human)
    return 0


async def gaps(args: argparse.Namespace, console: Console) -> int:
    """The missing bar ranges of one series, each with its number of missing bars."""
    url = resolve(args.url)
    async with store(url) as db, db.get_session() as session:
        repo = OHLCVRepository(session)
        # With or without a window: a series without a single bar is a misspelling far more
        # often than a series whose every bar is missing, and must never read as "no gaps".
        if not await repo.get_latest(args.symbol, args.timeframe, 1, args.exchange):
            raise CommandError(await _unknown_series(session, args.exchange, args.symbol, args.timeframe))
        found = await repo.get_gaps(args.symbol, args.timeframe, args.exchange, start=args.start, end=args.end)
    ranges: list[dict[str, Any]] = [
        {"first": a, "last": b, "missing": timeframes.count_between(args.timeframe, a, b)} for a, b in found
    ]
    total = sum(r["missing"] for r in ranges)
    data = {
        "exchange": args.exchange,
        "symbol": args.symbol,
        "timeframe": args.timeframe,
        "start": args.start,
        "end": args.end,
        "gaps": ranges,
        "missing": total,
    }

    def human() -> str:
        name = f"{args.exchange} {args.symbol} {args.timeframe}"
        if not ranges:
            return f"{name}: no gaps"
        listing = table(
            ["first missing", "last missing", "bars"], [[r["first"], r["last"], r["missing"]] for r in ranges]
        )
        return f"{listing}\n\n{name}: {len(ranges):,} gap{'s' if len(ranges) != 1 else ''}, {total:,} missing bars"

    console.emit(data, human)
    return 0


async def _unknown_series(session: AsyncSession, exchange: str, symbol: str, timeframe: str) -> str:
    """Why there is no such series, naming the exchanges that do hold ``symbol`` ``timeframe`` bars."""
    c = SeriesModel  # the series ledger: one row per series, no scan of the bars
    where = (c.symbol == symbol, c.timeframe == timeframe, c.bar_count > 0)
    elsewhere = list((await session.scalars(select(c.exchange).where(*where).distinct().order_by(c.exchange))).all())
    message = f"no {timeframe} bars stored for {exchange} {symbol}"
    if elsewhere:
        return f"{message}; {symbol} {timeframe} is stored for {', '.join(elsewhere)}"
    return f"{message} on any exchange (`tradestore series` lists what is)"
