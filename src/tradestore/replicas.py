"""PostgreSQL streaming standbys that take the read-only sessions off the primary.

A replica is a hot standby of PostgreSQL's own streaming replication (``pg_basebackup -R``):
it refuses writes and replays the primary's WAL a little later. ``DatabaseManager`` sends
each read-only session to the next replica that answers, in turn, and to the primary when
none does; a replica that failed is skipped for :data:`RETRY_AFTER_S` seconds, so that a dead
standby costs one failed connection attempt, not one per session.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from tradestore.engine import build_engine
from tradestore.urls import mask, scrub

log = logging.getLogger("tradestore")

#: How long a replica that failed is left out before it is tried again, in seconds.
RETRY_AFTER_S = 5.0
#: How long opening a connection to a replica may take before the read goes elsewhere, in seconds.
CONNECT_TIMEOUT_S = 2.0
#: How a replica's connections are made: given up quickly when the standby does not answer
#: (reads go elsewhere; a pooled connection whose checkout ``BEGIN`` gets no answer within
#: ``CONNECT_TIMEOUT_S`` is discarded the same way), and read-only and ``REPEATABLE READ`` from
#: the start, so the transaction begun at checkout needs no second round trip: a standby
#: refuses writes anyway, and so does a primary listed as a replica; and every read of a
#: session sees one snapshot, as on the primary.
REPLICA_CONNECTION: dict[str, Any] = {
    "timeout": CONNECT_TIMEOUT_S,
    "server_settings": {"default_transaction_read_only": "on", "default_transaction_isolation": "repeatable read"},
}

#: What a standby knows of its own progress: whether it replays at all, the last WAL position
#: replayed, and how far behind that is in time (0 when it has replayed all it has received).
_REPLAY_SQL = text(
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
    "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END"
)


def lsn_to_int(lsn: str | None) -> int | None:
    """A WAL position as PostgreSQL prints it (``'0/3000148'``) as a byte offset."""
    if lsn is None:
        return None
    high, low = lsn.split("/")
    return (int(high, 16) << 32) | int(low, 16)


class Replica:
    """One standby: its pool (every transaction read-only), and when it last failed."""

    def __init__(self, url: URL, engine: AsyncEngine, *, begin_timeout: float) -> None:
        self.url = url
        self.engine = engine
        #: Seconds a ``BEGIN`` here may take before the connection counts as dead.
        self.begin_timeout = begin_timeout
        self.failed_at: float | None = None
        self.error: str | None = None

    @property
    def database(self) -> str:
        """The replica's URL with its password masked."""
        return mask(self.url)

    def available(self, now: float) -> bool:
        """Whether sessions may be sent here: it has not failed in the last :data:`RETRY_AFTER_S` s."""
        return self.failed_at is None or now - self.failed_at >= RETRY_AFTER_S

    def failed(self, exc: BaseException) -> None:
        """Leave this replica out for a while after ``exc``."""
        self.failed_at = time.monotonic()
        self.error = self.scrub(exc)
        log.warning("replica %s left out for %.0f s: %s", self.database, RETRY_AFTER_S, self.error)

    def answered(self) -> None:
        """Take this replica back in."""
        if self.failed_at is not None:
            log.info("replica %s is back", self.database)
        self.failed_at, self.error = None, None

    def scrub(self, exc: BaseException) -> str:
        """The text of ``exc`` on one line, without this replica's password."""
        message = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
        return scrub(message, self.url)

    async def status(self, primary_lsn: int | None) -> dict[str, Any]:
        """This replica's health: never raises.

        Args:
            primary_lsn: the primary's current WAL position, for the lag in bytes (``None``: unknown).

        Returns:
            ``database`` (masked), ``status`` ('healthy' or 'unhealthy'), ``latency_ms``,
            ``in_recovery`` (``False`` for a promoted standby), ``replay_lag_s`` (how long ago
            the last transaction it replayed committed, 0 when it has replayed all it received),
            ``replay_lag_bytes`` (WAL of the primary not yet replayed here) and, when
            unhealthy, ``error``.
        """
        report: dict[str, Any] = {
            "database": self.database,
            "status": "unhealthy",
            "latency_ms": None,
            "in_recovery": None,
            "replay_lag_s": None,
            "replay_lag_bytes": None,
        }
        started = time.perf_counter()
        try:
            async with self.engine.connect() as conn:
                in_recovery, replayed, lag_s = (await conn.execute(_REPLAY_SQL)).one()
        except Exception as exc:
            self.failed(exc)
            report["error"] = self.error
            return report
        self.answered()
        replayed_at = lsn_to_int(replayed)
        report.update(
            status="healthy",
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            in_recovery=bool(in_recovery),
            replay_lag_s=None if lag_s is None else float(lag_s),
            replay_lag_bytes=(
                max(0, primary_lsn - replayed_at) if primary_lsn is not None and replayed_at is not None else None
            ),
        )
        return report


class Replicas:
    """The replicas of one manager, taken in turn."""

    def __init__(self, urls: Sequence[URL]) -> None:
        self.urls = list(urls)
        self.members: list[Replica] = []
        self._turn = itertools.count()

    def __bool__(self) -> bool:
        return bool(self.urls)

    def start(self, *, pool_size: int, max_overflow: int, echo: bool) -> None:
        """Build each replica's pool; no connection is made until a session needs one."""
        self.members = []
        for url in self.urls:
            engine = build_engine(
                url,
                pool_size=pool_size,
                max_overflow=max_overflow,
                echo=echo,
                postgres_settings=REPLICA_CONNECTION,
                checkout_timeout=CONNECT_TIMEOUT_S,
            )
            self.members.append(Replica(url, engine, begin_timeout=CONNECT_TIMEOUT_S))

    async def stop(self) -> None:
        """Close every replica's pool."""
        members, self.members = self.members, []
        for replica in members:
            await replica.engine.dispose()

    def in_turn(self) -> Iterator[Replica]:
        """The replicas that may take a session, starting with the next one in turn."""
        if not self.members:
            return
        now = time.monotonic()
        first = next(self._turn) % len(self.members)
        for replica in self.members[first:] + self.members[:first]:
            if replica.available(now):
                yield replica
