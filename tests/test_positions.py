"""PositionRepository on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from factories import position
from tradestore import ALL_EXCHANGES, DatabaseManager, PositionRepository
from tradestore.errors import NotFoundError, ValidationError
from tradestore.models import PositionModel


async def test_update_position_creates_then_updates_the_open_one(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = PositionRepository(session)
        first = await repo.update_position(position())
        again = await repo.update_position(position(quantity="0.02", current_price="50500.5", unrealized_pnl="10.01"))
        got = await repo.get_position("BTCUSDT")
    assert first == again
    assert got is not None and got.id == first
    assert (got.quantity, got.current_price, got.unrealized_pnl) == (
        Decimal("0.02"),
        Decimal("50500.5"),
        Decimal("10.01"),
    )


async def test_one_open_position_per_exchange_symbol_bot_and_mode(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = PositionRepository(session)
        ids = {
            await repo.update_position(position()),
            await repo.update_position(position(bot_id="a")),
            await repo.update_position(position(bot_id="b")),
            await repo.update_position(position(mode="paper")),
            await repo.update_position(position(exchange="bybit")),
            await repo.update_position(position(symbol="ETHUSDT")),
        }
        assert len(ids) == 6
        assert len(await repo.get_open_positions()) == 5
        assert len(await repo.get_open_positions(exchange=None)) == 5  # None: the manager's default exchange
        assert len(await repo.get_open_positions(exchange=ALL_EXCHANGES)) == 6
        assert [p.bot_id for p in await repo.get_open_positions(bot_id="a")] == ["a"]
        assert [p.mode for p in await repo.get_open_positions(mode="paper")] == ["paper"]


async def test_the_schema_refuses_a_second_open_position(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        await PositionRepository(session).update_position(position())
    row = {k: v for k, v in vars(position()).items() if k not in ("id",)}
    row["updated_at"] = row["entry_time"]
    with pytest.raises(IntegrityError):
        async with db.get_session() as session:
            await session.execute(insert(PositionModel).values(row))  # NULL bot_id counts as one bot


async def test_close_position(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = PositionRepository(session)
        position_id = await repo.update_position(position())
        await repo.close_position(position_id)
        closed = await session.get(PositionModel, position_id)
        assert closed is not None and closed.status == "closed" and closed.closed_at is not None
        closed_at = closed.closed_at
        await repo.close_position(position_id)  # harmless
        assert await repo.get_position("BTCUSDT") is None
        assert await repo.get_open_positions() == []
        with pytest.raises(NotFoundError):
            await repo.close_position(12345)
        reopened = await repo.update_position(position())
        assert reopened != position_id
    async with db.get_session() as session:
        again = await session.get(PositionModel, position_id)
        assert again is not None and again.closed_at == closed_at


async def test_update_by_id(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = PositionRepository(session)
        position_id = await repo.update_position(position())
        assert await repo.update_position(position(id=position_id, margin="250")) == position_id
        got = await repo.get_position("BTCUSDT")
        assert got is not None and got.margin == Decimal("250")
        with pytest.raises(NotFoundError):
            await repo.update_position(position(id=position_id + 100))


async def test_get_position_filters(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = PositionRepository(session)
        await repo.update_position(position(bot_id="a", quantity="1"))
        await repo.update_position(position(mode="paper", quantity="2"))
        assert (await repo.get_position("BTCUSDT", bot_id="a")).quantity == Decimal("1")  # type: ignore[union-attr]
        assert (await repo.get_position("BTCUSDT", mode="paper")).quantity == Decimal("2")  # type: ignore[union-attr]
        assert (await repo.get_position("BTCUSDT", mode=None)).quantity == Decimal("2")  # type: ignore[union-attr]
        # No mode filter by default, as in get_open_positions: the most recently updated match.
        assert (await repo.get_position("BTCUSDT")).quantity == Decimal("2")  # type: ignore[union-attr]
        assert await repo.get_position("BTCUSDT", exchange="bybit") is None


async def test_update_position_checks_a_position_changed_after_construction(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = PositionRepository(session)
        for name, value in (("quantity", Decimal(-1)), ("side", "LONG"), ("margin", 1.5e400)):
            changed = position()
            setattr(changed, name, value)
            with pytest.raises(ValidationError, match=name):
                await repo.update_position(changed)
        assert await repo.get_open_positions(ALL_EXCHANGES) == []
