"""candles v2: a series ledger, bars keyed by (series id, bar start), fetched ranges

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 11:40:00

Converts the candle table in place, in batches (bounded memory on both sides: every batch is
one ``INSERT … SELECT`` the database runs itself), reporting progress to the caller
(``tradestore db upgrade`` draws it). The old table is renamed, the new tables are created,
the ledger is filled from one grouped pass, the bars are copied batch by batch, every run of
consecutive stored bars is recorded as fetched, and the old table is dropped. The downgrade
does the reverse; a bar's ``created_at`` then becomes its series' last write time, the
closest value kept.
"""

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from alembic import context, op

import tradestore.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rows per INSERT … SELECT: large enough to amortise the statement, small enough to report often.
BATCH = 50_000
_NUMBERS = ("open", "high", "low", "close", "volume", "quote_volume")
_FIXED_SECONDS = {
    "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1_800, "1h": 3_600, "2h": 7_200, "4h": 14_400,
    "6h": 21_600, "8h": 28_800, "12h": 43_200, "1d": 86_400, "3d": 259_200, "1w": 604_800,
}  # fmt: skip


def _batch() -> int:
    """Rows per batch: :data:`BATCH`, or ``context.config.attributes["tradestore.batch_rows"]`` (tests)."""
    return int(context.config.attributes.get("tradestore.batch_rows", BATCH))


def _progress() -> Callable[[int, int], None]:
    found = context.config.attributes.get("tradestore.progress")
    return found if callable(found) else (lambda done, total: None)


def _sqlite() -> bool:
    return bool(op.get_bind().dialect.name == "sqlite")


def _create_v2_tables() -> None:
    op.create_table(
        "ohlcv_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exchange", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("timeframe", sa.String(), nullable=False),
        sa.Column("first_bar", tradestore.types.BarTime(timezone=True), nullable=True),
        sa.Column("last_bar", tradestore.types.BarTime(timezone=True), nullable=True),
        sa.Column("bar_count", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ohlcv_series")),
        sa.UniqueConstraint("exchange", "symbol", "timeframe", name=op.f("uq_ohlcv_series_exchange_symbol_timeframe")),
    )
    op.create_table(
        "ohlcv",
        sa.Column("time", tradestore.types.BarTime(timezone=True), nullable=False),
        sa.Column("trades_count", sa.BigInteger(), nullable=True),
        sa.Column("series_id", sa.Integer(), nullable=False),
        *(sa.Column(n, tradestore.types.ExactDecimal(), nullable=n == "quote_volume") for n in _NUMBERS),
        sa.PrimaryKeyConstraint("series_id", "time", name=op.f("pk_ohlcv")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "ohlcv_fetched",
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("first_bar", tradestore.types.BarTime(timezone=True), nullable=False),
        sa.Column("last_bar", tradestore.types.BarTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "first_bar", name=op.f("pk_ohlcv_fetched")),
        sqlite_with_rowid=False,
    )


def _create_v1_table() -> None:
    op.create_table(
        "ohlcv",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("exchange", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("timeframe", sa.String(), nullable=False),
        sa.Column("timestamp", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        *(sa.Column(n, tradestore.types.ExactDecimal(), nullable=n == "quote_volume") for n in _NUMBERS),
        sa.Column("trades_count", sa.BigInteger(), nullable=True),
        sa.Column("created_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ohlcv")),
        sa.UniqueConstraint(
            "exchange", "symbol", "timeframe", "timestamp", name=op.f("uq_ohlcv_exchange_symbol_timeframe_timestamp")
        ),
    )


def _set_aside(old: str) -> None:
    """Rename table ``ohlcv`` to ``old``; on PostgreSQL its constraints too, freeing their index names.

    (A database made by ``create_all()`` before revisions were recorded may name them
    otherwise, so they are looked up rather than assumed. SQLite names constraint indexes
    after the table by itself.)
    """
    op.rename_table("ohlcv", old)
    if _sqlite():
        return
    quote = op.get_bind().dialect.identifier_preparer.quote
    names = op.get_bind().execute(
        sa.text("SELECT conname FROM pg_constraint WHERE conrelid = CAST(:table AS regclass)"), {"table": old}
    )
    for (name,) in names.all():
        if "ohlcv" in name:
            renamed = name.replace("ohlcv", old, 1)
            op.execute(f"ALTER TABLE {quote(old)} RENAME CONSTRAINT {quote(name)} TO {quote(renamed)}")


def _statements(sqlite: bool) -> dict[str, str]:
    """The SQL of this revision for one backend, from constant fragments (values travel as parameters)."""
    seconds = "unixepoch({})" if sqlite else "{}"
    old_numbers = ", ".join(f"o.{n}" for n in _NUMBERS)
    new_numbers = ", ".join(f"n.{n}" for n in _NUMBERS)
    rank = "row_number() OVER (ORDER BY time)"
    if sqlite:
        year, month = (f"CAST(strftime('{part}', time, 'unixepoch') AS INTEGER)" for part in ("%Y", "%m"))
        fixed, monthly = f"time - :step * {rank}", f"{year} * 12 + {month} - {rank}"
        stamp = "strftime('%Y-%m-%d %H:%M:%S', n.time, 'unixepoch') || '.000000+00:00'"
    else:
        utc = "timezone('UTC', time)"
        fixed = f"CAST(EXTRACT(EPOCH FROM time) AS BIGINT) - :step * {rank}"
        year, month = (f"CAST(EXTRACT({part} FROM {utc}) AS INTEGER)" for part in ("YEAR", "MONTH"))
        monthly = f"{year} * 12 + {month} - {rank}"
        stamp = "n.time"
    # Runs of consecutive bars (gaps and islands): the island expression is constant along a run.
    runs = (
        "INSERT INTO ohlcv_fetched (series_id, first_bar, last_bar) "
        "SELECT :sid, min(time), max(time) FROM (SELECT time, {} AS island "
        "FROM ohlcv WHERE series_id = :sid) AS runs GROUP BY island"
    )
    return {
        "ledger": (
            "INSERT INTO ohlcv_series (exchange, symbol, timeframe, first_bar, last_bar, bar_count, updated_at) "
            f"SELECT exchange, symbol, timeframe, {seconds.format('min(timestamp)')}, "
            f"{seconds.format('max(timestamp)')}, count(*), max(created_at) "
            "FROM ohlcv_v1 GROUP BY exchange, symbol, timeframe"
        ),
        "up": (
            f"INSERT INTO ohlcv (time, trades_count, series_id, {', '.join(_NUMBERS)}) "
            f"SELECT {seconds.format('o.timestamp')}, o.trades_count, s.id, {old_numbers} FROM ohlcv_v1 o "
            "JOIN ohlcv_series s ON s.exchange = o.exchange AND s.symbol = o.symbol AND s.timeframe = o.timeframe "
            "WHERE o.id > :after AND o.id <= :upto ORDER BY s.id, o.timestamp"
        ),
        "fixed runs": runs.format(fixed),
        "monthly runs": runs.format(monthly),
        "down": (
            "INSERT INTO ohlcv (exchange, symbol, timeframe, timestamp, "
            f"{', '.join(_NUMBERS)}, trades_count, created_at) "
            f"SELECT s.exchange, s.symbol, s.timeframe, {stamp}, {new_numbers}, n.trades_count, s.updated_at "
            "FROM ohlcv_v2 n JOIN ohlcv_series s ON s.id = n.series_id "
            "WHERE n.series_id = :sid AND n.time > :after AND n.time <= :upto ORDER BY n.time"
        ),
    }


def upgrade() -> None:
    bind, progress, sql = op.get_bind(), _progress(), _statements(_sqlite())
    _set_aside("ohlcv_v1")
    _create_v2_tables()
    bind.execute(sa.text(sql["ledger"]))  # one grouped pass over the old unique index
    total = int(bind.execute(sa.text("SELECT count(*) FROM ohlcv_v1")).scalar() or 0)
    low, high = bind.execute(sa.text("SELECT min(id), max(id) FROM ohlcv_v1")).one()
    done = 0
    progress(0, total)
    copy = sa.text(sql["up"])
    after = (low or 0) - 1
    while high is not None and after < high:
        upto = after + _batch()
        done += bind.execute(copy, {"after": after, "upto": upto}).rowcount or 0
        progress(done, total)
        after = upto
    # Bars stored before this revision count as fetched: each run of consecutive bars is one range.
    for series_id, timeframe in bind.execute(sa.text("SELECT id, timeframe FROM ohlcv_series")).all():
        if timeframe == "1M":
            bind.execute(sa.text(sql["monthly runs"]), {"sid": series_id})
        else:
            bind.execute(sa.text(sql["fixed runs"]), {"sid": series_id, "step": _FIXED_SECONDS[timeframe]})
    op.drop_table("ohlcv_v1")


def downgrade() -> None:
    bind, progress, sql = op.get_bind(), _progress(), _statements(_sqlite())
    _set_aside("ohlcv_v2")
    _create_v1_table()
    total = int(bind.execute(sa.text("SELECT count(*) FROM ohlcv_v2")).scalar() or 0)
    done = 0
    progress(0, total)
    copy = sa.text(sql["down"])
    # Batches follow the primary key: each ends at the BATCH-th bar start after the last one.
    boundary = sa.text(
        "SELECT time FROM ohlcv_v2 WHERE series_id = :sid AND time > :after ORDER BY time LIMIT 1 OFFSET :skip"
    )
    bounds = sa.text("SELECT min(time), max(time) FROM ohlcv_v2 WHERE series_id = :sid")
    for (series_id,) in bind.execute(sa.text("SELECT id FROM ohlcv_series ORDER BY id")).all():
        first, last = bind.execute(bounds, {"sid": series_id}).one()
        if first is None:
            continue
        after = _before(first)  # every batch is (after, upto]
        while True:
            upto = bind.execute(boundary, {"sid": series_id, "after": after, "skip": _batch() - 1}).scalar()
            done += (
                bind.execute(copy, {"sid": series_id, "after": after, "upto": last if upto is None else upto}).rowcount
                or 0
            )
            progress(done, total)
            if upto is None:
                break
            after = upto
    op.drop_table("ohlcv_v2")
    op.drop_table("ohlcv_fetched")
    op.drop_table("ohlcv_series")


def _before(moment: Any) -> Any:
    """A value just before a stored bar start (an integer on SQLite, a timestamp on PostgreSQL)."""
    return moment - 1 if isinstance(moment, int) else moment - timedelta(seconds=1)
