"""Record files: a JSON array of objects, or JSON Lines (one object a line), as a bot's history is kept.

:func:`read_records` yields each object with the line it starts on, numbers read as exact
``Decimal`` (every digit in the file is kept); a line that is not JSON, or a value that is not
an object, raises a :class:`~tradestore.files.ohlcv.RowError` naming the file and the line.
:func:`reshape` applies ``--map old=new`` renames and ``--set field=value`` fills.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import IO, Any, NamedTuple

from tradestore.errors import ValidationError
from tradestore.files.ohlcv import CountingLines, Progress, RowError

_DECODER = json.JSONDecoder(parse_float=Decimal)
_SPACE = " \t\r\n"


class Record(NamedTuple):
    """One object of a record file and the line it starts on."""

    line: int
    fields: dict[str, Any]


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    return pos


def _object(value: Any, file: str, line: int) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RowError(file, f"line {line}", f"expected a JSON object, got {json.dumps(value, default=str)[:80]}")
    return value


def _array(text: str, file: str, progress: Progress | None) -> Iterator[Record]:
    """The objects of a JSON array, each with the line it starts on."""
    pos, line, counted = _skip_space(text, 0) + 1, 1, 0
    line += text.count("\n", 0, pos)
    counted = pos
    while True:
        pos = _skip_space(text, pos)
        line += text.count("\n", counted, pos)
        counted = pos
        if pos >= len(text):
            raise RowError(file, f"line {line}", "the JSON array is not closed (expected ']')")
        if text[pos] == "]":
            if _skip_space(text, pos + 1) != len(text):
                raise RowError(file, f"line {line}", "text after the end of the JSON array")
            if progress is not None:
                progress(len(text))
            return
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise RowError(file, f"line {exc.lineno}", f"not JSON: {exc.msg}") from None
        yield Record(line, _object(value, file, line))
        if progress is not None:
            progress(end)
        pos = _skip_space(text, end)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos >= len(text) or text[pos] != "]":
            line += text.count("\n", counted, pos)
            raise RowError(file, f"line {line}", "expected ',' or ']' after an object")


def read_records(stream: IO[str], file: str, *, progress: Progress | None = None) -> Iterator[Record]:
    """The objects of ``stream``: a JSON array if it starts with ``[``, else JSON Lines.

    Args:
        stream: the open file (or standard input).
        file: its name in error messages.
        progress: called with the characters read so far.

    Raises:
        RowError: naming the file and the line, at the first text that is not a JSON object.
    """
    lead = ""  # the blank space before the first character that tells the format
    first = stream.read(1)
    while first and first in _SPACE:
        lead += first
        first = stream.read(1)
    if first == "[":
        yield from _array(lead + "[" + stream.read(), file, progress)
        return
    lines = CountingLines(stream, progress)
    for number, text in enumerate(_joined(lead, first, lines), start=1):
        if not text.strip():
            continue
        try:
            value = _DECODER.decode(text)
        except json.JSONDecodeError as exc:
            raise RowError(file, f"line {number}", f"not JSON: {exc.msg}") from None
        yield Record(number, _object(value, file, number))


def _joined(lead: str, first: str, lines: CountingLines) -> Iterator[str]:
    """The lines of a stream whose blank ``lead`` and ``first`` character were already read."""
    for _ in range(lead.count("\n")):
        yield ""
    iterator = iter(lines)
    yield first + next(iterator, "")
    yield from iterator


def assignments(texts: Sequence[str], option: str) -> dict[str, str]:
    """``["a=b", …]`` as ``{"a": "b"}``; raises ``ValidationError`` for text without ``=`` or a name."""
    found: dict[str, str] = {}
    for text in texts:
        name, equals, value = text.partition("=")
        if not equals or not name.strip():
            raise ValidationError(f"{option}: expected NAME=VALUE, got {text!r}")
        found[name.strip()] = value.strip() if option == "--map" else value
    return found


def reshape(fields: dict[str, Any], renames: Mapping[str, str], fills: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` with ``renames`` (old → new) applied, then ``fills`` set on every record.

    Raises:
        ValidationError: a record holds both a field and the name it is renamed to.
    """
    result = dict(fields)
    for old, new in renames.items():
        if old in result and old != new:
            if new in result:
                raise ValidationError(f"{new}: given twice, as {old!r} (renamed by --map) and as {new!r}")
            result[new] = result.pop(old)
    result.update(fills)
    return result
