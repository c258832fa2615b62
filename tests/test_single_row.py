"""The single-row path (``Repository._execute`` and siblings) against ``session.execute``, on both backends."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from factories import position, trade
from tradestore import DatabaseManager, PositionRepository, SystemEventRepository, TradeRepository
from tradestore.dialects import single_row
from tradestore.errors import DuplicateError, NotFoundError
from tradestore.models import TradeModel
from tradestore.repositories.base import Repository

TRADES = cast(Table, TradeModel.__table__)


def _row(n: int, **fields: Any) -> dict[str, Any]:
    now = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    values: dict[str, Any] = {
        "trade_id": f"R{n}",
        "symbol": "BTCUSDT",
        "exchange": "binance",
        "side": "long",
        "action": "open",
        "entry_price": Decimal("50123.456789012345678901"),
        "quantity": Decimal("0.00000001"),
        "entry_time": now,
        "leverage": Decimal(1),
        "fee": Decimal("-0.5"),
        "mode": "live",
        "metadata": {"price": "1.5", "n": [1, 2]},
        "created_at": now,
        "updated_at": now,
    }
    return values | fields


async def test_rows_are_those_session_execute_returns(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = Repository(session)
        ids = [await repo._scalar(insert(TRADES).values(_row(n)).returning(TRADES.c.id)) for n in range(3)]
        statement = select(TRADES).where(TRADES.c.id.in_(ids)).order_by(TRADES.c.id)
        fast = (await repo._execute(statement)).all()
        slow = (await session.execute(statement)).all()
    assert isinstance(fast[0].entry_price, Decimal) and fast[0].entry_time.tzinfo is UTC
    assert [tuple(r) for r in fast] == [tuple(r) for r in slow]
    assert [r._mapping["metadata"] for r in fast] == [{"price": "1.5", "n": [1, 2]}] * 3
    assert fast[0]._fields == slow[0]._fields


async def test_statements_built_anew_take_their_own_values(db: DatabaseManager) -> None:
    """One compiled form per shape: the literal values of each new statement are its parameters."""
    async with db.get_session() as session:
        repo = Repository(session)
        for n in range(3):
            await repo._execute(insert(TRADES).values(_row(n, fee=Decimal(n))))
        fees = [await repo._scalar(select(TRADES.c.fee).where(TRADES.c.trade_id == f"R{n}")) for n in range(3)]
        reused = select(TRADES.c.trade_id).where(TRADES.c.fee == bindparam("fee"))
        found = [await repo._scalar(reused, {"fee": Decimal(n)}) for n in (2, 0)]
    assert fees == [Decimal(0), Decimal(1), Decimal(2)]
    assert found == ["R2", "R0"]


async def test_rowcount_in_lists_and_execute_time_values(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = Repository(session)
        for n in range(4):
            await repo._execute(insert(TRADES), _row(n))
        changed = await repo._execute(
            update(TRADES).where(TRADES.c.trade_id.in_(["R1", "R3", "missing"])).values(action="close")
        )
        closed = await repo._scalar(select(func.count()).select_from(TRADES).where(TRADES.c.action == "close"))
        nothing = await repo._execute(update(TRADES).where(TRADES.c.id == -1).values(action="close"))
    assert changed.rowcount == 2 and closed == 2 and nothing.rowcount == 0  # type: ignore[attr-defined]


async def test_orm_entities_and_text_go_through_the_session(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = Repository(session)
        await repo._execute(insert(TRADES).values(_row(1)))
        model = await repo._scalar(select(TradeModel))
        one = await repo._scalar(text("SELECT 1"))
    assert isinstance(model, TradeModel) and model.trade_id == "R1" and one == 1


async def test_unique_violation_is_a_duplicate_error(db: DatabaseManager) -> None:
    with pytest.raises(DuplicateError) as caught:
        async with db.get_session() as session:
            repo = Repository(session)
            await repo._execute(insert(TRADES).values(_row(1)))
            await repo._execute(insert(TRADES).values(_row(1)))
    assert isinstance(caught.value, IntegrityError) and "trades" in str(caught.value)
    assert caught.value.__cause__ is not None
    async with db.get_session() as session:
        assert await Repository(session)._scalar(select(func.count()).select_from(TRADES)) == 0


async def test_other_database_errors_are_sqlalchemys(db: DatabaseManager) -> None:
    with pytest.raises(IntegrityError) as caught:
        async with db.get_session() as session:
            await Repository(session)._execute(insert(TRADES).values(_row(1, symbol=None)))
    assert not isinstance(caught.value, DuplicateError)


async def test_hot_calls_never_use_the_orm_session(db: DatabaseManager, monkeypatch: pytest.MonkeyPatch) -> None:
    """insert, update, log_event, update_position and close_position all take the single-row path."""

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("session.execute/get/add used on the hot path")

    async with db.get_session() as session:
        for name in ("execute", "get", "scalar", "scalars"):
            monkeypatch.setattr(session, name, refused)
        monkeypatch.setattr(session, "add", refused)
        trades = TradeRepository(session)
        trade_id = await trades.insert(trade(1))
        await trades.update(trade_id, exit_price="51000", realized_pnl="10", action="close")
        got = await trades.get_by_id(trade_id)
        await SystemEventRepository(session).log_event("fill", "info", "filled", details={"x": 1})
        positions = PositionRepository(session)
        position_id = await positions.update_position(position())
        await positions.close_position(position_id)
    assert got is not None and got.exit_price == Decimal("51000")


async def test_a_session_goes_on_after_a_commit_inside_it(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        trades = TradeRepository(session)
        first = await trades.insert(trade(1))
        await session.commit()
        second = await trades.insert(trade(2))
        await trades.update(first, fee="1")
    async with db.get_session() as session:
        got = [await TradeRepository(session).get_by_id(i) for i in (first, second)]
    assert [t.fee if t else None for t in got] == [Decimal(1), Decimal(0)]


async def test_a_duplicate_trade_leaves_the_transaction_usable(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        trades = TradeRepository(session)
        await trades.insert(trade(1))
        with pytest.raises(DuplicateError, match="trade_id: exchange 'binance' already has a trade with trade_id 'T1'"):
            await trades.insert(trade(1))
        await trades.insert(trade(2))
    async with db.get_session() as session:
        assert len(await TradeRepository(session).get_recent()) == 2


async def test_update_moves_updated_at_even_when_it_is_ahead_of_the_clock(db: DatabaseManager) -> None:
    ahead = datetime.now(UTC) + timedelta(days=1)
    async with db.get_session() as session:
        trades = TradeRepository(session)
        trade_id = await trades.insert(trade(1))
        await Repository(session)._execute(update(TRADES).where(TRADES.c.id == trade_id).values(updated_at=ahead))
        await trades.update(trade_id, fee="2")
        got = await trades.get_by_id(trade_id)
        with pytest.raises(NotFoundError, match="no trade with id 999"):
            await trades.update(999, fee="2")
    assert got is not None and got.fee == Decimal(2) and got.updated_at == ahead + timedelta(microseconds=1)


async def test_echo_logs_each_statement(url: Any, caplog: pytest.LogCaptureFixture) -> None:
    async with DatabaseManager(url, echo=True) as db:
        await db.create_all()
        try:
            with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
                async with db.get_session() as session:
                    await TradeRepository(session).insert(trade(1))
            logged = [r.getMessage() for r in caplog.records]
            assert any(m.startswith("INSERT INTO trades") for m in logged)
            assert any(m.startswith("[single-row path]") and "'T1'" in m for m in logged)
        finally:
            await db.drop_all()


async def test_each_statement_shape_is_compiled_once(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        trades = TradeRepository(session)
        await trades.insert(trade(0))
        conn = await session.connection()
        from tradestore.dialects import backend

        compiled = dict(backend(conn.dialect)._single_row)
        for n in range(1, 5):
            await trades.insert(trade(n))
        assert backend(conn.dialect)._single_row == compiled


async def test_statements_it_does_not_take(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        assert await single_row.execute(session, text("SELECT 1")) is None
        assert await single_row.execute(session, select(TradeModel)) is None
        assert await single_row.execute(session, select(TRADES.c.id)) is not None
