"""The session of ``get_session()``: one connection per unit of work, shared by the ORM and the repositories."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from factories import trade
from tradestore import DatabaseManager, SystemEventRepository, TradeRepository
from tradestore.models import SystemEventModel, TradeModel
from tradestore.sessions import UnitSession


async def _count(db: DatabaseManager, model: Any) -> int:
    async with db.get_session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


def _event(message: str) -> SystemEventModel:
    return SystemEventModel(event_type="note", severity="info", message=message, created_at=datetime.now(UTC))


def _checked_out(db: DatabaseManager) -> int | None:
    """Connections out of the pool (``None`` for in-memory SQLite: one connection, never counted)."""
    pool: Any = db.engine.sync_engine.pool
    return int(pool.checkedout()) if hasattr(pool, "checkedout") else None


async def test_the_session_is_an_async_session_on_one_connection(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        assert isinstance(session, AsyncSession)
        assert _checked_out(db) in (0, None) and not session.in_transaction()  # nothing opened before its first use
        await TradeRepository(session).insert(trade(1))
        assert session.in_transaction()
        conn = await session.connection()
        await session.execute(select(TradeModel))  # the ORM joins the same connection's transaction
        assert await session.connection() is conn
        assert _checked_out(db) in (1, None)
    assert _checked_out(db) in (0, None)


async def test_orm_and_repository_calls_commit_together(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        await TradeRepository(session).insert(trade(1))
        session.add(_event("by the ORM"))
        await SystemEventRepository(session).log_event("fill", "info", "by a repository")
    assert await _count(db, TradeModel) == 1
    assert await _count(db, SystemEventModel) == 2


async def test_orm_and_repository_calls_roll_back_together(db: DatabaseManager) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with db.get_session() as session:
            session.add(_event("by the ORM"))
            await session.flush()
            await TradeRepository(session).insert(trade(1))
            raise RuntimeError("boom")
    assert await _count(db, TradeModel) == 0
    assert await _count(db, SystemEventModel) == 0
    assert _checked_out(db) in (0, None)


async def test_commit_inside_the_block_commits_the_repository_calls(db: DatabaseManager) -> None:
    with pytest.raises(RuntimeError, match="after the commit"):
        async with db.get_session() as session:
            await TradeRepository(session).insert(trade(1))
            await session.commit()
            await TradeRepository(session).insert(trade(2))
            raise RuntimeError("after the commit")
    async with db.get_session() as session:
        assert [t.trade_id for t in await TradeRepository(session).get_recent()] == ["T1"]


async def test_rollback_inside_the_block_undoes_the_repository_calls(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        trades = TradeRepository(session)
        await trades.insert(trade(1))
        await session.rollback()
        assert not session.in_transaction()
        await trades.insert(trade(2))
    async with db.get_session() as session:
        assert [t.trade_id for t in await TradeRepository(session).get_recent()] == ["T2"]


async def test_close_inside_the_block_rolls_back_and_returns_the_connection(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        await TradeRepository(session).insert(trade(1))
        await session.close()
        assert _checked_out(db) in (0, None)
        await TradeRepository(session).insert(trade(2))  # a closed session opens a new transaction
    async with db.get_session() as session:
        assert [t.trade_id for t in await TradeRepository(session).get_recent()] == ["T2"]


async def test_orm_first_then_repository_share_the_transaction(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        session.add(_event("first"))
        await session.flush()
        await TradeRepository(session).insert(trade(1))
        await session.rollback()
    assert await _count(db, TradeModel) == 0
    assert await _count(db, SystemEventModel) == 0


async def test_an_engine_with_options_begins_through_sqlalchemy(db: DatabaseManager) -> None:
    """A session on an engine with execution options gets transactions with those options."""
    engine = db.engine.execution_options(isolation_level="SERIALIZABLE")
    session = UnitSession(bind=engine)
    try:
        await TradeRepository(session).insert(trade(1))
        if db.backend == "postgresql":
            level = (await session.execute(text("SHOW transaction_isolation"))).scalar_one()
            assert level == "serializable"
        await session.commit()
    finally:
        await session.close()
    assert await _count(db, TradeModel) == 1
