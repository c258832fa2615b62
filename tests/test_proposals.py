"""ProposalRepository on SQLite and PostgreSQL: the approval workflow and its races."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from factories import trade
from tradestore import DatabaseManager, Decision, DecisionRepository, Proposal, ProposalRepository, TradeRepository
from tradestore.domain import PROPOSAL_MOVES, PROPOSAL_STATUSES
from tradestore.errors import InvalidTransitionError, NotFoundError, ValidationError


def proposal(**fields: Any) -> Proposal:
    """A pending proposal to buy 10 SOL at 150."""
    values: dict[str, Any] = {"bot_id": "ai-bot", "symbol": "SOL", "side": "buy", "quantity": "10", "price": "150"}
    values.update(fields)
    return Proposal(**values)


async def create(db: DatabaseManager, **fields: Any) -> int:
    async with db.get_session() as session:
        return await ProposalRepository(session).create(proposal(**fields))


async def test_create_and_read_back(db: DatabaseManager) -> None:
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    async with db.get_session() as session:
        decision_id = await DecisionRepository(session).record(
            Decision("ai-bot", "SOL", "buy", datetime.now(UTC), rationale="Breakout confirmation...")
        )
        repo = ProposalRepository(session)
        pid = await repo.create(
            proposal(
                stop_loss="140.5", take_profit="170", leverage=2, confidence=0.85, decision_id=decision_id,
                rationale="Breakout confirmation...", expires_at=expires, mode="paper",
            )
        )  # fmt: skip
        got = await repo.get(pid)
        assert await repo.get(pid + 100) is None
    assert got is not None and got.status == "pending" and got.exchange == "binance"
    assert (got.quantity, got.price, got.stop_loss, got.take_profit, got.leverage, got.confidence) == (
        Decimal("10"), Decimal("150"), Decimal("140.5"), Decimal("170"), Decimal(2), Decimal("0.85"),
    )  # fmt: skip
    assert got.decision_id == decision_id and got.expires_at == expires and got.mode == "paper"
    assert got.created_at is not None and got.updated_at is not None and got.reviewed_at is None


async def test_create_refuses_other_states_and_unknown_links(db: DatabaseManager) -> None:
    with pytest.raises(ValidationError, match="status"):
        await create(db, status="approved")
    with pytest.raises(NotFoundError, match="decision_id"):
        await create(db, decision_id=12345)
    async with db.get_session() as session:
        assert await ProposalRepository(session).find() == []


async def test_the_happy_paths(db: DatabaseManager) -> None:
    first, second, third = await create(db), await create(db), await create(db)
    async with db.get_session() as session:
        trade_id = await TradeRepository(session).insert(trade(1))
        repo = ProposalRepository(session)
        approved = await repo.approve(first, reviewer="alice")
        assert (approved.status, approved.reviewer) == ("approved", "alice") and approved.reviewed_at is not None
        executed = await repo.mark_executed(first, trade_id=trade_id, execution_price="150.25")
        assert (executed.status, executed.trade_id, executed.execution_price) == (
            "executed",
            trade_id,
            Decimal("150.25"),
        )
        rejected = await repo.reject(second, reason="too risky", reviewer="bob")
        assert (rejected.status, rejected.rejection_reason, rejected.reviewer) == ("rejected", "too risky", "bob")
        await repo.approve(third)
        failed = await repo.mark_failed(third, reason="insufficient margin")
        assert (failed.status, failed.failure_reason) == ("failed", "insufficient margin")
        assert [p.id for p in await repo.find(status="executed")] == [first]
        assert [p.id for p in await repo.find()] == [third, second, first]  # newest first


@pytest.mark.parametrize("start", ["approved", "rejected", "executed", "failed", "expired"])
async def test_every_move_the_table_does_not_allow_is_refused(db: DatabaseManager, start: str) -> None:
    pid = await create(db, expires_at=datetime.now(UTC) + timedelta(hours=1))
    async with db.get_session() as session:
        trade_id = await TradeRepository(session).insert(trade(1))
        repo = ProposalRepository(session)
        path = {"approved": ["approved"], "rejected": ["rejected"], "executed": ["approved", "executed"]}
        path |= {"failed": ["approved", "failed"], "expired": ["expired"]}
        moves: dict[str, Callable[[], Awaitable[Any]]] = {
            "approved": lambda: repo.approve(pid),
            "rejected": lambda: repo.reject(pid, reason="no"),
            "executed": lambda: repo.mark_executed(pid, trade_id=trade_id, execution_price=1),
            "failed": lambda: repo.mark_failed(pid, reason="no"),
            "expired": lambda: repo.expire_due(datetime.now(UTC) + timedelta(hours=2)),
        }
        for step in path[start]:
            await moves[step]()
        before = await repo.get(pid)
        assert before is not None and before.status == start
        for target in PROPOSAL_STATUSES:
            if target == "pending" or target in PROPOSAL_MOVES.get(start, ()):
                continue
            if target == "expired":
                assert await repo.expire_due(datetime.now(UTC) + timedelta(hours=2)) == 0
                continue
            with pytest.raises(InvalidTransitionError, match=f"proposal {pid}: cannot move {start} → {target}"):
                await moves[target]()
        assert await repo.get(pid) == before  # nothing written


async def test_approving_an_expired_but_unmarked_proposal_fails_as_expired(db: DatabaseManager) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    pid = await create(db, expires_at=past)
    live = await create(db, expires_at=datetime.now(UTC) + timedelta(hours=1))
    async with db.get_session() as session:
        repo = ProposalRepository(session)
        assert [p.id for p in await repo.get_pending()] == [live]  # the expired one is no longer awaiting review
        with pytest.raises(
            InvalidTransitionError, match=f"proposal {pid}: expired at .*cannot move expired → approved"
        ):
            await repo.approve(pid)
        with pytest.raises(InvalidTransitionError, match="expired → rejected"):
            await repo.reject(pid, reason="late")
        got = await repo.get(pid)
        assert got is not None and got.status == "pending"  # not marked by the refusal
        assert await repo.expire_due() == 1
        got = await repo.get(pid)
        assert got is not None and got.status == "expired"
        with pytest.raises(InvalidTransitionError, match="cannot move expired → approved"):
            await repo.approve(pid)


async def test_expire_due_takes_pending_and_approved_past_their_time(db: DatabaseManager) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    due_pending = await create(db, expires_at=now - timedelta(minutes=1))
    due_approved = await create(db, expires_at=now + timedelta(minutes=5))
    exactly_now = await create(db, expires_at=now)
    later = await create(db, expires_at=now + timedelta(minutes=1))
    never = await create(db)
    async with db.get_session() as session:
        repo = ProposalRepository(session)
        await repo.approve(due_approved)
        assert await repo.expire_due(now) == 2
        assert await repo.expire_due(now + timedelta(minutes=5)) == 2
        found = [await repo.get(pid) for pid in (due_pending, due_approved, exactly_now, later, never)]
        statuses = {p.id: p.status for p in found if p is not None}
    assert statuses == {
        due_pending: "expired", exactly_now: "expired", due_approved: "expired", later: "expired", never: "pending",
    }  # fmt: skip


async def test_unknown_proposals_and_bad_arguments(db: DatabaseManager) -> None:
    pid = await create(db)
    async with db.get_session() as session:
        repo = ProposalRepository(session)
        with pytest.raises(NotFoundError, match="proposal_id"):
            await repo.approve(999)
        with pytest.raises(ValidationError, match="reason"):
            await repo.reject(pid, reason="  ")
        with pytest.raises(ValidationError, match="proposal_id"):
            await repo.approve("1")  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="status"):
            await repo.find(status="done")
        await repo.approve(pid)
        with pytest.raises(ValidationError, match="execution_price"):  # a price is never 0 or below
            await repo.mark_executed(pid, trade_id=1, execution_price="-5")
    for field in ("price", "stop_loss", "take_profit", "execution_price"):
        zero: dict[str, Any] = {field: 0}
        with pytest.raises(ValidationError, match=field):
            Proposal("bot", "BTCUSDT", "buy", "1", **zero)


async def test_get_pending_filters_oldest_first(db: DatabaseManager) -> None:
    a = await create(db)
    b = await create(db, bot_id="other")
    c = await create(db, mode="paper")
    async with db.get_session() as session:
        repo = ProposalRepository(session)
        assert [p.id for p in await repo.get_pending()] == [a, b, c]
        assert [p.id for p in await repo.get_pending(bot_id="ai-bot")] == [a, c]
        assert [p.id for p in await repo.get_pending(bot_id="ai-bot", mode="paper")] == [c]


def test_proposal_validation_names_the_field() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"side": "long"}, "side"),
        ({"quantity": 0}, "quantity"),
        ({"leverage": "-2"}, "leverage"),
        ({"confidence": 2}, "confidence"),
        ({"status": "done"}, "status"),
        ({"expires_at": "soon"}, "expires_at"),
    ]
    for fields, named in cases:
        with pytest.raises(ValidationError, match=named):
            proposal(**fields)


# --- races: separate connections on a database file of their own ---------------------------------

ROUNDS = 8


async def _race(url: str, first: Callable[[ProposalRepository, int], Awaitable[Any]],
                second: Callable[[ProposalRepository, int], Awaitable[Any]], **fields: Any) -> None:  # fmt: skip
    """Run ``first`` and ``second`` on one proposal at once, each in its own session; ROUNDS times."""
    async with DatabaseManager(url) as db:
        for _ in range(ROUNDS):
            pid = await create(db, **fields)

            outcomes = await asyncio.gather(act(db, first, pid), act(db, second, pid), return_exceptions=True)
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            assert len(errors) == 1, outcomes
            assert isinstance(errors[0], InvalidTransitionError), errors[0]
            winner = next(o for o in outcomes if not isinstance(o, BaseException))
            async with db.get_session() as session:
                stored = await ProposalRepository(session).get(pid)
            assert stored is not None
            final = winner.status if isinstance(winner, Proposal) else "expired"
            assert stored.status == final
            assert f"proposal {pid}: cannot move {final} → " in str(errors[0])


async def act(db: DatabaseManager, move: Callable[[ProposalRepository, int], Awaitable[Any]], pid: int) -> Any:
    async with db.get_session() as session:
        return await move(ProposalRepository(session), pid)


@pytest.fixture
def racing_url(fresh_url: str) -> str:
    """A database of its own (SQLite: a file), with the schema, that several connections share."""

    async def prepare() -> None:
        async with DatabaseManager(fresh_url) as db:
            await db.create_all()

    asyncio.run(prepare())
    return fresh_url


def test_two_reviewers_at_once_one_wins(racing_url: str) -> None:
    asyncio.run(
        _race(
            racing_url,
            lambda repo, pid: repo.approve(pid, reviewer="alice"),
            lambda repo, pid: repo.reject(pid, reason="no", reviewer="bob"),
        )
    )


def test_two_approvals_at_once_one_wins(racing_url: str) -> None:
    asyncio.run(_race(racing_url, lambda repo, pid: repo.approve(pid), lambda repo, pid: repo.approve(pid)))


async def _expire_one(repo: ProposalRepository, pid: int) -> int:
    count = await repo.expire_due(datetime.now(UTC) + timedelta(hours=2))
    if count == 0:  # the reviewer won: expire_due found nothing to expire; report it as the loser would
        found = await repo.get(pid)
        raise InvalidTransitionError(f"proposal {pid}: cannot move {found.status if found else None} → expired")
    return count


def test_a_reviewer_and_expire_due_at_once_one_wins(racing_url: str) -> None:
    asyncio.run(
        _race(
            racing_url,
            lambda repo, pid: repo.reject(pid, reason="no"),  # rejected is final: expire_due then finds nothing
            _expire_one,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
    )


async def test_marking_executed_with_an_unknown_trade_writes_nothing(db: DatabaseManager) -> None:
    pid = await create(db)
    async with db.get_session() as session:
        await ProposalRepository(session).approve(pid)
    with pytest.raises(NotFoundError, match="trade_id: no trade with id 4242"):
        async with db.get_session() as session:
            await ProposalRepository(session).mark_executed(pid, trade_id=4242, execution_price="1")
    async with db.get_session() as session:
        stored = await ProposalRepository(session).get(pid)
    assert stored is not None and stored.status == "approved" and stored.trade_id is None


async def test_create_checks_a_proposal_changed_after_construction(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = ProposalRepository(session)
        for name, value in (("quantity", Decimal(-1)), ("side", "long"), ("expires_at", "tomorrow")):
            changed = proposal()
            setattr(changed, name, value)
            with pytest.raises(ValidationError, match=name):
                await repo.create(changed)
        assert await repo.find() == []
