"""System events: what a bot wants to remember, with a severity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tradestore.domain.common import SEVERITIES, _optional_id
from tradestore.errors import ValidationError
from tradestore.values import (
    to_json_object,
    to_optional_text,
    to_optional_utc,
    to_text,
)


@dataclass
class SystemEvent:
    """Something worth remembering, with a severity and optional JSON ``details``."""

    event_type: str
    severity: str
    message: str
    details: dict[str, Any] | None = None
    symbol: str | None = None
    trade_id: str | None = None
    id: int | None = None
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        self.event_type = to_text("event_type", self.event_type)
        self.severity = to_text("severity", self.severity, choices=SEVERITIES)
        if not isinstance(self.message, str) or "\x00" in self.message:
            raise ValidationError(f"message: expected a string without NUL bytes, got {self.message!r}")
        self.details = to_json_object("details", self.details)
        self.symbol = to_optional_text("symbol", self.symbol)
        self.trade_id = to_optional_text("trade_id", self.trade_id)
        self.id = _optional_id(self.id)
        self.created_at = to_optional_utc("created_at", self.created_at)
