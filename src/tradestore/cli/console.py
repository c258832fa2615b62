"""What the command prints: aligned tables for people, JSON for scripts, a progress bar on a terminal."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

#: How often the progress bar may redraw, in seconds.
REDRAW_EVERY = 0.1


class CommandError(Exception):
    """A failure to report as one line, ``error: <message>``, with exit status 1."""


class ReaderGone(Exception):
    """The reader of the command's output left before the end (``tradestore … | head``): not a failure."""


@contextlib.contextmanager
def writing_out() -> Iterator[None]:
    """Around writes to standard output: a reader that has gone raises :class:`ReaderGone`."""
    try:
        yield
    except BrokenPipeError:
        raise ReaderGone from None


def to_json(value: Any) -> str:
    """JSON text; Decimal and datetime become strings (exact), paths their text."""

    def default(item: object) -> object:
        if isinstance(item, Decimal):
            return str(item)
        if isinstance(item, datetime):
            return item.isoformat().replace("+00:00", "Z")
        if isinstance(item, Path):
            return str(item)
        raise TypeError(f"{type(item).__name__} is not JSON serialisable")

    return json.dumps(value, indent=2, default=default, ensure_ascii=False)


def cell(value: Any) -> str:
    """How a value reads in a table."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") + ("Z" if value.utcoffset() is not None else "")
    return str(value)


def human_bytes(size: int | None) -> str:
    """``1.2 MiB``-style sizes."""
    if size is None:
        return "-"
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{size} B"  # pragma: no cover


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows under a header, columns aligned; numbers right-aligned."""
    texts = [[cell(v) for v in row] for row in rows]
    numeric = [
        bool(rows) and all(isinstance(row[i], int | float) or row[i] is None for row in rows)
        for i in range(len(headers))
    ]
    widths = [max([len(h), *(len(r[i]) for r in texts)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))]
        return "  ".join(parts).rstrip()

    return "\n".join([line(list(headers)), line(["-" * w for w in widths]), *(line(r) for r in texts)])


def pairs(items: Mapping[str, Any]) -> str:
    """``name   value`` lines, the names aligned."""
    width = max((len(k) for k in items), default=0)
    return "\n".join(f"{k.ljust(width)}  {cell(v)}".rstrip() for k, v in items.items())


@dataclass
class Progress:
    """A progress bar on stderr, drawn only when stderr is a terminal.

    ``update(done)`` redraws at most every :data:`REDRAW_EVERY` seconds; ``close()`` clears
    the line, so the command's own output starts on a clean line.
    """

    stream: IO[str]
    label: str
    total: int | None = None
    unit: str = ""
    enabled: bool = True
    width: int = 30
    _last: float = 0.0
    _started: float = field(default_factory=time.monotonic)
    _drawn: bool = False

    def update(self, done: int, total: int | None = None) -> None:
        """Show ``done`` units of work (of ``total``, when it is known)."""
        if total is not None:
            self.total = total
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < REDRAW_EVERY and not (self.total and done >= self.total):
            return
        self._last = now
        self.stream.write("\r" + self.render(done, now - self._started))
        self.stream.flush()
        self._drawn = True

    def render(self, done: int, elapsed: float) -> str:
        """The bar's text: ``label [#####-----]  50%  5,000/10,000 rows  1.2 s``."""
        unit = f" {self.unit}" if self.unit else ""
        if self.total:
            fraction = min(done / self.total, 1.0)
            filled = int(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            return f"{self.label} [{bar}] {fraction:4.0%}  {done:,}/{self.total:,}{unit}  {elapsed:.1f} s"
        return f"{self.label} {done:,}{unit}  {elapsed:.1f} s"

    def close(self) -> None:
        """Erase the bar."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


@dataclass
class Console:
    """Where a command writes: ``out`` for results, ``err`` for the progress bar and errors."""

    out: IO[str]
    err: IO[str]
    json: bool = False

    def emit(self, data: Any, human: Callable[[], str]) -> None:
        """Print ``data`` as JSON with ``--json``, else the text ``human()`` makes."""
        with writing_out():
            self.out.write((to_json(data) if self.json else human()) + "\n")

    def progress(self, label: str, total: int | None = None, unit: str = "") -> Progress:
        """A :class:`Progress` that draws only when stderr is a terminal."""
        isatty = getattr(self.err, "isatty", None)
        return Progress(self.err, label, total, unit, enabled=bool(callable(isatty) and isatty()))
