"""``DecisionRepository``: the decision journal, its links to trades, and per-strategy performance."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

from sqlalchemy import Table, bindparam, case, exists, func, literal_column, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import ColumnElement

from tradestore.dialects import backend, dec_sign, dec_sub, dec_sum
from tradestore.domain import DECISION_ACTIONS, MODES, Decision, StrategyPerformance
from tradestore.errors import DuplicateError, NotFoundError, ValidationError
from tradestore.models import DecisionModel, TradeModel
from tradestore.repositories.base import Repository
from tradestore.repositories.content import content_key
from tradestore.values import to_count, to_id, to_optional_utc, to_text

TABLE: Table = DecisionModel.__table__  # type: ignore[assignment]
_TRADES: Table = TradeModel.__table__  # type: ignore[assignment]
_FIELDS = tuple(f.name for f in dataclasses.fields(Decision))
#: Fields a decision's content key leaves out (see :mod:`tradestore.repositories.content`).
UNKEYED = ("id", "created_at", "trade_id")
_KEYED = tuple(name for name in _FIELDS if name not in UNKEYED)
#: Columns written, in the order of the bulk path's rows.
COLUMNS = tuple(c.name for c in TABLE.c if c.name != "id")
_INSERT = TABLE.insert().returning(TABLE.c.id)
#: Link a decision to a trade, only if that trade exists (so a missing one writes nothing).
_LINK = (
    update(TABLE)
    .where(TABLE.c.id == bindparam("did"), exists().where(_TRADES.c.id == bindparam("tid")))
    .values(trade_id=bindparam("tid"))
    .returning(TABLE.c.id)
)
_GET_ID = select(TABLE.c.id).where(TABLE.c.id == bindparam("did"))
_RATIO = Context(prec=60)


def decision_key(values: Mapping[str, Any]) -> str:
    """The content key of a decision's field values, exchange set (see :mod:`tradestore.repositories.content`)."""
    return content_key("decision", {name: values[name] for name in _KEYED})


def _from_row(row: Mapping[Any, Any]) -> Decision:
    return Decision(**{name: row[name] for name in _FIELDS})


def _percent(part: int, whole: int) -> Decimal:
    if not whole:
        return Decimal(0)
    return _RATIO.divide(Decimal(part * 100), Decimal(whole)).quantize(
        Decimal("0.00000001"), rounding=ROUND_HALF_UP, context=_RATIO
    )


def _violation(exc: IntegrityError, what: str, trade_id: int | None = None) -> Exception:
    """The typed error for a failed insert: a duplicate content key, or a trade that does not exist."""
    text = str(exc.orig).lower()
    if "foreign key" in text or "fk_decisions_trade_id" in text:
        named = "" if trade_id is None else f" {trade_id}"
        return NotFoundError(f"trade_id: no trade with id{named} for {what}")
    return DuplicateError(f"{what} is already recorded (same content key)", exc.orig)


class DecisionRepository(Repository):
    """Decisions of one session. In every filter, ``None`` means "no filter"."""

    def _values(self, decision: Decision, now: datetime) -> dict[str, Any]:
        if not isinstance(decision, Decision):
            raise ValidationError(f"decision: expected a Decision, got {decision!r}")
        values = {name: getattr(decision, name) for name in _FIELDS if name != "id"}
        if values["exchange"] is None:
            values["exchange"] = self.exchange
        values["created_at"] = decision.created_at or now
        values["content_key"] = decision_key(values)
        return values

    async def record(self, decision: Decision) -> int:
        """Store one decision and return its database id.

        A decision without an exchange gets the manager's default exchange.

        Raises:
            ValidationError: ``decision`` is not a :class:`Decision`.
            DuplicateError: the same decision (same content key) is already stored.
            NotFoundError: ``decision.trade_id`` names no trade.
        """
        if isinstance(decision, Decision):  # built anew: attributes changed since are checked again
            decision = dataclasses.replace(decision)
        values = self._values(decision, datetime.now(UTC))
        try:
            return int(await self._scalar(_INSERT, values))
        except IntegrityError as exc:
            what = f"decision of {values['bot_id']} on {values['symbol']} at {values['timestamp'].isoformat()}"
            raise _violation(exc, what, values["trade_id"]) from exc

    async def record_many(self, decisions: Iterable[Decision]) -> int:
        """Store many decisions through the bulk path: all of them, or on error none.

        Returns:
            The number of decisions stored.

        Raises:
            ValidationError: an item is not a :class:`Decision`.
            DuplicateError: a decision is in the input twice, or already stored.
            NotFoundError: a ``trade_id`` names no trade.
        """
        now = datetime.now(UTC)
        rows = [self._values(decision, now) for decision in decisions]
        seen: dict[str, int] = {}
        for index, values in enumerate(rows):
            first = seen.setdefault(values["content_key"], index)
            if first != index:
                raise DuplicateError(f"decisions[{index}]: the same decision as decisions[{first}]")
        if not rows:
            return 0
        conn = await self.session.connection()
        try:
            await backend(conn.dialect).write_rows(conn, TABLE, rows)
        except IntegrityError as exc:
            error = _violation(exc, "one of the decisions")
            if isinstance(error, NotFoundError):  # which one: the write was undone, the session goes on
                error = await self._unknown_trade(rows) or error
            raise error from exc
        return len(rows)

    async def _unknown_trade(self, rows: list[dict[str, Any]]) -> NotFoundError | None:
        """The error naming the first of ``rows`` whose trade is not stored, if one is not."""
        wanted = {row["trade_id"] for row in rows if row["trade_id"] is not None}
        stored = set((await self.session.execute(select(_TRADES.c.id).where(_TRADES.c.id.in_(wanted)))).scalars())
        for index, row in enumerate(rows):
            if row["trade_id"] is not None and row["trade_id"] not in stored:
                return NotFoundError(f"decisions[{index}].trade_id: no trade with id {row['trade_id']}")
        return None

    async def link_trade(self, decision_id: int, trade_id: int) -> None:
        """Attribute the trade with database id ``trade_id`` to a decision.

        Raises:
            NotFoundError: no decision has ``decision_id``, or no trade has ``trade_id``.
        """
        params = {"did": to_id("decision_id", decision_id), "tid": to_id("trade_id", trade_id)}
        if await self._scalar(_LINK, params) is None:
            if await self._scalar(_GET_ID, params) is None:
                raise NotFoundError(f"decision_id: no decision with id {decision_id!r}")
            raise NotFoundError(f"trade_id: no trade with id {trade_id!r}")

    async def get(self, decision_id: int) -> Decision | None:
        """The decision with database id ``decision_id``, or ``None``."""
        row = await self._one_or_none(select(TABLE).where(TABLE.c.id == to_id("decision_id", decision_id)))
        return None if row is None else _from_row(row._mapping)

    async def find(
        self,
        *,
        bot_id: str | None = None,
        mode: str | None = None,
        symbol: str | None = None,
        action: str | None = None,
        strategy: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Decision]:
        """The ``limit`` newest decisions matching the filters (``since <= timestamp <= until``), newest first."""
        where = _filters(bot_id=bot_id, mode=mode, since=since, until=until)
        d = TABLE.c
        if symbol is not None:
            where.append(d.symbol == to_text("symbol", symbol))
        if action is not None:
            lowered = action.lower() if isinstance(action, str) else action
            where.append(d.action == to_text("action", lowered, choices=DECISION_ACTIONS))
        if strategy is not None:
            where.append(d.strategy == to_text("strategy", strategy))
        statement = (
            select(TABLE).where(*where).order_by(d.timestamp.desc(), d.id.desc()).limit(to_count("limit", limit))
        )
        return [_from_row(row._mapping) for row in await self._execute(statement)]

    async def get_decisions_of_trade(self, trade_id: int) -> list[Decision]:
        """The decisions attributed to the trade with database id ``trade_id``, oldest first."""
        d = TABLE.c
        statement = select(TABLE).where(d.trade_id == to_id("trade_id", trade_id)).order_by(d.timestamp, d.id)
        return [_from_row(row._mapping) for row in await self._execute(statement)]

    async def strategy_performance(
        self,
        *,
        bot_id: str | None = None,
        mode: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[StrategyPerformance]:
        """Per strategy: its decisions and the closed trades they led to, computed in the database.

        The filters select decisions (``since``/``until`` on their timestamp). A trade counts
        once per strategy however many of its decisions led to it, and only when closed (status
        ``closed``, ``realized_pnl`` set; cancelled trades are left out). See :class:`StrategyPerformance` for the
        figures. Sorted by net P&L, best first, then by strategy name (``None`` last).
        """
        where = _filters(bot_id=bot_id, mode=mode, since=since, until=until)
        d, t = TABLE.c, _TRADES.c
        counts: list[ColumnElement[Any]] = [func.count(), func.count(d.trade_id)]
        counts += [func.sum(case((d.action == action, 1), else_=0)) for action in DECISION_ACTIONS]
        decided: list[Any] = list(await self._execute(select(d.strategy, *counts).where(*where).group_by(d.strategy)))
        linked = select(d.strategy, d.trade_id).where(*where, d.trade_id.is_not(None)).distinct().subquery()
        net = dec_sub(t.realized_pnl, t.fee)
        sign = dec_sign(net)
        one: ColumnElement[int] = literal_column("1")
        traded: list[Any] = list(
            await self._execute(
                select(
                    linked.c.strategy,
                    func.count(),
                    func.sum(case((sign > 0, one), else_=0)),
                    func.sum(case((sign < 0, one), else_=0)),
                    dec_sum(net),
                )
                .select_from(linked.join(_TRADES, t.id == linked.c.trade_id))
                .where(t.status == "closed", t.realized_pnl.is_not(None))
                .group_by(linked.c.strategy)
            )
        )
        closed = {row[0]: (int(row[1]), int(row[2] or 0), int(row[3] or 0), row[4]) for row in traded}
        result = []
        for strategy, total, with_trade, *by_action in decided:
            n, wins, losses, net_pnl = closed.get(strategy, (0, 0, 0, None))
            result.append(
                StrategyPerformance(
                    strategy=strategy,
                    decisions=int(total),
                    by_action={a: int(c or 0) for a, c in zip(DECISION_ACTIONS, by_action, strict=True)},
                    with_trade=int(with_trade),
                    closed_trades=int(n),
                    wins=wins,
                    losses=losses,
                    win_rate=_percent(wins, int(n)),
                    net_pnl=Decimal(0) if net_pnl is None else Decimal(net_pnl),
                )
            )
        result.sort(key=lambda s: (s.strategy is None, s.strategy or ""))
        result.sort(key=lambda s: s.net_pnl, reverse=True)
        return result


def _filters(
    *, bot_id: str | None, mode: str | None, since: datetime | None, until: datetime | None
) -> list[ColumnElement[bool]]:
    d = TABLE.c
    where: list[ColumnElement[bool]] = []
    if bot_id is not None:
        where.append(d.bot_id == to_text("bot_id", bot_id))
    if mode is not None:
        where.append(d.mode == to_text("mode", mode, choices=MODES))
    if (lo := to_optional_utc("since", since)) is not None:
        where.append(d.timestamp >= lo)
    if (hi := to_optional_utc("until", until)) is not None:
        where.append(d.timestamp <= hi)
    return where
