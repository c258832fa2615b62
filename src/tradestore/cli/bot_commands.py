"""``tradestore bots`` and ``tradestore performance BOT_ID``: who is running, and how well a bot did."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tradestore.cli.access import store
from tradestore.cli.console import CommandError, Console, pairs, table
from tradestore.domain import EquitySnapshot, PerformanceReport
from tradestore.repositories import BotRepository, EquityRepository
from tradestore.urls import mask, resolve

#: Points drawn at most by ``--plot``: longer curves are read as the last snapshot of each period.
PLOT_POINTS = 20_000
_PLOT_PERIODS = (("1m", 60), ("1h", 3_600), ("1d", 86_400), ("1w", 604_800))


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = max(int((now - moment).total_seconds()), 0)
    for limit, size, unit in ((120, 1, "s"), (7_200, 60, "m"), (172_800, 3_600, "h")):
        if seconds < limit:
            return f"{seconds // size}{unit} ago"
    return f"{seconds // 86_400}d ago"


async def bots(args: argparse.Namespace, console: Console) -> int:
    """Every bot: status, mode, heartbeat age; running bots silent for longer than ``--stale-after`` are marked."""
    url = resolve(args.url)
    now = datetime.now(UTC)
    async with store(url) as db, db.get_session() as session:
        found = await BotRepository(session).list_bots(status=args.status, mode=args.mode)
    rows: list[dict[str, Any]] = []
    for bot in found:
        age = None if bot.last_heartbeat is None else (now - bot.last_heartbeat).total_seconds()
        stale = bot.status == "running" and (age is None or age > args.stale_after.total_seconds())
        rows.append(
            {
                "bot_id": bot.bot_id,
                "mode": bot.mode,
                "status": bot.status,
                "strategy": bot.strategy,
                "version": bot.version,
                "balance": bot.balance,
                "started_at": bot.started_at,
                "last_heartbeat": bot.last_heartbeat,
                "heartbeat_age_seconds": age,
                "stale": stale,
            }
        )

    def human() -> str:
        if not rows:
            return "no bots registered" + (" matching those filters" if args.status or args.mode else "")
        listing = table(
            ["bot", "mode", "status", "strategy", "version", "balance", "last heartbeat", ""],
            [
                [
                    r["bot_id"],
                    r["mode"],
                    r["status"],
                    r["strategy"],
                    r["version"],
                    r["balance"],
                    _age(r["last_heartbeat"], now),
                    "STALE" if r["stale"] else "",
                ]
                for r in rows
            ],
        )
        stale = sum(r["stale"] for r in rows)
        note = f"; {stale} stale (running, silent for more than {args.stale_after})" if stale else ""
        return f"{listing}\n\n{len(rows)} bot{'s' if len(rows) != 1 else ''}{note}"

    console.emit({"database": mask(url), "stale_after_seconds": args.stale_after.total_seconds(), "bots": rows}, human)
    return 0


def _percent(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.4f} %"


def report_lines(report: PerformanceReport) -> dict[str, Any]:
    """The report as the lines of the readable table."""
    t = report.trades
    return {
        "bot": f"{report.bot_id} ({report.mode})",
        "window": f"{report.start:%Y-%m-%d %H:%M:%SZ} .. {report.end:%Y-%m-%d %H:%M:%SZ}",
        "snapshots": report.snapshots,
        "daily returns": report.periods,
        "starting equity": report.starting_equity,
        "ending equity": report.ending_equity,
        "total return": _percent(report.total_return),
        "CAGR": _percent(report.cagr),
        "max drawdown": _percent(report.max_drawdown),
        "  peak": report.max_drawdown_peak,
        "  trough": report.max_drawdown_trough,
        "  recovered": report.max_drawdown_recovered or ("not yet" if report.max_drawdown_peak else None),
        "volatility": _percent(report.volatility),
        "sharpe": report.sharpe,
        "sortino": report.sortino,
        "calmar": report.calmar,
        "periods per year": report.periods_per_year,
        "risk-free rate": report.risk_free_rate,
        "trades closed": t.total_trades,
        "  won / lost": f"{t.winning_trades} / {t.losing_trades}",
        "  win rate": f"{t.win_rate} %",
        "  net pnl": t.net_pnl,
        "  profit factor": t.profit_factor,
    }


def _plot_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


async def performance(args: argparse.Namespace, console: Console) -> int:
    """The performance report of one bot (``--plot FILE.png``: its equity curve with the drawdown underneath)."""
    if args.plot is not None and not _plot_available():
        raise CommandError("--plot needs matplotlib: pip install 'tradestore[plot]'")
    if args.plot is not None and args.plot.suffix.lower() != ".png":
        raise CommandError(f"--plot writes a PNG file: give a name ending in .png, not {args.plot.name!r}")
    url = resolve(args.url)
    progress = console.progress(f"performance of {args.bot_id}")
    try:
        progress.update(0)
        async with store(url) as db, db.get_session() as session:
            repo = EquityRepository(session)
            report = await repo.performance(
                args.bot_id,
                mode=args.mode,
                start=args.start,
                end=args.end,
                periods_per_year=args.periods_per_year,
                risk_free_rate=args.risk_free_rate,
            )
            curve: list[EquitySnapshot] = []
            if args.plot is not None:
                span = (report.end - report.start).total_seconds()
                every = next((name for name, size in _PLOT_PERIODS if span / size <= PLOT_POINTS), "1M")
                thin = report.snapshots > PLOT_POINTS
                curve = await repo.get_curve(
                    args.bot_id, mode=report.mode, start=args.start, end=args.end, every=every if thin else None
                )
    finally:
        progress.close()
    if args.plot is not None:
        draw(curve, report, args.plot)
    data = dataclasses.asdict(report) | {"database": mask(url), "plot": None if args.plot is None else str(args.plot)}
    console.emit(data, lambda: pairs(report_lines(report)) + (f"\n\nplot written to {args.plot}" if args.plot else ""))
    return 0


def draw(curve: list[EquitySnapshot], report: PerformanceReport, path: Path) -> None:
    """The equity curve over its drawdown from the running peak (in percent), as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    from matplotlib import pyplot

    times = [s.timestamp for s in curve]
    equity = [float(s.equity) for s in curve]  # drawing only: the report's figures are exact
    peak, drawdown = 0.0, []
    for value in equity:
        peak = max(peak, value)
        drawdown.append(-100 * (peak - value) / peak if peak > 0 else 0.0)
    figure, (top, bottom) = pyplot.subplots(
        2, 1, sharex=True, figsize=(10, 6), gridspec_kw={"height_ratios": [3, 1]}, layout="constrained"
    )
    top.plot(times, equity, linewidth=1, color="tab:blue")
    top.set_title(f"{report.bot_id} ({report.mode}): equity")
    top.set_ylabel("equity")
    if report.max_drawdown_peak is not None and report.max_drawdown_trough is not None:
        top.axvspan(report.max_drawdown_peak, report.max_drawdown_trough, color="tab:red", alpha=0.15)
    top.grid(alpha=0.3)
    bottom.fill_between(times, drawdown, 0, color="tab:red", alpha=0.4, step="post")
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
