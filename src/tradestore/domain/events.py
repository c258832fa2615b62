"""System events: what a bot wants to remember, with a severity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tradestore.domain.common import SEVERITIES, _optional_id
from tradestore.values import (
    IntInput,
    to_json_object,
    to_optional_text,
    to_optional_utc,
    to_text,
)


@dataclass(init=False)
class SystemEvent:
    """Something worth remembering, with a severity and optional JSON ``details``."""

    event_type: str
    severity: str
    message: str
    details: dict[str, Any] | None
    symbol: str | None
    trade_id: str | None
    id: int | None
    created_at: datetime | None

    def __init__(
        self,
        event_type: str,
        severity: str,
        message: str,
        details: dict[str, Any] | None = None,
        symbol: str | None = None,
        trade_id: str | None = None,
        id: IntInput | None = None,
        created_at: datetime | None = None,
    ) -> None:
        self.event_type = to_text("event_type", event_type)
        self.severity = to_text("severity", severity, choices=SEVERITIES)
        self.message = to_text("message", message, empty=True)
        self.details = to_json_object("details", details)
        self.symbol = to_optional_text("symbol", symbol)
        self.trade_id = to_optional_text("trade_id", trade_id)
        self.id = _optional_id(id)
        self.created_at = to_optional_utc("created_at", created_at)
