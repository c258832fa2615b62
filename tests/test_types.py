"""The column types' hooks, against real dialect objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.dialects.sqlite import aiosqlite

from tradestore.types import ExactDecimal, UTCDateTime

SQLITE, PG = aiosqlite.dialect(), asyncpg.dialect()  # type: ignore[no-untyped-call]


def test_decimal_is_text_on_sqlite_and_numeric_on_postgres() -> None:
    t = ExactDecimal()
    assert t.process_bind_param(Decimal("123456789012.12345678"), SQLITE) == "123456789012.12345678"
    assert t.process_bind_param(0.1, SQLITE) == "0.1"
    assert t.process_bind_param(Decimal("0.1"), PG) == Decimal("0.1")
    assert t.process_result_value("0.00000001", SQLITE) == Decimal("0.00000001")
    assert str(t.load_dialect_impl(SQLITE).compile(dialect=SQLITE)) == "VARCHAR COLLATE decimal"
    assert str(t.load_dialect_impl(PG).compile(dialect=PG)) == "NUMERIC"


def test_datetime_is_fixed_width_utc_text_on_sqlite() -> None:
    t = UTCDateTime()
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert t.process_bind_param(moment, SQLITE) == "2024-01-02 01:04:05.000000+00:00"
    assert t.process_bind_param(datetime(2024, 1, 2), SQLITE) == "2024-01-02 00:00:00.000000+00:00"
    assert t.process_bind_param(moment, PG) == datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC)
    back = t.process_result_value("2024-01-02 01:04:05.000000+00:00", SQLITE)
    assert back == datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC) and back is not None and back.tzinfo is UTC


def test_a_legacy_nat_text_reads_as_no_time() -> None:
    """Older versions let pandas' NaT through and SQLite stored the text 'NaT': it must not make a table unreadable."""
    assert UTCDateTime().process_result_value("NaT", SQLITE) is None
