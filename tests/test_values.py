"""tradestore.values: what callers pass becomes Decimal, aware UTC time, storable text and JSON, or an error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from tradestore.errors import ValidationError
from tradestore.values import (
    BIGINT_MAX,
    MAX_JSON_DEPTH,
    since,
    to_count,
    to_decimal,
    to_id,
    to_json_object,
    to_optional_utc,
    to_text,
    to_utc,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (np.float64(0.1), "0.1"),  # what DataFrame.iterrows() yields: its repr is 'np.float64(0.1)'
        (np.float64(42000.5), "42000.5"),
        (np.int64(12), "12"),
        (np.int32(-7), "-7"),
        (np.float32(0.1), "0.1"),  # its own shortest text, not float32's binary expansion
        (0.1, "0.1"),
        (7, "7"),
        (" 1.50 ", "1.50"),
    ],
)
def test_numbers_of_every_kind_become_exact_decimals(given: object, expected: str) -> None:
    result = to_decimal("price", given)
    assert type(result) is Decimal and str(result) == expected


@pytest.mark.parametrize("bad", [np.float64("nan"), float("inf"), np.bool_(True), True, "abc", [1], None])
def test_non_numbers_and_non_finite_numbers_name_the_field(bad: object) -> None:
    with pytest.raises(ValidationError, match="price"):
        to_decimal("price", bad)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("1E+5", "100000"), ("-0", "0"), ("-0.00", "0.00"), ("1.50", "1.50"), ("1E-7", "1E-7"), (-0.0, "0.0")],
)
def test_decimals_take_the_one_form_both_backends_return(given: str | float, expected: str) -> None:
    """PostgreSQL writes out positive exponents and has no negative zero: so does to_decimal, for both backends."""
    result = to_decimal("x", given)
    assert str(result) == expected and result == Decimal(given if isinstance(given, str) else repr(given))


def test_decimals_numeric_cannot_hold_are_refused_on_both_backends() -> None:
    with pytest.raises(ValidationError, match="digits before the point"):
        to_decimal("x", "1E+131072")
    with pytest.raises(ValidationError, match="digits after the point"):
        to_decimal("x", "1E-16384")
    assert to_decimal("x", "1E+1000") == 10**1000


def test_nat_is_no_time_in_optional_fields_and_refused_in_required_ones() -> None:
    assert to_optional_utc("exit_time", pd.NaT) is None
    with pytest.raises(ValidationError, match="entry_time"):
        to_utc("entry_time", pd.NaT)


def test_pandas_timestamps_become_plain_aware_utc_datetimes() -> None:
    moment = to_utc("t", pd.Timestamp("2024-01-01 03:00", tz="Europe/Berlin"))
    assert type(moment) is datetime and moment == datetime(2024, 1, 1, 2, tzinfo=UTC) and moment.tzinfo is UTC
    assert to_utc("t", datetime(2024, 1, 1)) == datetime(2024, 1, 1, tzinfo=UTC)  # naive is UTC


def test_a_time_beyond_year_9999_in_utc_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="t:"):
        to_utc("t", datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))))


def test_text_both_backends_store() -> None:
    assert to_text("symbol", "BTC/USDT") == "BTC/USDT"
    for bad in ("", "a\x00b", "lone \udc80 surrogate", 5):
        with pytest.raises(ValidationError, match="symbol"):
            to_text("symbol", bad)
    assert to_text("message", "", empty=True) == ""


def test_counts_and_ids_fit_a_bigint_and_accept_numpy_integers() -> None:
    assert to_count("limit", np.int64(5)) == 5 and type(to_count("limit", np.int64(5))) is int
    assert to_count("limit", BIGINT_MAX) == BIGINT_MAX
    for bad in (2**63, -1, True, 1.0, np.float64(1)):
        with pytest.raises(ValidationError, match="limit"):
            to_count("limit", bad)
    assert to_id("id", np.int32(3)) == 3
    with pytest.raises(ValidationError, match="id"):
        to_id("id", 2**70)


@pytest.mark.parametrize("bad", [1_000_000, 1_000_000_000, float("nan"), float("inf"), -1, "30", True])
def test_days_out_of_range_name_the_argument(bad: object) -> None:
    with pytest.raises(ValidationError, match="days"):
        since("days", bad, datetime.now(UTC))


def test_days_of_any_number_type() -> None:
    assert since("days", 3, datetime(2024, 1, 4, tzinfo=UTC)) == datetime(2024, 1, 1, tzinfo=UTC)
    assert since("days", np.float64(1.5), datetime(2024, 1, 2, tzinfo=UTC)) == datetime(2023, 12, 31, 12, tzinfo=UTC)


def test_json_text_holding_backslash_u0000_is_not_a_nul() -> None:
    assert to_json_object("details", {"path": "C:\\u0000"}) == {"path": "C:\\u0000"}
    with pytest.raises(ValidationError, match="NUL"):
        to_json_object("details", {"text": "a\x00b"})
    with pytest.raises(ValidationError, match="NUL"):
        to_json_object("details", {"a\x00": 1})


def test_json_refuses_surrogates_deep_nesting_and_nan_naming_the_field() -> None:
    nested: dict[str, object] = {}
    inner = nested
    for _ in range(MAX_JSON_DEPTH + 1):
        inner["x"] = inner = {}
    for bad in ({"s": "\udc80"}, nested, {"f": float("nan")}, {"o": object()}):
        with pytest.raises(ValidationError, match="details"):
            to_json_object("details", bad)
    deep: dict[str, object] = {"x": {}}
    for _ in range(10_000):  # far past Python's recursion limit: still a ValidationError
        deep = {"x": deep}
    with pytest.raises(ValidationError, match="nested"):
        to_json_object("details", deep)


def test_json_numbers_take_the_form_jsonb_keeps() -> None:
    got = to_json_object("details", {"big": 1e16, "huge": 1e23, "neg0": -0.0, "half": 0.5, "tiny": 1.5e-7, "n": 3})
    assert got == {"big": 10**16, "huge": 10**23, "neg0": 0.0, "half": 0.5, "tiny": 1.5e-7, "n": 3}
    assert type(got["big"]) is int and str(got["neg0"]) == "0.0"
    assert json.loads(json.dumps(got)) == got


def test_numpy_scalars_inside_a_json_object_are_the_numbers_they_hold() -> None:
    """A DataFrame row as signals (``df.iloc[-1].to_dict()``) holds numpy scalars, not Python numbers."""
    found = to_json_object("signals", {"rsi": np.float32(55.5), "n": np.int64(3), "up": np.bool_(True)})
    assert found == {"rsi": 55.5, "n": 3, "up": True}
    assert found is not None and type(found["n"]) is int and type(found["up"]) is bool
    with pytest.raises(ValidationError, match="signals"):
        to_json_object("signals", {"rsi": np.float64("nan")})
