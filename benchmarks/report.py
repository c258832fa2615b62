"""The result table: one row per measured operation, formatted as Markdown."""

from __future__ import annotations

from dataclasses import dataclass

#: Units whose figures are rates (higher is better); the others are costs (lower is better).
RATES = ("bars/s",)


@dataclass
class Row:
    """One operation on one backend: tradestore's figure beside the baselines measured in the same run."""

    backend: str
    operation: str
    unit: str
    tradestore: float
    raw: float | None = None
    orm: float | None = None
    goal: str = ""
    met: bool | None = None
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        """tradestore ÷ raw driver, on the row's unit."""
        return None if self.raw is None or not self.raw else self.tradestore / self.raw

    @property
    def orm_factor(self) -> float | None:
        """How many times better tradestore does than the ORM (higher is better either way)."""
        if self.orm is None or not self.orm or not self.tradestore:
            return None
        return self.tradestore / self.orm if self.unit in RATES else self.orm / self.tradestore


def figure(value: float | None, unit: str) -> str:
    """``value`` in ``unit``, rounded for a person to read."""
    if value is None:
        return "—"
    if unit == "bars/s":
        return f"{value:,.0f} bars/s"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:.2f}{unit}"


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| backend | operation | tradestore | raw driver | ratio | ORM (tradestore x) | goal | met |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}x"
        orm = figure(r.orm, r.unit)
        if r.orm_factor is not None:
            orm += f" ({r.orm_factor:.1f}x)"
        met = {True: "yes", False: "**no**", None: ""}[r.met]
        operation = r.operation + (f" — {r.notes}" if r.notes else "")
        lines.append(
            f"| {r.backend} | {operation} | {figure(r.tradestore, r.unit)} | {figure(r.raw, r.unit)} | {ratio} "
            f"| {orm} | {r.goal} | {met} |"
        )
    return "\n".join(lines)
