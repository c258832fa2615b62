"""``PositionRepository``: the positions bots hold, at most one open per exchange, symbol, bot and mode."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Row, Select, Table, bindparam, select, update

from tradestore.dialects import Backend
from tradestore.domain import Position
from tradestore.errors import NotFoundError, ValidationError
from tradestore.models import BOT_KEY, OPEN, PositionModel
from tradestore.repositories.base import Repository
from tradestore.values import to_id, to_text

TABLE = cast(Table, PositionModel.__table__)

_FIELDS = tuple(f.name for f in dataclasses.fields(Position))
_WRITTEN = tuple(name for name in _FIELDS if name != "id")

_p = TABLE.c
# The single-row statements, built once; values come as parameters (``b_…``: not columns).
_UPDATE_BY_ID = update(TABLE).where(_p.id == bindparam("b_id")).returning(_p.id)
_CLOSE = (
    update(TABLE)
    .where(_p.id == bindparam("b_id"), _p.status == "open")
    .values(status="closed", closed_at=bindparam("b_now"), updated_at=bindparam("b_now"))
    .returning(_p.id)
)
_EXISTS = select(_p.id).where(_p.id == bindparam("b_id"))


def _upsert_open(db: Backend) -> Any:
    """Insert a position, or update the open one with the same exchange, symbol, bot and mode."""
    statement = db.insert(TABLE)
    return statement.on_conflict_do_update(
        index_elements=[_p.exchange, _p.symbol, BOT_KEY, _p.mode],
        index_where=_p.status == OPEN,
        set_={
            name: statement.excluded[name] for name in _WRITTEN if name not in ("exchange", "symbol", "bot_id", "mode")
        },
    ).returning(_p.id)


def _open(exchange: str | None, bot_id: str | None, mode: str | None) -> Select[Any]:
    """Open positions, filtered by every argument that is not ``None``."""
    statement = select(*(_p[name] for name in _FIELDS)).where(_p.status == "open")
    filters = {"exchange": (_p.exchange, exchange), "bot_id": (_p.bot_id, bot_id), "mode": (_p.mode, mode)}
    for name, (column, value) in filters.items():
        if value is not None:
            statement = statement.where(column == to_text(name, value))
    return statement


def _from_row(row: Row[Any]) -> Position:
    return Position(**row._mapping)


class PositionRepository(Repository):
    """Positions of one session.

    ``exchange=None`` means the manager's default exchange (``ALL_EXCHANGES`` every exchange,
    where a call reads several); every other filter left at ``None`` means "no filter".
    """

    async def get_open_positions(
        self, exchange: str | None = None, *, bot_id: str | None = None, mode: str | None = None
    ) -> list[Position]:
        """Every open position matching the filters, most recently updated first."""
        statement = _open(self._exchange_filter(exchange), bot_id, mode).order_by(_p.updated_at.desc(), _p.id.desc())
        return [_from_row(row) for row in await self._execute(statement)]

    async def get_position(
        self, symbol: str, exchange: str | None = None, *, bot_id: str | None = None, mode: str | None = None
    ) -> Position | None:
        """The open position of ``symbol`` matching the filters (the most recently updated if several)."""
        statement = (
            _open(self._exchange_filter(exchange), bot_id, mode)
            .where(_p.symbol == to_text("symbol", symbol))
            .order_by(_p.updated_at.desc(), _p.id.desc())
            .limit(1)
        )
        row = (await self._execute(statement)).first()
        return None if row is None else _from_row(row)

    async def update_position(self, position: Position) -> int:
        """Create or update a position and return its id.

        With ``position.id`` set, that row is updated. Otherwise the open position with the
        same exchange, symbol, bot and mode is updated, or created when there is none; the
        database enforces that there is never more than one.

        Raises:
            NotFoundError: ``position.id`` is set but no such position exists.
        """
        if not isinstance(position, Position):
            raise ValidationError(f"position: expected a Position, got {position!r}")
        position = dataclasses.replace(position)  # built anew: attributes changed since are checked again
        values = {name: getattr(position, name) for name in _WRITTEN}
        values["updated_at"] = datetime.now(UTC)
        if position.id is not None:
            if await self._scalar(_UPDATE_BY_ID, {**values, "b_id": position.id}) is None:
                raise NotFoundError(f"position.id: no position with id {position.id!r}")
            return position.id
        return int(await self._scalar(self._built("positions.upsert", _upsert_open), values))

    async def close_position(self, position_id: int) -> None:
        """Mark a position closed now; closing a closed position changes nothing.

        Raises:
            NotFoundError: no position has this id.
        """
        key = to_id("position_id", position_id)
        closed = await self._scalar(_CLOSE, {"b_id": key, "b_now": datetime.now(UTC)})
        if closed is None and await self._scalar(_EXISTS, {"b_id": key}) is None:
            raise NotFoundError(f"position_id: no position with id {position_id!r}")
