"""What every repository shares: its session, the default exchange, and the single-row path.

Every repository is ``XRepository(session)`` on a session of :meth:`DatabaseManager.get_session`.
Calls that name no exchange use the manager's (``DatabaseManager(url, exchange="kraken")``),
which travels with the session in ``session.info``; a session made elsewhere gets
:data:`DEFAULT_EXCHANGE`.

Single-row statements (one insert, one conditional update, one short read) go through
:meth:`Repository._execute` and its siblings, never through the ORM's unit of work: it is the
one place the per-tick path is made fast, for every repository at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Result
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from tradestore.dialects.errors import is_unique_violation
from tradestore.errors import DuplicateError

#: The exchange of calls that name none, unless the manager sets another (the seed bots' default).
DEFAULT_EXCHANGE = "binance"
#: Where the manager leaves its default exchange in ``session.info``.
SESSION_EXCHANGE = "tradestore.exchange"
#: Given as ``exchange`` to a read that spans exchanges (statistics, open positions): every exchange.
ALL_EXCHANGES = "*"


@contextmanager
def duplicates_raise(message: str) -> Iterator[None]:
    """Turn a unique-key violation raised inside the block into :class:`DuplicateError`.

    The driver's error stays ``__cause__`` (and ``orig``); other integrity errors (a check, a
    foreign key) pass unchanged. Usage::

        with duplicates_raise(f"trade_id: {trade.exchange} already has a trade {trade.trade_id!r}"):
            await self._execute(statement)

    On PostgreSQL a failed statement aborts its transaction: the session must roll back
    (``get_session()`` does when the error leaves its block) unless the statement ran in a
    savepoint, as the bulk paths' do.
    """
    try:
        yield
    except IntegrityError as exc:
        if isinstance(exc, DuplicateError) or not is_unique_violation(exc.orig):
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
        """``exchange``, or the session's default when it is ``None``."""
        return self.exchange if exchange is None else exchange

    async def _execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Result[Any]:
        """Run one Core statement in the session's transaction (the single-row path)."""
        return await self.session.execute(statement, params)

    async def _scalar(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row of ``statement``, or ``None``."""
        return (await self._execute(statement, params)).scalar()

    async def _one_or_none(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        """The one row ``statement`` returns, or ``None``."""
        return (await self._execute(statement, params)).one_or_none()
