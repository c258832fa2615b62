"""What every repository shares: its session, the default exchange, and the single-row path.

Every repository is ``XRepository(session)`` on a session of :meth:`DatabaseManager.get_session`.
Calls that name no exchange use the manager's (``DatabaseManager(url, exchange="kraken")``),
which travels with the session in ``session.info``; a session made elsewhere gets
:data:`DEFAULT_EXCHANGE`.

Single-row statements (one insert, one conditional update, one short read) go through
:meth:`Repository._execute` and its siblings, never through the ORM's unit of work: it is the
one place the per-tick path is made fast, for every repository at once. They run on the driver
connection of the session's transaction, compiled once per dialect (see
:mod:`tradestore.dialects.single_row`): about as fast as the raw driver, with the same typed errors.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from itertools import repeat
from typing import Any, TypeVar

from sqlalchemy.engine import Result
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from tradestore.dialects import Backend, backend, single_row
from tradestore.dialects.errors import is_unique_violation
from tradestore.errors import DuplicateError, ValidationError
from tradestore.values import to_text

#: The exchange of calls that name none, unless the manager sets another (the seed bots' default).
DEFAULT_EXCHANGE = "binance"
#: Where the manager leaves its default exchange in ``session.info``.
SESSION_EXCHANGE = "tradestore.exchange"
#: Given as ``exchange`` to a read that spans exchanges (statistics, open positions): every exchange.
ALL_EXCHANGES = "*"
#: Statements built once per kind of database (see ``Repository._built``).
_BUILT: dict[tuple[str, Hashable], Executable] = {}


@contextmanager
def duplicates_raise(message: str) -> Iterator[None]:
    """Raise a unique-key violation inside the block as :class:`DuplicateError` saying ``message``.

    The driver's error stays ``__cause__``'s ``orig``; other integrity errors (a check, a foreign
    key) pass unchanged. For the paths that raise SQLAlchemy's ``IntegrityError`` (the bulk
    paths) and to give the single-row path's ``DuplicateError`` a message naming the key. Usage::

        with duplicates_raise(f"trade_id: {trade.exchange} already has a trade {trade.trade_id!r}"):
            await self._execute(statement)

    On PostgreSQL a failed statement aborts its transaction: the session must roll back
    (``get_session()`` does when the error leaves its block) unless the statement ran in a
    savepoint, as the bulk paths' do.
    """
    try:
        yield
    except IntegrityError as exc:
        if not isinstance(exc, DuplicateError) and not is_unique_violation(exc.orig):
            raise
        raise DuplicateError(message, exc.orig) from exc


class Repository:
    """Base of every repository: ``self.session``, ``self.exchange`` and the single-row path."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        exchange = session.info.get(SESSION_EXCHANGE, DEFAULT_EXCHANGE)
        self.exchange: str = exchange if isinstance(exchange, str) else DEFAULT_EXCHANGE

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.session!r}>"

    def _exchange(self, exchange: str | None) -> str:
        """``exchange``, or the session's default when it is ``None``, for a call on one exchange.

        Raises:
            ValidationError: :data:`ALL_EXCHANGES`, which names no one exchange (a read of one
                series or one key would find nothing, a write would make an exchange ``"*"``).
        """
        if exchange == ALL_EXCHANGES:
            raise ValidationError(
                f"exchange: {ALL_EXCHANGES!r} (ALL_EXCHANGES) means every exchange, but this call reads or "
                "writes one: name the exchange, or leave it None for the manager's"
            )
        return self.exchange if exchange is None else exchange

    def _exchange_filter(self, exchange: str | None) -> str | None:
        """The exchange a read of many rows filters on: ``None`` for :data:`ALL_EXCHANGES` (no
        filter), the session's default when ``exchange`` is ``None``, else ``exchange`` itself.

        Raises:
            ValidationError: ``exchange`` is not a non-empty string (nor ``None``).
        """
        if exchange == ALL_EXCHANGES:
            return None
        return to_text("exchange", self._exchange(exchange))

    async def _execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Result[Any]:
        """Run one Core statement in the session's transaction (the single-row path).

        Any Core statement works (``insert(table).values(...)``, ``update(...).where(...)``,
        ``select(...)``), compiled once per shape. Fastest: build it once (module level, or
        :meth:`_built` when it needs the dialect) with ``bindparam()`` in its clauses, and pass
        the values in ``params``; a statement built anew on every call pays for SQLAlchemy's
        cache key, a walk over it (tens of microseconds for twenty columns). Rows come back as
        plain rows (never ORM objects); the result's ``rowcount`` is the number of rows changed.

        Raises:
            DuplicateError: a unique key is already stored (an ``IntegrityError`` too). On
                PostgreSQL the transaction cannot go on after it: for an insert that must leave
                it usable, use ``on_conflict_do_nothing()`` with ``returning()`` and test for no row.
            StorageBusyError, ConnectionLostError: as everywhere else.
        """
        result = await single_row.execute(self.session, statement, params)
        if result is None:  # a statement the fast path does not take: SQLAlchemy's own path
            return await self.session.execute(statement, params)
        return result

    def _built(self, key: Hashable, build: Callable[[Backend], Executable]) -> Executable:
        """The statement ``build(backend)`` makes, built once per kind of database and ``key``.

        For statements that need the dialect (``self._backend().insert(...)`` with
        ``on_conflict_…``); one statement object used again, its values passed as parameters,
        is the fastest form of the single-row path.
        """
        db = self._backend()
        found = _BUILT.get((db.name, key))
        if found is None:
            found = _BUILT[(db.name, key)] = build(db)
        return found

    def _backend(self) -> Backend:
        """The dialect seam of the session's database (no I/O).

        The session's own engine when it has one: ``get_bind()`` would hand a PostgreSQL
        session's leased connection to SQLAlchemy (see :mod:`tradestore.leases`).
        """
        bind = self.session.bind
        return backend((bind if bind is not None else self.session.get_bind()).dialect)

    async def _scalar(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row of ``statement``, or ``None``."""
        found = await single_row.run(self.session, statement, params)
        if found is None:
            return (await self.session.execute(statement, params)).scalar()
        rows = found[1]
        return rows[0][0] if rows else None

    async def _one_or_none(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        """The one row ``statement`` returns, or ``None``."""
        return (await self._execute(statement, params)).one_or_none()


T = TypeVar("T")


def all_of(kind: type[T], items: Iterable[object], field: str) -> list[T]:
    """``items`` as a new list, once every item is known to be a ``kind`` (the bulk calls' check).

    Raises:
        ValidationError: naming ``field[index]`` and the first item that is not a ``kind``.
    """
    found = list(items)
    if not all(map(isinstance, found, repeat(kind))):
        index, bad = next((i, item) for i, item in enumerate(found) if not isinstance(item, kind))
        article = "an" if kind.__name__[0] in "AEIOU" else "a"
        raise ValidationError(f"{field}[{index}]: expected {article} {kind.__name__}, got {bad!r}")
    return found  # type: ignore[return-value]  # checked just above
