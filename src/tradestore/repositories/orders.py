"""``OrderRepository``: orders, their state machine, their history, and an idempotent ledger of fills."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import ColumnElement

from tradestore.dialects import Backend, dec_sum
from tradestore.domain import MODES, OPEN_ORDER_STATUSES, ORDER_STATUSES, Fill, Order, OrderStatusChange
from tradestore.domain.orders import FILL_STATUSES, check_move, fee_in_quote, move_sources, quote_currency
from tradestore.errors import (
    ConflictError,
    DuplicateError,
    InvalidTransitionError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from tradestore.models import FillModel, OrderHistoryModel, OrderModel, TradeModel
from tradestore.repositories.base import Repository
from tradestore.values import EXACT, to_id, to_optional_text, to_optional_utc, to_text

_ORDERS = cast(Table, OrderModel.__table__)
_HISTORY = cast(Table, OrderHistoryModel.__table__)
_FILLS = cast(Table, FillModel.__table__)
_ORDER_FIELDS = tuple(f.name for f in dataclasses.fields(Order))
_FILL_FIELDS = tuple(f.name for f in dataclasses.fields(Fill))
#: Written by the store only: ``create()`` takes an order without them.
_STORE_KEPT = ("filled_quantity", "average_fill_price", "fee_total", "id", "created_at", "updated_at")
#: ``average_fill_price`` is rounded half-even to this many decimal places.
AVERAGE_PLACES = 18
_SCALE = 10**AVERAGE_PLACES
#: Fill fields two reports of one fill must agree on.
_SAME_FILL = ("price", "quantity", "fee", "fee_currency", "timestamp")


# The single-row statements, built once; values come as parameters (``b_…``: not columns).
_o, _f = _ORDERS.c, _FILLS.c
_INSERT_HISTORY = insert(_HISTORY)
_GET = select(*_o).where(_o.id == bindparam("b_id"))
_EXISTS = select(_o.id).where(_o.id == bindparam("b_id"))
_BY_CLIENT_ID = select(*_o).where(_o.exchange == bindparam("b_exchange"), _o.client_order_id == bindparam("b_client"))
#: The order of a fill, its row locked until the transaction ends (SQLite: BEGIN IMMEDIATE already).
_LOCK_FOR_FILL = (
    select(_o.id, _o.symbol, _o.side, _o.status, _o.quantity, _o.filled_quantity, _o.filled_value, _o.fee_total)
    .where(_o.exchange == bindparam("b_exchange"), _o.client_order_id == bindparam("b_client"))
    .with_for_update()
)
_FILL_BY_KEY = select(*_f).where(
    _f.exchange == bindparam("b_exchange"),
    _f.client_order_id == bindparam("b_client"),
    _f.exchange_trade_id == bindparam("b_trade"),
)
#: ``transition()`` to each state: ONE conditional UPDATE from the states the table allows.
_MOVE = {
    target: update(_ORDERS)
    .where(_o.id == bindparam("b_id"), _o.status.in_([s for s in move_sources(target, by_fill=False) if s != target]))
    .returning(*_o)
    for target in ORDER_STATUSES
}
#: A fill's update of its order, for each state a fill moves it to.
_FILL_MOVE = {
    target: update(_ORDERS).where(_o.id == bindparam("b_id"), _o.status.in_(move_sources(target, by_fill=True)))
    for target in FILL_STATUSES
}


def _insert_order(db: Backend) -> Any:
    """Insert an order unless its key is stored: a duplicate skips the row instead of failing
    the statement, which on PostgreSQL would abort the whole transaction."""
    return db.insert(_ORDERS).on_conflict_do_nothing(index_elements=["exchange", "client_order_id"]).returning(_o.id)


def _insert_fill(db: Backend) -> Any:
    key = ["exchange", "client_order_id", "exchange_trade_id"]
    return db.insert(_FILLS).on_conflict_do_nothing(index_elements=key).returning(_f.id)


def _order(row: Row[Any]) -> Order:
    values = row._mapping
    return Order(**{name: values[name] for name in _ORDER_FIELDS})


def _fill(row: Row[Any]) -> Fill:
    values = row._mapping
    return Fill(**{name: values[name] for name in _FILL_FIELDS})


def average_price(value: Decimal, quantity: Decimal) -> Decimal:
    """``value / quantity`` rounded half-even to :data:`AVERAGE_PLACES` decimal places, exactly.

    Computed on fractions, so no intermediate rounding can tip a tie either way.
    """
    scaled = round(Fraction(value) * _SCALE / Fraction(quantity))  # round() of a Fraction is half-even
    return Decimal(scaled).scaleb(-AVERAGE_PLACES)


def _same_fill(stored: Fill, reported: Fill) -> bool:
    """Whether two reports of one fill agree on :data:`_SAME_FILL`.

    A fee currency of ``None`` is the quote currency of the symbol (see
    :func:`tradestore.domain.orders.fee_in_quote`): ``None`` and ``'USDT'`` on ``BTC/USDT`` agree.
    """
    if any(getattr(stored, name) != getattr(reported, name) for name in _SAME_FILL if name != "fee_currency"):
        return False
    quote = quote_currency(stored.symbol)
    before, now = (quote if f.fee_currency is None else f.fee_currency for f in (stored, reported))
    return before == now


def _describe(fill: Fill) -> str:
    return ", ".join(f"{name}={getattr(fill, name)!s}" for name in _SAME_FILL)


class OrderRepository(Repository):
    """Orders and fills of one session.

    Every change of state goes through :func:`tradestore.domain.orders.check_move` (the one
    table of allowed moves) and is applied by one conditional ``UPDATE … WHERE status IN (…)``,
    then appended to the order's history.
    """

    async def create(self, order: Order) -> int:
        """Store a new order and return its database id; its history starts with its state.

        Raises:
            ValidationError: ``order`` is not an ``Order``, has an attribute ``Order()`` would
                refuse (it is built anew, so a change after construction is checked), carries figures only fills may set
                (``filled_quantity``, ``average_fill_price``, ``fee_total``), or is created
                ``partially_filled``/``filled`` (states only fills reach).
            DuplicateError: the exchange already has an order with this ``client_order_id``.
            NotFoundError: ``order.trade_id`` names no trade (on PostgreSQL the transaction
                is then aborted: end the session).
        """
        if not isinstance(order, Order):
            raise ValidationError(f"order: expected an Order, got {order!r}")
        # Built anew: attributes changed after construction are checked as Order() checks them.
        order = dataclasses.replace(order)
        if order.filled_quantity != 0 or order.average_fill_price is not None or order.fee_total != 0:
            raise ValidationError(
                "order: filled_quantity, average_fill_price and fee_total are kept by the store from "
                f"recorded fills; create() takes 0, None and 0, got {order.filled_quantity}, "
                f"{order.average_fill_price}, {order.fee_total}"
            )
        if order.status in ("partially_filled", "filled"):
            raise ValidationError(f"status: an order is created before its fills, not {order.status!r}; record them")
        now = datetime.now(UTC)
        values = {name: getattr(order, name) for name in _ORDER_FIELDS if name not in _STORE_KEPT}
        values.update(
            filled_quantity=Decimal(0), filled_value=Decimal(0), fee_total=Decimal(0), created_at=now, updated_at=now
        )
        try:
            order_id = await self._scalar(self._built("orders.create", _insert_order), values)
        except DuplicateError:
            raise
        except IntegrityError as exc:  # the only constraint left: the trade foreign key
            raise NotFoundError(f"trade_id: no trade with id {order.trade_id!r}") from exc
        if order_id is None:
            raise DuplicateError(f"client_order_id: {order.exchange!r} already has an order {order.client_order_id!r}")
        await self._execute(
            _INSERT_HISTORY, {"order_id": order_id, "status": order.status, "reason": order.reason, "at": now}
        )
        return int(order_id)

    async def transition(
        self,
        order_id: int,
        status: str,
        *,
        exchange_order_id: str | None = None,
        reason: str | None = None,
        at: datetime | None = None,
    ) -> Order:
        """Move an order to ``status`` and return it as it now is.

        Moving to the state the order is already in changes nothing (exchanges repeat status
        updates). Otherwise the move is recorded in the history with ``reason`` and ``at``
        (default now); ``exchange_order_id``, when given, is stored too.

        Raises:
            ValidationError: an unknown status or a bad argument.
            InvalidTransitionError: the state table does not allow the move (nothing written),
                or another writer moved the order first.
            NotFoundError: no order has this id.
        """
        order_id = to_id("order_id", order_id)
        status = to_text("status", status, choices=ORDER_STATUSES)
        exchange_order_id = to_optional_text("exchange_order_id", exchange_order_id)
        reason = to_optional_text("reason", reason)
        now = datetime.now(UTC)
        at = to_optional_utc("at", at) or now
        values: dict[str, Any] = {"b_id": order_id, "status": status, "updated_at": now}
        if exchange_order_id is not None:
            values["exchange_order_id"] = exchange_order_id
        moved = await self._one_or_none(_MOVE[status], values)
        if moved is None:
            current = await self.get(order_id)
            if current is None:
                raise NotFoundError(f"order_id: no order with id {order_id}")
            if current.status == status:
                return current
            check_move(order_id, current.status, status, by_fill=False)
            raise InvalidTransitionError(  # allowed from where it is now, but it got there meanwhile
                f"order {order_id}: another writer moved it to {current.status!r} while it was asked "
                f"to move to {status!r}; read it again"
            )
        await self._execute(_INSERT_HISTORY, {"order_id": order_id, "status": status, "reason": reason, "at": at})
        return _order(moved)

    async def get(self, order_id: int) -> Order | None:
        """The order with database id ``order_id``, or ``None``."""
        row = await self._one_or_none(_GET, {"b_id": to_id("order_id", order_id)})
        return None if row is None else _order(row)

    async def get_by_client_id(self, client_order_id: str, exchange: str | None = None) -> Order | None:
        """The order ``client_order_id`` on ``exchange`` (default: the manager's), or ``None``."""
        row = await self._one_or_none(
            _BY_CLIENT_ID,
            {
                "b_exchange": to_text("exchange", self._exchange(exchange)),
                "b_client": to_text("client_order_id", client_order_id),
            },
        )
        return None if row is None else _order(row)

    async def get_open_orders(
        self,
        exchange: str | None = None,
        *,
        symbol: str | None = None,
        bot_id: str | None = None,
        mode: str | None = None,
    ) -> list[Order]:
        """Orders that may still trade (new, submitted, open, partially_filled, pending_cancel), oldest first.

        ``exchange=None`` means the manager's default exchange and ``ALL_EXCHANGES`` (``"*"``)
        every exchange; every other filter left at ``None`` means no filter.
        """
        c = _ORDERS.c
        filters: list[ColumnElement[bool]] = [c.status.in_(OPEN_ORDER_STATUSES)]
        for column, value, name in (
            (c.exchange, self._exchange_filter(exchange), "exchange"),
            (c.symbol, symbol, "symbol"),
            (c.bot_id, bot_id, "bot_id"),
        ):
            if value is not None:
                filters.append(column == to_text(name, value))
        if mode is not None:
            filters.append(c.mode == to_text("mode", mode, choices=MODES))
        rows = await self._execute(select(*c).where(*filters).order_by(c.created_at, c.id))
        return [_order(row) for row in rows]

    async def get_orders_of_trade(self, trade_id: int) -> list[Order]:
        """The orders of the trade with database id ``trade_id``, oldest first.

        Raises:
            NotFoundError: no trade has this id.
        """
        trade_id = to_id("trade_id", trade_id)
        c = _ORDERS.c
        orders = [
            _order(r)
            for r in await self._execute(select(*c).where(c.trade_id == trade_id).order_by(c.created_at, c.id))
        ]
        if not orders and await self._scalar(select(TradeModel.id).where(TradeModel.id == trade_id)) is None:
            raise NotFoundError(f"trade_id: no trade with id {trade_id}")
        return orders

    async def get_history(self, order_id: int) -> list[OrderStatusChange]:
        """Every state the order entered, oldest first, from its creation on.

        Raises:
            NotFoundError: no order has this id.
        """
        order_id = to_id("order_id", order_id)
        h = _HISTORY.c
        rows = (
            await self._execute(select(h.id, h.status, h.reason, h.at).where(h.order_id == order_id).order_by(h.id))
        ).all()
        if not rows:  # every order has at least its creation in its history
            raise NotFoundError(f"order_id: no order with id {order_id}")
        changes: list[OrderStatusChange] = []
        for row in rows:
            change = OrderStatusChange(
                order_id, row.status, changes[-1].status if changes else None, row.at, row.reason, row.id
            )
            changes.append(change)
        return changes

    async def get_fills(self, order_id: int) -> list[Fill]:
        """The fills of an order, oldest first (by exchange time, then as recorded).

        Raises:
            NotFoundError: no order has this id.
        """
        order_id = to_id("order_id", order_id)
        f = _FILLS.c
        fills = [
            _fill(r) for r in await self._execute(select(*f).where(f.order_id == order_id).order_by(f.timestamp, f.id))
        ]
        if not fills:
            await self._require_order(order_id)
        return fills

    async def get_fees(self, order_id: int) -> dict[str | None, Decimal]:
        """Every fee paid on an order, summed exactly per currency.

        A fee reported without a currency counts as the order's quote currency (the part after
        ``'/'`` of a ``'BASE/QUOTE'`` or ``'BASE/QUOTE:SETTLE'`` symbol); for a symbol without
        ``'/'`` that currency has no name and the key is ``None``. An order without fills has
        no fees: ``{}``.

        Raises:
            NotFoundError: no order has this id.
        """
        order_id = to_id("order_id", order_id)
        f = _FILLS.c
        rows = (
            await self._execute(
                select(f.fee_currency, dec_sum(f.fee).label("total"), _ORDERS.c.symbol)
                .join(_ORDERS, _ORDERS.c.id == f.order_id)
                .where(f.order_id == order_id)
                .group_by(f.fee_currency, _ORDERS.c.symbol)
            )
        ).all()
        if not rows:
            await self._require_order(order_id)
        fees: dict[str | None, Decimal] = {}
        for row in rows:
            currency, total, symbol = row.fee_currency, row.total, row.symbol
            key = quote_currency(symbol) if currency is None else currency
            fees[key] = EXACT.add(fees[key], total) if key in fees else total
        return fees

    async def record_fill(self, fill: Fill) -> bool:
        """Record one fill of an order, once, and update the order in the same transaction.

        The fill's key is (``exchange``, ``client_order_id``, ``exchange_trade_id``). The order
        gets ``filled_quantity`` = Σ quantities, ``average_fill_price`` = Σ(price * quantity) /
        Σ quantity rounded half-even to 18 places, ``fee_total`` += the fee when it is in the
        order's quote currency (see :func:`tradestore.domain.orders.fee_in_quote`), and the
        state ``filled`` when Σ quantities reaches its quantity, else ``partially_filled``
        (a late fill of a canceled or expired order moves it on too; an order already
        ``filled`` stays ``filled``). Safe to call from many tasks and processes at once: the
        order's row is locked while its figures are computed.

        Returns:
            ``True`` for a new fill; ``False`` when the same fill is already stored (same price,
            quantity, fee, fee currency and timestamp; a fee currency of ``None`` is the
            quote currency, so ``None`` and ``'USDT'`` on ``BTC/USDT`` agree): nothing changes.

        Raises:
            ConflictError: the key is stored with other values (both versions are named).
            NotFoundError: no order has this exchange and ``client_order_id``.
            ValidationError: ``fill`` has an attribute ``Fill()`` would refuse (it is built anew,
                so a change after construction is checked), the fill would take ``filled_quantity`` above the order's
                quantity, or its symbol, side or ``order_id`` is not its order's.
            InvalidTransitionError: the order is in a state no fill can come from (``new``,
                ``rejected``).

        In every error case nothing is written.
        """
        if not isinstance(fill, Fill):
            raise ValidationError(f"fill: expected a Fill, got {fill!r}")
        fill = dataclasses.replace(fill)  # built anew: attributes changed since are checked as Fill() checks them
        # Locking the order serialises the fills of one order: their figures are computed here.
        order = await self._one_or_none(_LOCK_FOR_FILL, {"b_exchange": fill.exchange, "b_client": fill.client_order_id})
        if order is None:
            raise NotFoundError(f"fill: no order {fill.client_order_id!r} on {fill.exchange!r}")
        for name in ("symbol", "side"):
            if getattr(fill, name) != getattr(order, name):
                raise ValidationError(
                    f"fill {name}: {getattr(fill, name)!r} is not its order's {getattr(order, name)!r} "
                    f"(order {order.id}, {fill.client_order_id!r})"
                )
        if fill.order_id is not None and fill.order_id != order.id:
            raise ValidationError(
                f"fill order_id: {fill.order_id} is not the id of order {fill.client_order_id!r} ({order.id})"
            )
        filled = EXACT.add(order.filled_quantity, fill.quantity)
        target = "filled" if filled == order.quantity or order.status == "filled" else "partially_filled"
        problem: ValidationError | None = None
        if filled > order.quantity:
            problem = ValidationError(
                f"fill quantity: {fill.quantity} would take filled_quantity from {order.filled_quantity} to "
                f"{filled}, above the order's quantity {order.quantity} (order {order.id})"
            )
        else:
            try:
                check_move(order.id, order.status, target, by_fill=True)
            except InvalidTransitionError as exc:
                problem = exc
        if problem is not None:
            if await self._seen(fill):  # a replay of a stored fill is not an error
                return False
            raise problem
        values = {name: getattr(fill, name) for name in _FILL_FIELDS if name != "id"}
        values.update(order_id=order.id, created_at=datetime.now(UTC))
        inserted = await self._scalar(self._built("orders.fill", _insert_fill), values)
        if inserted is None:
            if await self._seen(fill):
                return False
            raise StorageError(f"fill {fill.exchange_trade_id!r}: its key was taken but no stored fill was found")
        value = EXACT.add(order.filled_value, EXACT.multiply(fill.price, fill.quantity))
        fee_total = order.fee_total
        if fee_in_quote(order.symbol, fill.fee_currency):
            fee_total = EXACT.add(fee_total, fill.fee)
        result = await self._execute(
            _FILL_MOVE[target],
            {
                "b_id": order.id,
                "filled_quantity": filled,
                "filled_value": value,
                "average_fill_price": average_price(value, filled),
                "fee_total": fee_total,
                "status": target,
                "updated_at": datetime.now(UTC),
            },
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]  # cannot happen while the row is locked
            raise StorageError(f"order {order.id}: changed while locked; nothing was recorded")
        if target != order.status:
            change = {"order_id": order.id, "status": target, "reason": f"fill {fill.exchange_trade_id}"}
            await self._execute(_INSERT_HISTORY, change | {"at": fill.timestamp})
        return True

    async def _seen(self, fill: Fill) -> bool:
        """Whether the same fill is stored (``True``); ``False`` when its key is free.

        Raises:
            ConflictError: the key is stored with other values.
        """
        key = {"b_exchange": fill.exchange, "b_client": fill.client_order_id, "b_trade": fill.exchange_trade_id}
        row = await self._one_or_none(_FILL_BY_KEY, key)
        if row is None:
            return False
        stored = _fill(row)
        if not _same_fill(stored, fill):
            raise ConflictError(
                f"fill ({fill.exchange!r}, {fill.client_order_id!r}, {fill.exchange_trade_id!r}): stored as "
                f"{_describe(stored)}; now reported as {_describe(fill)}"
            )
        return True

    async def _require_order(self, order_id: int) -> None:
        if await self._scalar(_EXISTS, {"b_id": order_id}) is None:
            raise NotFoundError(f"order_id: no order with id {order_id}")
