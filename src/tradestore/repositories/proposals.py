"""``ProposalRepository``: trades a bot proposes and a person approves, moved by one state table.

Every move is one conditional ``UPDATE … WHERE id = :id AND status IN (allowed sources)``: of
two callers racing on one proposal (two reviewers, or a reviewer and :meth:`expire_due`)
exactly one wins, and the other gets an :class:`InvalidTransitionError` naming the proposal,
the state it found and the state it asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, Update, bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import ColumnElement

from tradestore.domain import MODES, PROPOSAL_MOVES, PROPOSAL_STATUSES, Proposal
from tradestore.domain.common import _positive
from tradestore.errors import InvalidTransitionError, NotFoundError, ValidationError
from tradestore.models import ProposalModel
from tradestore.repositories.base import Repository
from tradestore.values import to_count, to_decimal, to_id, to_optional_utc, to_text

TABLE: Table = ProposalModel.__table__  # type: ignore[assignment]
_FIELDS = tuple(f.name for f in dataclasses.fields(Proposal))
_INSERT = TABLE.insert().returning(TABLE.c.id)
#: For each target state, the states a proposal may move to it from (:data:`PROPOSAL_MOVES` turned round).
SOURCES: dict[str, tuple[str, ...]] = {
    target: tuple(source for source, targets in PROPOSAL_MOVES.items() if target in targets)
    for target in PROPOSAL_STATUSES
    if any(target in targets for targets in PROPOSAL_MOVES.values())
}
#: Moves a reviewer makes: refused once ``expires_at`` has passed, even before ``expire_due`` runs.
REVIEWS = ("approved", "rejected")


def _from_row(row: Mapping[Any, Any]) -> Proposal:
    return Proposal(**{name: row[name] for name in _FIELDS})


def _reason(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise ValidationError(f"{field}: expected a non-empty reason without NUL bytes, got {value!r}")
    return value


class ProposalRepository(Repository):
    """Proposals of one session. In every filter, ``None`` means "no filter"."""

    async def create(self, proposal: Proposal) -> int:
        """Store a new, pending proposal and return its database id.

        A proposal without an exchange gets the manager's default exchange.

        Raises:
            ValidationError: not a :class:`Proposal`, or not pending (other states are reached by moves).
            NotFoundError: ``decision_id`` or ``trade_id`` names no row.
        """
        if not isinstance(proposal, Proposal):
            raise ValidationError(f"proposal: expected a Proposal, got {proposal!r}")
        proposal = dataclasses.replace(proposal)  # built anew: attributes changed since are checked again
        if proposal.status != "pending":
            raise ValidationError(f"status: a new proposal is pending, got {proposal.status!r}")
        now = datetime.now(UTC)
        values = {name: getattr(proposal, name) for name in _FIELDS if name != "id"}
        values["exchange"] = self._exchange(proposal.exchange)
        values["created_at"] = proposal.created_at or now
        values["updated_at"] = now
        try:
            return int(await self._scalar(_INSERT, values))
        except IntegrityError as exc:
            raise NotFoundError(
                f"decision_id/trade_id: no such decision or trade (decision_id={proposal.decision_id!r}, "
                f"trade_id={proposal.trade_id!r})"
            ) from exc

    async def approve(self, proposal_id: int, *, reviewer: str | None = None) -> Proposal:
        """pending → approved, unless ``expires_at`` has passed.

        Raises:
            InvalidTransitionError: the proposal is not pending, or has expired (marked or not).
            NotFoundError: no proposal has this id.
        """
        fields = {"reviewer": None if reviewer is None else to_text("reviewer", reviewer)}
        return await self._move(proposal_id, "approved", fields)

    async def reject(self, proposal_id: int, *, reason: str, reviewer: str | None = None) -> Proposal:
        """pending → rejected with a reason, unless ``expires_at`` has passed.

        Raises:
            InvalidTransitionError: the proposal is not pending, or has expired (marked or not).
            NotFoundError: no proposal has this id.
        """
        fields = {
            "rejection_reason": _reason("reason", reason),
            "reviewer": None if reviewer is None else to_text("reviewer", reviewer),
        }
        return await self._move(proposal_id, "rejected", fields)

    async def mark_executed(
        self, proposal_id: int, *, trade_id: int, execution_price: Decimal | int | str | float
    ) -> Proposal:
        """approved → executed, with the resulting trade and the price it was executed at.

        Raises:
            InvalidTransitionError: the proposal is not approved.
            NotFoundError: no proposal has this id, or no trade has ``trade_id``.
        """
        fields = {
            "trade_id": to_id("trade_id", trade_id),
            "execution_price": _positive("execution_price", to_decimal("execution_price", execution_price)),
        }
        try:
            return await self._move(proposal_id, "executed", fields)
        except IntegrityError as exc:
            raise NotFoundError(f"trade_id: no trade with id {trade_id!r}") from exc

    async def mark_failed(self, proposal_id: int, *, reason: str) -> Proposal:
        """approved → failed, with the reason (the exchange refused the order, …).

        Raises:
            InvalidTransitionError: the proposal is not approved.
            NotFoundError: no proposal has this id.
        """
        return await self._move(proposal_id, "failed", {"failure_reason": _reason("reason", reason)})

    async def expire_due(self, now: datetime | None = None) -> int:
        """Mark expired every pending or approved proposal whose ``expires_at`` is at or before ``now``.

        Returns:
            How many proposals expired.
        """
        moment = to_optional_utc("now", now) or datetime.now(UTC)
        p = TABLE.c
        statement = (
            update(TABLE)
            .where(p.status.in_(SOURCES["expired"]), p.expires_at <= moment)
            .values(status="expired", updated_at=datetime.now(UTC))
            .returning(p.id)
        )
        return len((await self._execute(statement)).all())

    async def get(self, proposal_id: int) -> Proposal | None:
        """The proposal with database id ``proposal_id``, or ``None``."""
        row = await self._one_or_none(select(TABLE).where(TABLE.c.id == to_id("proposal_id", proposal_id)))
        return None if row is None else _from_row(row._mapping)

    async def get_pending(self, *, bot_id: str | None = None, mode: str | None = None) -> list[Proposal]:
        """The proposals awaiting review, oldest first; those past ``expires_at`` are not listed."""
        p = TABLE.c
        now = datetime.now(UTC)
        where = [*_filters(bot_id, mode), p.status == "pending", or_(p.expires_at.is_(None), p.expires_at > now)]
        statement = select(TABLE).where(*where).order_by(p.created_at, p.id)
        return [_from_row(row._mapping) for row in await self._execute(statement)]

    async def find(
        self,
        *,
        bot_id: str | None = None,
        mode: str | None = None,
        symbol: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Proposal]:
        """The ``limit`` newest proposals matching the filters (``since``/``until`` on ``created_at``), newest first."""
        p = TABLE.c
        where = _filters(bot_id, mode)
        if symbol is not None:
            where.append(p.symbol == to_text("symbol", symbol))
        if status is not None:
            where.append(p.status == to_text("status", status, choices=PROPOSAL_STATUSES))
        if (lo := to_optional_utc("since", since)) is not None:
            where.append(p.created_at >= lo)
        if (hi := to_optional_utc("until", until)) is not None:
            where.append(p.created_at <= hi)
        statement = (
            select(TABLE).where(*where).order_by(p.created_at.desc(), p.id.desc()).limit(to_count("limit", limit))
        )
        return [_from_row(row._mapping) for row in await self._execute(statement)]

    async def _move(self, proposal_id: int, target: str, fields: dict[str, Any]) -> Proposal:
        """Apply one move of the state table as one conditional UPDATE; explain a refusal."""
        pid = to_id("proposal_id", proposal_id)
        now = datetime.now(UTC)
        params = {**fields, "pid": pid, "now": now}
        if target in REVIEWS:
            params["deadline"] = now
        row = await self._one_or_none(_MOVES[target], params)
        if row is not None:
            return _from_row(row._mapping)
        found = await self._one_or_none(_STATE, {"pid": pid})
        if found is None:
            raise NotFoundError(f"proposal_id: no proposal with id {proposal_id!r}")
        status, expires_at = found
        if status in SOURCES[target]:  # only the deadline stood in the way: expired, though not yet marked
            raise InvalidTransitionError(
                f"proposal {pid}: expired at {expires_at.isoformat()}; cannot move expired → {target}"
            )
        raise InvalidTransitionError(f"proposal {pid}: cannot move {status} → {target}")


def _move_statement(target: str) -> Update:
    """``UPDATE … SET status = target … WHERE id = :pid AND status IN (its sources)``, built once.

    A reviewer's move also needs ``expires_at`` not passed (``:deadline``); the columns the
    move sets (its fields) come as parameters of the same names.
    """
    p = TABLE.c
    where: list[ColumnElement[bool]] = [p.id == bindparam("pid"), p.status.in_(SOURCES[target])]
    values: dict[str, Any] = {"status": target, "updated_at": bindparam("now", type_=p.updated_at.type)}
    values |= {name: bindparam(name, type_=p[name].type) for name in _SETS[target]}
    if target in REVIEWS:
        where.append(or_(p.expires_at.is_(None), p.expires_at > bindparam("deadline", type_=p.expires_at.type)))
        values["reviewed_at"] = bindparam("now", type_=p.reviewed_at.type)
    return update(TABLE).where(*where).values(values).returning(*TABLE.c)


#: The columns each move sets besides status and times.
_SETS = {
    "approved": ("reviewer",),
    "rejected": ("rejection_reason", "reviewer"),
    "executed": ("trade_id", "execution_price"),
    "failed": ("failure_reason",),
}
_MOVES: dict[str, Update] = {target: _move_statement(target) for target in _SETS}
_STATE = select(TABLE.c.status, TABLE.c.expires_at).where(TABLE.c.id == bindparam("pid"))


def _filters(bot_id: str | None, mode: str | None) -> list[ColumnElement[bool]]:
    p = TABLE.c
    where: list[ColumnElement[bool]] = []
    if bot_id is not None:
        where.append(p.bot_id == to_text("bot_id", bot_id))
    if mode is not None:
        where.append(p.mode == to_text("mode", mode, choices=MODES))
    return where
