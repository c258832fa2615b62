"""Upkeep: retention (one policy per table, :func:`prune`) and ``optimize`` (VACUUM/ANALYZE).

What retention never removes: open trades (status ``open``) and trades an order that stays still
points to, open orders, open positions, pending and approved proposals and the decisions they
point to, bots that are not stopped, and (with ``equity_keep_daily``) the last equity snapshot of
each bot, mode and UTC day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Delete, Select, and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tradestore import timeframes
from tradestore.dialects import period_index
from tradestore.dialects.operations import operations
from tradestore.domain import OPEN_ORDER_STATUSES, PROPOSAL_MOVES
from tradestore.errors import ValidationError
from tradestore.models import (
    BotModel,
    DecisionModel,
    EquitySnapshotModel,
    FillModel,
    OrderHistoryModel,
    OrderModel,
    PerformanceReportModel,
    PositionModel,
    ProposalModel,
    SystemEventModel,
    TradeModel,
)
from tradestore.repositories import OHLCVRepository
from tradestore.repositories.base import ALL_EXCHANGES
from tradestore.values import to_optional_utc, to_utc


@dataclass(frozen=True)
class Pruned:
    """Rows one retention rule removed (or, on a dry run, would remove)."""

    table: str
    rule: str
    cutoff: datetime
    rows: int
    removed: bool


async def _apply(session: AsyncSession, count: Select[Any], remove: Delete, *, dry_run: bool) -> int:
    rows = int(await session.scalar(count) or 0)
    if rows and not dry_run:
        await session.execute(remove)
    return rows


async def prune_events(session: AsyncSession, older_than: datetime, *, dry_run: bool = False) -> Pruned:
    """Remove system events created before ``older_than`` (nothing on a dry run)."""
    cutoff = to_utc("older_than", older_than)
    e = SystemEventModel
    rows = await _apply(
        session,
        select(func.count()).select_from(e).where(e.created_at < cutoff),
        delete(e).where(e.created_at < cutoff),
        dry_run=dry_run,
    )
    return Pruned("system_events", "created before", cutoff, rows, removed=not dry_run)


async def prune_bars(session: AsyncSession, timeframe: str, older_than: datetime, *, dry_run: bool = False) -> Pruned:
    """Remove ``timeframe`` candles that start before ``older_than`` (nothing on a dry run).

    Series by series through :meth:`OHLCVRepository.delete_range`, which keeps the series
    ledger right and forgets the removed bars' fetched ranges.
    """
    cutoff = to_utc("older_than", older_than)
    timeframes.check(timeframe)
    repo = OHLCVRepository(session)
    last = cutoff - timedelta(microseconds=1)
    rows = 0
    for series in await repo.list_series(ALL_EXCHANGES):
        if series.timeframe != timeframe or series.first > last:
            continue
        if dry_run:
            rows += await repo.count_bars(series.symbol, timeframe, series.exchange, end=last)
        else:
            rows += await repo.delete_range(series.symbol, timeframe, None, last, exchange=series.exchange)
    return Pruned("ohlcv", f"{timeframe} bars starting before", cutoff, rows, removed=not dry_run)


async def prune_trades(
    session: AsyncSession,
    older_than: datetime,
    *,
    dry_run: bool = False,
    orders_older_than: datetime | None = None,
) -> Pruned:
    """Remove trades closed (by ``exit_time``) or cancelled (by ``updated_at``) before ``older_than``.

    Open trades always stay, and so does a trade an order still points to (an order keeps its
    trade). ``orders_older_than``: the cutoff of :func:`prune_orders` run in the same unit of
    work just before, whose orders then no longer hold their trades (a dry run counts as if
    they were gone).
    """
    cutoff = to_utc("older_than", older_than)
    t, o = TradeModel, OrderModel
    holding = [o.trade_id == t.id]
    if orders_older_than is not None:
        holding.append(~_final_orders(to_utc("orders_older_than", orders_older_than)))
    where = (
        t.status != "open",
        func.coalesce(t.exit_time, t.updated_at) < cutoff,
        ~select(o.id).where(*holding).correlate(t).exists(),
    )
    rows = await _apply(
        session, select(func.count()).select_from(t).where(*where), delete(t).where(*where), dry_run=dry_run
    )
    return Pruned("trades", "closed or cancelled before", cutoff, rows, removed=not dry_run)


async def prune_positions(session: AsyncSession, older_than: datetime, *, dry_run: bool = False) -> Pruned:
    """Remove positions closed before ``older_than``; open positions always stay."""
    cutoff = to_utc("older_than", older_than)
    p = PositionModel
    where = (p.status == "closed", p.closed_at.is_not(None), p.closed_at < cutoff)
    rows = await _apply(
        session, select(func.count()).select_from(p).where(*where), delete(p).where(*where), dry_run=dry_run
    )
    return Pruned("positions", "closed before", cutoff, rows, removed=not dry_run)


async def prune_equity(
    session: AsyncSession, older_than: datetime, *, keep_daily: bool = False, dry_run: bool = False
) -> Pruned:
    """Remove equity snapshots taken before ``older_than``.

    With ``keep_daily`` the last snapshot of each bot, mode and UTC day among them stays: old
    history thinned to the daily closes ``performance()`` reads, instead of deleted.
    """
    cutoff = to_utc("older_than", older_than)
    e = EquitySnapshotModel
    where = [e.timestamp < cutoff]
    rule = "taken before"
    if keep_daily:
        day = period_index(e.timestamp, "1d")
        following = func.lead(day).over(partition_by=(e.bot_id, e.mode), order_by=e.timestamp)
        marked = select(e.id, day.label("day"), following.label("next_day")).where(e.timestamp < cutoff).subquery()
        closes = select(marked.c.id).where(marked.c.next_day.is_(None) | (marked.c.next_day != marked.c.day))
        where.append(e.id.not_in(closes))
        rule = "taken before (keeping each day's last)"
    rows = await _apply(
        session, select(func.count()).select_from(e).where(*where), delete(e).where(*where), dry_run=dry_run
    )
    return Pruned("equity_snapshots", rule, cutoff, rows, removed=not dry_run)


async def prune_reports(session: AsyncSession, older_than: datetime, *, dry_run: bool = False) -> Pruned:
    """Remove stored performance reports calculated before ``older_than``."""
    cutoff = to_utc("older_than", older_than)
    r = PerformanceReportModel
    where = (r.calculated_at < cutoff,)
    rows = await _apply(
        session, select(func.count()).select_from(r).where(*where), delete(r).where(*where), dry_run=dry_run
    )
    return Pruned("performance_reports", "calculated before", cutoff, rows, removed=not dry_run)


async def prune_bots(session: AsyncSession, older_than: datetime, *, dry_run: bool = False) -> Pruned:
    """Remove stopped bots last updated before ``older_than`` (their trades and equity stay: by-value references)."""
    cutoff = to_utc("older_than", older_than)
    b = BotModel
    where = (b.status == "stopped", b.updated_at < cutoff)
    rows = await _apply(
        session, select(func.count()).select_from(b).where(*where), delete(b).where(*where), dry_run=dry_run
    )
    return Pruned("bots", "stopped, last updated before", cutoff, rows, removed=not dry_run)


def _final_orders(cutoff: datetime) -> ColumnElement[bool]:
    o = OrderModel
    return and_(o.status.not_in(OPEN_ORDER_STATUSES), o.updated_at < cutoff)


async def prune_orders(session: AsyncSession, older_than: datetime, *, dry_run: bool = False) -> list[Pruned]:
    """Remove final orders (filled, cancelled, rejected, expired …) last updated before ``older_than``,
    with their fills and status history; open orders (``OPEN_ORDER_STATUSES``) always stay.

    Returns:
        One :class:`Pruned` each for ``fills``, ``order_history`` and ``orders``, in the order they go.
    """
    cutoff = to_utc("older_than", older_than)
    o = OrderModel
    final = select(o.id).where(_final_orders(cutoff))
    done = []
    for model, table in ((FillModel, "fills"), (OrderHistoryModel, "order_history")):
        where = (model.order_id.in_(final),)
        rows = await _apply(
            session, select(func.count()).select_from(model).where(*where), delete(model).where(*where), dry_run=dry_run
        )
        done.append(Pruned(table, "of final orders updated before", cutoff, rows, removed=not dry_run))
    rows = await _apply(
        session,
        select(func.count()).select_from(o).where(_final_orders(cutoff)),
        delete(o).where(_final_orders(cutoff)),
        dry_run=dry_run,
    )
    done.append(Pruned("orders", "final, updated before", cutoff, rows, removed=not dry_run))
    return done


async def prune_proposals(session: AsyncSession, older_than: datetime, *, dry_run: bool = False) -> Pruned:
    """Remove decided proposals (rejected, executed, failed, expired) last updated before ``older_than``;
    pending and approved ones always stay."""
    cutoff = to_utc("older_than", older_than)
    p = ProposalModel
    where = (p.status.not_in(PROPOSAL_MOVES), p.updated_at < cutoff)
    rows = await _apply(
        session, select(func.count()).select_from(p).where(*where), delete(p).where(*where), dry_run=dry_run
    )
    return Pruned("proposals", "decided, updated before", cutoff, rows, removed=not dry_run)


async def prune_decisions(session: AsyncSession, older_than: datetime, *, dry_run: bool = False) -> Pruned:
    """Remove decisions taken before ``older_than``, except those a pending or approved proposal points to.

    A removed decision's trade stays; a decided proposal that pointed to it keeps everything but
    the link (``decision_id`` becomes NULL).
    """
    cutoff = to_utc("older_than", older_than)
    d, p = DecisionModel, ProposalModel
    awaited = select(p.id).where(p.decision_id == d.id, p.status.in_(PROPOSAL_MOVES)).correlate(d)
    where = (d.timestamp < cutoff, ~awaited.exists())
    rows = await _apply(
        session, select(func.count()).select_from(d).where(*where), delete(d).where(*where), dry_run=dry_run
    )
    return Pruned("decisions", "taken before", cutoff, rows, removed=not dry_run)


#: The ages of a :class:`RetentionPolicy`, one per rule.
_AGES = ("events", "bars", "trades", "orders", "positions", "equity", "reports", "bots", "decisions", "proposals")


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each table keeps its rows: one age per table, ``None`` keeps them all.

    Attributes:
        events: system events, by ``created_at``.
        bars: candles of ``bars_timeframe`` (required with ``bars``), by bar start.
        trades: closed trades by ``exit_time``, cancelled ones by ``updated_at``; open trades,
            and trades an order that stays points to, are never pruned.
        orders: final orders by ``updated_at``, with their fills and status history; open
            orders are never pruned.
        positions: closed positions, by ``closed_at``; open positions are never pruned.
        equity: equity snapshots, by ``timestamp``; with ``equity_keep_daily`` each UTC day's
            last snapshot of every bot and mode stays.
        reports: stored performance reports, by ``calculated_at``.
        bots: stopped bots, by ``updated_at``.
        decisions: decisions, by ``timestamp``; those a pending or approved proposal points to
            stay.
        proposals: decided proposals, by ``updated_at``; pending and approved ones stay.
    """

    events: timedelta | None = None
    bars: timedelta | None = None
    bars_timeframe: str | None = None
    trades: timedelta | None = None
    orders: timedelta | None = None
    positions: timedelta | None = None
    equity: timedelta | None = None
    equity_keep_daily: bool = False
    reports: timedelta | None = None
    bots: timedelta | None = None
    decisions: timedelta | None = None
    proposals: timedelta | None = None

    def __post_init__(self) -> None:
        for name in _AGES:
            age = getattr(self, name)
            if age is not None and (not isinstance(age, timedelta) or age < timedelta(0)):
                raise ValidationError(f"{name}: expected a timedelta of at least 0 or None, got {age!r}")
        if self.bars is not None:
            timeframes.check(self.bars_timeframe)

    @property
    def empty(self) -> bool:
        """Whether the policy removes nothing at all."""
        return all(getattr(self, name) is None for name in _AGES)


async def prune(
    session: AsyncSession, policy: RetentionPolicy, *, now: datetime | None = None, dry_run: bool = False
) -> list[Pruned]:
    """Apply every rule of ``policy`` in the session's transaction; ``dry_run`` only counts.

    Returns:
        One :class:`Pruned` per rule the policy sets, in the order the rules run (orders before
        the trades they point to, proposals before the decisions they point to).
    """
    moment = to_optional_utc("now", now) or datetime.now(UTC)
    done: list[Pruned] = []
    if policy.events is not None:
        done.append(await prune_events(session, moment - policy.events, dry_run=dry_run))
    if policy.bars is not None:
        assert policy.bars_timeframe is not None
        done.append(await prune_bars(session, policy.bars_timeframe, moment - policy.bars, dry_run=dry_run))
    orders = None if policy.orders is None else moment - policy.orders
    if orders is not None:  # before trades: a trade stays while an order points to it
        done.extend(await prune_orders(session, orders, dry_run=dry_run))
    if policy.trades is not None:
        done.append(await prune_trades(session, moment - policy.trades, dry_run=dry_run, orders_older_than=orders))
    if policy.positions is not None:
        done.append(await prune_positions(session, moment - policy.positions, dry_run=dry_run))
    if policy.equity is not None:
        done.append(
            await prune_equity(session, moment - policy.equity, keep_daily=policy.equity_keep_daily, dry_run=dry_run)
        )
    if policy.reports is not None:
        done.append(await prune_reports(session, moment - policy.reports, dry_run=dry_run))
    if policy.bots is not None:
        done.append(await prune_bots(session, moment - policy.bots, dry_run=dry_run))
    if policy.proposals is not None:  # before decisions: a decision stays while a proposal awaits
        done.append(await prune_proposals(session, moment - policy.proposals, dry_run=dry_run))
    if policy.decisions is not None:
        done.append(await prune_decisions(session, moment - policy.decisions, dry_run=dry_run))
    return done


async def optimize(engine: AsyncEngine) -> list[str]:
    """Reclaim space and refresh the planner's statistics; returns the statements run.

    SQLite: ``VACUUM`` (rewrites the file without free pages), ``ANALYZE``, ``PRAGMA optimize``
    and a checkpoint that empties the write-ahead log. PostgreSQL: ``ANALYZE`` (autovacuum
    reclaims space there).
    """
    async with engine.connect() as conn:
        return await operations(engine.url).optimize(conn)
