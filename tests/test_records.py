"""Record files: JSON arrays and JSON Lines, each object with its line; --map and --set."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from tradestore.errors import ValidationError
from tradestore.files.ohlcv import RowError
from tradestore.files.records import Record, assignments, read_records, reshape


def records(text: str) -> list[Record]:
    return list(read_records(io.StringIO(text), "f.json"))


def test_a_json_array_gives_each_object_the_line_it_starts_on() -> None:
    text = '\n\n [\n {"a": 1.10,\n  "b": null},\n\n {"c": [1, 2.5]}\n]\n'
    assert records(text) == [Record(4, {"a": Decimal("1.10"), "b": None}), Record(7, {"c": [1, Decimal("2.5")]})]
    assert records("[]") == [] and records("") == []


def test_json_lines_skip_blank_lines_and_keep_numbering() -> None:
    assert records('\n{"x": 1}\n\n{"y": 0.30000000000000004}\n') == [
        Record(2, {"x": 1}),
        Record(4, {"y": Decimal("0.30000000000000004")}),
    ]


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ('[{"a": 1},\n 3]', "line 2", "expected a JSON object, got 3"),
        ('{"a": 1}\n{bad}\n', "line 2", "not JSON"),
        ('[{"a": 1}\n{"b": 2}]', "line 2", "expected ',' or ']' after an object"),
        ('[{"a": 1},\n', "line 2", "not closed"),
        ('[{"a": 1}] x', "line 1", "text after the end"),
        ('"just text"\n', "line 1", "expected a JSON object"),
    ],
)
def test_what_is_not_an_object_names_the_line(text: str, where: str, reason: str) -> None:
    with pytest.raises(RowError, match=f"f.json {where}: .*{reason}"):
        records(text)


def test_reshape_renames_then_sets() -> None:
    fields = {"asset": "BTC", "entry_size": Decimal("0.1"), "mode": "live"}
    assert reshape(fields, {"asset": "symbol", "entry_size": "quantity"}, {"mode": "paper", "bot_id": "x"}) == {
        "symbol": "BTC", "quantity": Decimal("0.1"), "mode": "paper", "bot_id": "x",
    }  # fmt: skip
    assert reshape(fields, {"missing": "other"}, {}) == fields
    with pytest.raises(ValidationError, match="symbol: given twice"):
        reshape({"asset": "BTC", "symbol": "ETH"}, {"asset": "symbol"}, {})


def test_assignments() -> None:
    assert assignments(["a=b", " c = d=e"], "--map") == {"a": "b", "c": "d=e"}
    assert assignments(["note= two words "], "--set") == {"note": " two words "}
    for bad in ("novalue", "=x"):
        with pytest.raises(ValidationError, match=f"--set: expected NAME=VALUE, got '{bad}'"):
            assignments([bad], "--set")
