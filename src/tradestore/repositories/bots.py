"""``BotRepository``: bot instances, their status and heartbeat, and what a restarting bot needs back."""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, literal, null, or_, select, union_all, update
from sqlalchemy import cast as sql_cast

from tradestore.dialects import Backend
from tradestore.domain import (
    BOT_TRANSITIONS,
    OPEN_ORDER_STATUSES,
    Bot,
    EquitySnapshot,
    Order,
    Position,
    Recovery,
    Trade,
)
from tradestore.domain.bots import sources_of
from tradestore.domain.common import BOT_STATUSES, MODES
from tradestore.errors import InvalidTransitionError, NotFoundError, ValidationError
from tradestore.models import BotModel, EquitySnapshotModel, OrderModel, PositionModel, TradeModel
from tradestore.repositories.base import Repository
from tradestore.repositories.events import SystemEventRepository
from tradestore.values import to_decimal, to_optional_utc, to_text

TABLE = cast(Table, BotModel.__table__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_c = TABLE.c
_FIELDS = tuple(f.name for f in dataclasses.fields(Bot))
#: Fields ``register()`` writes from the ``Bot`` it is given (the rest the store sets).
_GIVEN = ("bot_id", "mode", "strategy", "version", "config", "balance", "metadata")


def _bot(values: Any) -> Bot:
    return Bot(**{name: values[name] for name in _FIELDS})


def _register(db: Backend) -> Any:
    """Insert a bot, or restart the stored one: every written column but ``created_at`` replaced."""
    written = (*_GIVEN, "status", "started_at", "last_heartbeat", "created_at", "updated_at")
    insert = db.insert(TABLE).values({name: bindparam(name) for name in written})
    return insert.on_conflict_do_update(
        index_elements=["bot_id"],
        set_={name: insert.excluded[name] for name in written if name not in ("bot_id", "created_at")},
    ).returning(*(_c[name] for name in _FIELDS))


@functools.cache
def _heartbeat(balance: bool, status: bool) -> Any:
    """The heartbeat ``UPDATE`` (built once per shape; each call only binds its values)."""
    values: dict[str, Any] = {"last_heartbeat": bindparam("last_heartbeat"), "updated_at": bindparam("updated_at")}
    statement = update(TABLE).where(_c.bot_id == bindparam("bot"))
    if balance:
        values["balance"] = bindparam("balance")
    if status:
        values["status"] = bindparam("status")
        statement = statement.where(_c.status.in_(bindparam("sources", expanding=True)))
    return statement.values(values).returning(_c.id)


def _status(value: object) -> str:
    return to_text("status", value, choices=BOT_STATUSES)


class BotRepository(Repository):
    """Bots of one session, keyed by their ``bot_id``.

    ``status`` is a state machine (:data:`tradestore.domain.BOT_TRANSITIONS`): ``starting`` →
    ``running`` | ``stopped`` | ``error``; ``running`` → ``stopped`` | ``error``; ``error`` →
    ``starting`` | ``running`` | ``stopped``; ``stopped`` → ``starting``. A move to the current
    status is refused (a heartbeat may repeat it); :meth:`register` restarts a bot from any
    status. Every move is one conditional ``UPDATE``: of two callers racing, exactly one wins.
    """

    async def register(self, bot: Bot) -> Bot:
        """Create the bot or, when its ``bot_id`` is known, restart it; returns it as stored.

        Either way ``started_at`` and ``last_heartbeat`` become now, the status becomes
        ``running`` (``starting`` if the bot says so) and the given fields are written;
        ``created_at`` of a known bot is kept. A ``bot_started`` or ``bot_restarted`` event is logged.
        """
        if not isinstance(bot, Bot):
            raise ValidationError(f"bot: expected a Bot, got {bot!r}")
        bot = dataclasses.replace(bot)  # built anew: attributes changed since are checked again
        now = datetime.now(UTC)
        values: dict[str, Any] = {name: getattr(bot, name) for name in _GIVEN}
        values.update(
            status="starting" if bot.status == "starting" else "running",
            started_at=now,
            last_heartbeat=now,
            created_at=now,
            updated_at=now,
        )
        stored = _bot((await self._execute(self._built("bots.register", _register), values)).mappings().one())
        restarted = stored.created_at != stored.updated_at
        await SystemEventRepository(self.session).log_event(
            "bot_restarted" if restarted else "bot_started",
            "info",
            f"bot {stored.bot_id} {'restarted' if restarted else 'started'} ({stored.mode}, {stored.status})",
            details={"bot_id": stored.bot_id, "mode": stored.mode, "status": stored.status, "version": stored.version},
        )
        return stored

    async def heartbeat(
        self,
        bot_id: str,
        *,
        balance: Decimal | int | str | float | None = None,
        status: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Record that the bot is alive at ``at`` (default now), with its balance and status if given.

        A ``status`` follows the state machine like :meth:`set_status` (repeating the current
        one is allowed here) but logs no event: use ``set_status`` for a change worth a reason.
        One conditional ``UPDATE``.

        Raises:
            NotFoundError: no bot has this ``bot_id``.
            InvalidTransitionError: the bot's status cannot move to ``status``.
            ValidationError: a bad balance, status or time (nothing is written).
        """
        name = to_text("bot_id", bot_id)
        now = datetime.now(UTC)
        values: dict[str, Any] = {"bot": name, "last_heartbeat": to_optional_utc("at", at) or now, "updated_at": now}
        if balance is not None:
            values["balance"] = to_decimal("balance", balance)
        if status is not None:
            values["status"] = _status(status)
            values["sources"] = (status, *sources_of(status))
        if await self._scalar(_heartbeat(balance is not None, status is not None), values) is None:
            await self._refuse(name, status)

    async def set_status(self, bot_id: str, status: str, *, reason: str | None = None) -> Bot:
        """Move the bot to ``status`` and log a ``bot_status`` event (severity ``error`` for ``error``).

        Returns:
            The bot as stored after the move.

        Raises:
            NotFoundError: no bot has this ``bot_id``.
            InvalidTransitionError: the state machine does not allow the move (or another
                caller moved the bot first); nothing is written.
        """
        name, target = to_text("bot_id", bot_id), _status(status)
        if reason is not None and not isinstance(reason, str):
            raise ValidationError(f"reason: expected a string, got {reason!r}")
        statement = (
            update(TABLE)
            .where(_c.bot_id == name, _c.status.in_(sources_of(target)))
            .values(status=target, updated_at=datetime.now(UTC))
            .returning(*(_c[f] for f in _FIELDS))
        )
        row = (await self._execute(statement)).mappings().one_or_none()
        if row is None:
            await self._refuse(name, target)
        stored = _bot(row)
        await SystemEventRepository(self.session).log_event(
            "bot_status",
            "error" if target == "error" else "info",
            f"bot {name} is {target}" + (f": {reason}" if reason else ""),
            details={"bot_id": name, "status": target, "reason": reason},
        )
        return stored

    async def _refuse(self, bot_id: str, status: str | None) -> None:
        current = await self._scalar(select(_c.status).where(_c.bot_id == bot_id))
        if current is None:
            raise NotFoundError(f"bot_id: no bot {bot_id!r}")
        allowed = ", ".join(BOT_TRANSITIONS.get(current, ()))
        raise InvalidTransitionError(
            f"bot {bot_id!r}: status cannot move from {current!r} to {status!r} (from {current!r}: {allowed})"
        )

    async def get(self, bot_id: str) -> Bot:
        """The bot with this ``bot_id``.

        Raises:
            NotFoundError: no bot has it.
        """
        name = to_text("bot_id", bot_id)
        row = (await self._execute(select(*(_c[f] for f in _FIELDS)).where(_c.bot_id == name))).mappings().first()
        if row is None:
            raise NotFoundError(f"bot_id: no bot {name!r}")
        return _bot(row)

    async def list_bots(self, *, status: str | None = None, mode: str | None = None) -> list[Bot]:
        """Every bot with this status and mode (``None``: any), by ``bot_id``."""
        statement = select(*(_c[f] for f in _FIELDS)).order_by(_c.bot_id)
        if status is not None:
            statement = statement.where(_c.status == _status(status))
        if mode is not None:
            statement = statement.where(_c.mode == to_text("mode", mode, choices=MODES))
        return [_bot(row) for row in (await self._execute(statement)).mappings().all()]

    async def stale(self, older_than: timedelta) -> list[Bot]:
        """Running bots whose last heartbeat is older than ``older_than`` (or that never sent one), by ``bot_id``."""
        if not isinstance(older_than, timedelta) or older_than < timedelta(0):
            raise ValidationError(f"older_than: expected a timedelta of at least 0, got {older_than!r}")
        cutoff = datetime.now(UTC) - older_than
        statement = (
            select(*(_c[f] for f in _FIELDS))
            .where(_c.status == "running", or_(_c.last_heartbeat.is_(None), _c.last_heartbeat < cutoff))
            .order_by(_c.bot_id)
        )
        return [_bot(row) for row in (await self._execute(statement)).mappings().all()]

    async def recover(self, bot_id: str, mode: str | None = None) -> Recovery:
        """What a restarting bot needs, read by ONE statement (one consistent snapshot on both backends).

        Its open positions, its open trades (no ``exit_time``), its open orders (new, submitted,
        open, partially filled or pending cancel), its newest equity snapshot and its last known
        balance; ``mode`` narrows all of them (``None``: every mode).

        Raises:
            NotFoundError: no bot has this ``bot_id``.
        """
        name = to_text("bot_id", bot_id)
        checked = None if mode is None else to_text("mode", mode, choices=MODES)
        rows = (await self._execute(_snapshot(name, checked))).all()
        found: dict[str, list[dict[str, Any]]] = {kind: [] for kind, _ in _PARTS}
        for row in rows:
            kind = row[0]
            found[kind].append({label: row[index] for label, index in _SLOTS[kind].items()})
        if not found["bot"]:
            raise NotFoundError(f"bot_id: no bot {name!r}")
        bot = _bot(found["bot"][0])
        positions = sorted(
            (Position(**v) for v in found["position"]), key=lambda p: (p.updated_at, p.id or 0), reverse=True
        )
        trades = sorted((Trade(**v) for v in found["trade"]), key=lambda t: (t.entry_time, t.id or 0))
        equity = EquitySnapshot(**found["equity"][0]) if found["equity"] else None
        orders = sorted((Order(**v) for v in found["order"]), key=lambda o: (o.created_at or _EPOCH, o.id or 0))
        reports: list[tuple[datetime, Decimal]] = []
        if bot.balance is not None and bot.last_heartbeat is not None:
            reports.append((bot.last_heartbeat, bot.balance))
        if equity is not None and equity.balance is not None:
            reports.append((equity.timestamp, equity.balance))
        balance_at, balance = max(reports, key=lambda r: r[0]) if reports else (None, None)
        if balance is None and bot.balance is not None:
            balance = bot.balance  # a balance given at registration, without a heartbeat time
        return Recovery(bot, positions, trades, equity, balance, balance_at, orders)


_PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bot", _FIELDS),
    ("position", tuple(f.name for f in dataclasses.fields(Position))),
    ("trade", tuple(f.name for f in dataclasses.fields(Trade))),
    ("equity", tuple(f.name for f in dataclasses.fields(EquitySnapshot))),
    ("order", tuple(f.name for f in dataclasses.fields(Order))),
)
_TABLES: dict[str, Table] = {
    "bot": TABLE,
    "position": cast(Table, PositionModel.__table__),
    "trade": cast(Table, TradeModel.__table__),
    "equity": cast(Table, EquitySnapshotModel.__table__),
    "order": cast(Table, OrderModel.__table__),
}
#: For each kind, its fields and their positions in the union's rows (position 0 is the kind).
_SLOTS: dict[str, dict[str, int]] = {}
_offset = 1
for _kind, _names in _PARTS:
    _SLOTS[_kind] = {name: _offset + i for i, name in enumerate(_names)}
    _offset += len(_names)


def _snapshot(bot_id: str, mode: str | None) -> Any:
    """One ``UNION ALL`` of the bot, its open positions and trades and its newest snapshot.

    Each part fills its own columns and leaves the others NULL (typed, so every value is
    decoded as its column's type). One statement is one snapshot, whatever the isolation level.
    """
    bot, position, trade, equity, order = (_TABLES[k] for k in ("bot", "position", "trade", "equity", "order"))
    wheres: dict[str, list[Any]] = {
        "bot": [bot.c.bot_id == bot_id],
        "position": [position.c.bot_id == bot_id, position.c.status == "open"],
        "trade": [trade.c.bot_id == bot_id, trade.c.status == "open"],
        "equity": [equity.c.bot_id == bot_id],
        "order": [order.c.bot_id == bot_id, order.c.status.in_(OPEN_ORDER_STATUSES)],
    }
    if mode is not None:
        for kind in ("position", "trade", "equity", "order"):
            wheres[kind].append(_TABLES[kind].c.mode == mode)
    newest = select(equity).where(*wheres["equity"]).order_by(equity.c.timestamp.desc()).limit(1).subquery("newest")
    sources: dict[str, Any] = {"bot": bot, "position": position, "trade": trade, "equity": newest, "order": order}
    selects = []
    for kind, _ in _PARTS:
        columns: list[Any] = [literal(kind).label("kind")]
        for other, names in _PARTS:
            for name in names:
                if other == kind:
                    columns.append(sources[kind].c[name].label(None))
                else:
                    columns.append(sql_cast(null(), _TABLES[other].c[name].type).label(None))
        statement = select(*columns).select_from(sources[kind])
        if kind != "equity":
            statement = statement.where(*wheres[kind])
        selects.append(statement)
    return union_all(*selects)
