"""Rows for the bulk path: a table's values encoded the way the driver stores them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Table

from tradestore.dialects import Backend
from tradestore.types import ExactDecimal, UTCDateTime
from tradestore.values import json_dumps

Encoder = Callable[[Mapping[str, Any]], tuple[Any, ...]]


def encoder(table: Table, columns: Sequence[str], db: Backend) -> Encoder:
    """A function turning ``{column: value}`` into the bulk path's row of ``columns``.

    Decimals and datetimes are encoded by ``db`` (text on SQLite), JSON objects become JSON
    text, NULL stays NULL and everything else goes to the driver as it is.
    """
    steps: list[tuple[str, Callable[[Any], Any] | None]] = []
    for name in columns:
        kind = table.c[name].type
        if isinstance(kind, ExactDecimal):
            steps.append((name, db.encode_decimal))
        elif isinstance(kind, UTCDateTime):
            steps.append((name, db.encode_datetime))
        elif isinstance(kind, JSON):
            steps.append((name, json_dumps))
        else:
            steps.append((name, None))

    def encode(values: Mapping[str, Any]) -> tuple[Any, ...]:
        row = []
        for name, step in steps:
            value = values[name]
            row.append(value if value is None or step is None else step(value))
        return tuple(row)

    return encode
