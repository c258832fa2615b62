"""Content keys: the SHA-256 of what a row says, so the same record stored twice is one row.

A decision's key covers every field but ``id``, ``created_at`` and ``trade_id`` (linking a
decision to its trade later does not make it another decision); an imported event's key covers
every field but ``id``, and ``created_at`` only when the file gives one. Values are taken after
validation, in the exact text the database stores (Decimal as written, datetimes in UTC), and
object keys are sorted, so the key does not depend on the order of fields in a file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradestore.values import to_utc


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return to_utc("content", value).isoformat()
    raise TypeError(f"{type(value).__name__} is not part of a content key")


def content_key(kind: str, fields: Mapping[str, Any]) -> str:
    """The hex SHA-256 of ``kind`` and ``fields`` in canonical JSON (64 characters)."""
    text = json.dumps([kind, fields], default=_default, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()
