"""Bringing a bot's history in: trades, decisions, events and equity from record files, each all or nothing.

:func:`import_records` turns the records of one file into domain objects (every one validated),
skips those already stored and writes the rest through the bulk path in one transaction. What
"already stored" means, per kind:

* trades: the same ``exchange`` and ``trade_id`` (the table's unique key);
* decisions: the same content key (see :mod:`tradestore.repositories.content`);
* events: the same content key, kept in ``system_events.content_key``;
* equity: the same ``bot_id``, ``mode`` and ``timestamp`` (the table's unique key).

So importing a file twice adds nothing the second time, and a file that overlaps an earlier
one adds only what is new. A stored row is kept as it is, never replaced by the file's: for
equity too, although ``EquityRepository.record_many`` replaces a stored key, because an import
brings history in and does not rewrite it (a key given twice in one file keeps its first
record). Fields the table has no column for are kept, not dropped: in ``metadata`` (trades,
decisions, equity) or ``details`` (events); the report lists their names.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any, NamedTuple, get_type_hints

from sqlalchemy import Table, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from tradestore.dialects import backend
from tradestore.domain import Decision, EquitySnapshot, SystemEvent, Trade
from tradestore.errors import ValidationError
from tradestore.files.ohlcv import RowError, parse_timestamp
from tradestore.files.records import Record, reshape
from tradestore.models import DecisionModel, EquitySnapshotModel, SystemEventModel, TradeModel
from tradestore.repositories.base import DEFAULT_EXCHANGE
from tradestore.repositories.content import content_key
from tradestore.repositories.decisions import decision_key
from tradestore.repositories.equity import EquityRepository
from tradestore.repositories.trades import TradeRepository
from tradestore.values import chunked

#: What ``tradestore import KIND`` accepts.
KINDS = ("trades", "decisions", "events", "equity")
#: Records validated and written per round trip.
CHUNK_RECORDS = 1_000
#: Trade sides as bots write them: an order's side names the position it opens.
_SIDES = {"buy": "long", "sell": "short", "long": "long", "short": "short"}


@dataclass
class ImportReport:
    """What one file brought: records read, rows written, rows already stored, records rejected."""

    file: str
    kind: str
    records: int = 0
    written: int = 0
    already_stored: int = 0
    rejected: int = 0
    #: Field names of the file kept in ``metadata``/``details`` (no column of their own).
    kept_in_metadata: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Kind:
    cls: type
    table: Table
    extra: str  # the JSON field that keeps fields without a column
    fixed: tuple[str, ...]  # fields never taken from a file (the database assigns them)


_KINDS = {
    "trades": _Kind(Trade, TradeModel.__table__, "metadata", ("id",)),  # type: ignore[arg-type]
    "decisions": _Kind(Decision, DecisionModel.__table__, "metadata", ("id",)),  # type: ignore[arg-type]
    "events": _Kind(SystemEvent, SystemEventModel.__table__, "details", ("id",)),  # type: ignore[arg-type]
    "equity": _Kind(EquitySnapshot, EquitySnapshotModel.__table__, "metadata", ("id",)),  # type: ignore[arg-type]
}


def _field_of(message: str, names: Iterable[str]) -> str | None:
    """The field a validation message starts with (``"price: not a number"`` → ``price``)."""
    head = message.split(":", 1)[0].strip()
    return head if head in names else None


def _time(name: str, value: Any) -> Any:
    """A time as files write it: ISO-8601 text or epoch seconds/milliseconds; anything else as it is."""
    if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
        try:
            return parse_timestamp(str(value))
        except ValidationError:
            raise ValidationError(f"{name}: cannot read {value!r} as ISO-8601 or epoch seconds/milliseconds") from None
    return value


class _Builder:
    """Turns the fields of one record into the keyword arguments of a dataclass, or says why not."""

    def __init__(self, kind: _Kind) -> None:
        self.kind = kind
        self.hints = get_type_hints(kind.cls)
        parameters = inspect.signature(kind.cls).parameters  # what the constructor takes, and which it needs
        self.fields = {name: parameter for name, parameter in parameters.items()}
        self.required = [name for name, parameter in parameters.items() if parameter.default is parameter.empty]
        self.extras: set[str] = set()

    def arguments(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for name, value in fields.items():
            if name not in self.fields or name in self.kind.fixed:
                extra[name] = value
                continue
            hint = str(self.hints[name])
            if "datetime" in hint:
                value = _time(name, value)
            elif "str" in hint and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # ids written as numbers
            arguments[name] = value
        if extra:
            self.extras.update(extra)
            kept = arguments.get(self.kind.extra)
            if kept is not None and not isinstance(kept, dict):
                raise ValidationError(f"{self.kind.extra}: expected a JSON object (dict), got {kept!r}")
            arguments[self.kind.extra] = {**(kept or {}), **extra}
        return arguments

    def build(self, arguments: dict[str, Any]) -> Any:
        missing = [name for name in self.required if arguments.get(name) is None]
        if missing:
            raise ValidationError(f"{missing[0]}: missing (required; rename a field with --map or give one with --set)")
        return self.kind.cls(**arguments)


@dataclass
class _Rejects:
    """Where rejected records go with ``--skip-invalid`` (``None``: the first one stops the file)."""

    stream: IO[str] | None

    def add(
        self, file: str, record: Record, error: ValidationError, names: Iterable[str], shaped: Mapping[str, Any]
    ) -> None:
        """One JSON line: the file, line, field and its value (after ``--map``/``--set``), the reason, the record."""
        message = error.reason if isinstance(error, RowError) else str(error)
        name = _field_of(message, names)
        entry = {
            "file": file,
            "line": record.line,
            "field": name,
            "value": shaped.get(name) if name else None,
            "reason": message,
            "record": record.fields,
        }
        assert self.stream is not None
        self.stream.write(json.dumps(entry, default=str, ensure_ascii=False) + "\n")


async def import_records(
    session: AsyncSession,
    kind: str,
    records: Iterator[Record],
    file: str,
    *,
    renames: Mapping[str, str] | None = None,
    fills: Mapping[str, Any] | None = None,
    rejects: IO[str] | None = None,
    exchange: str = DEFAULT_EXCHANGE,
    chunk_records: int = CHUNK_RECORDS,
) -> ImportReport:
    """Validate and store the records of one file in ``session``'s transaction.

    Args:
        session: the transaction the whole file is written in (commit it to keep the file).
        kind: one of :data:`KINDS`.
        records: the file's records (see :func:`tradestore.files.records.read_records`).
        file: the file's name, for error messages and the rejects.
        renames: ``--map`` renames, old name → new name.
        fills: ``--set`` values given to every record.
        rejects: with ``--skip-invalid``, where each rejected record goes (a JSON line with the
            file, line, field, value, reason and the record); without it the first bad record
            raises.
        exchange: the exchange of records that name none.
        chunk_records: records validated and written per round trip.

    Returns:
        What was read, written, found already stored and rejected.

    Raises:
        RowError: naming the file, the line, the field and the value (without ``rejects``).
        ValidationError: ``kind`` is unknown.
    """
    if kind not in _KINDS:
        raise ValidationError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    spec = _KINDS[kind]
    builder = _Builder(spec)
    report = ImportReport(file, kind)
    sink = _Rejects(rejects)
    seen: set[Any] = set()
    writer = _WRITERS[kind]
    for chunk in chunked(records, chunk_records):
        ready: list[_Ready] = []
        for record in chunk:
            report.records += 1
            shaped = record.fields
            try:
                shaped = reshape(record.fields, renames or {}, fills or {})
                arguments = builder.arguments(shaped)
                _defaults(kind, arguments, exchange)
                # a decision's trade_id in a file is the trade's own id, resolved when written
                reference = arguments.pop("trade_id", None) if kind == "decisions" else None
                ready.append(_Ready(record, builder.build(arguments), None if reference is None else str(reference)))
            except ValidationError as exc:
                if rejects is None:
                    # the records before this one first: one of them may fail as it is written
                    # (a decision naming an unknown trade), and the first bad line is the one reported
                    await writer(session, ready, seen, report, None, builder)
                    raise RowError(file, f"line {record.line}", _with_value(str(exc), shaped, builder)) from None
                sink.add(file, record, exc, builder.fields, shaped)
                report.rejected += 1
        await writer(session, ready, seen, report, sink if rejects is not None else None, builder)
    report.kept_in_metadata = sorted(builder.extras)
    return report


def _with_value(message: str, shaped: Mapping[str, Any], builder: _Builder) -> str:
    """The message, with the field's value from the file when the message does not show it already."""
    name = _field_of(message, builder.fields)
    if name is None or name not in shaped:
        return message
    value = shaped[name]
    shown = repr(str(value) if isinstance(value, Decimal) else value)
    return message if shown in message else f"{message} (the file has {name}={shown})"


def _defaults(kind: str, arguments: dict[str, Any], exchange: str) -> None:
    """What a file may leave out or write its own way.

    The exchange (the manager's); an event's severity in capitals; a trade's action (close when
    it has an exit time, else open) and its side as an order's (buy is long, sell is short).
    """
    if kind in ("trades", "decisions") and arguments.get("exchange") is None:
        arguments["exchange"] = exchange
    if kind == "events" and isinstance(arguments.get("severity"), str):
        arguments["severity"] = arguments["severity"].lower()  # loggers write ERROR, WARNING
    if kind == "trades":
        side = arguments.get("side")
        if isinstance(side, str) and side.lower() in _SIDES:
            arguments["side"] = _SIDES[side.lower()]
        if arguments.get("action") is None:
            arguments["action"] = "close" if arguments.get("exit_time") is not None else "open"


class _Ready(NamedTuple):
    """A valid record: where it came from, the object it makes, and (decisions) the trade it names."""

    record: Record
    value: Any
    trade: str | None


Writer = Callable[[AsyncSession, list[_Ready], set[Any], ImportReport, "_Rejects | None", _Builder], Any]


async def _write(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn = await session.connection()
        await backend(conn.dialect).write_rows(conn, table, rows)


Store = Callable[[AsyncSession, list[Any]], Awaitable[Any]]


def _unique(table: Table, key: tuple[str, ...], store: Store | None = None) -> Writer:
    """A writer skipping the objects whose unique ``key`` (column names) is stored or earlier in the file.

    The new objects go to ``store`` (a repository's bulk call, which knows the table's rules),
    else straight into ``table`` through the bulk path.
    """

    async def write(
        session: AsyncSession,
        ready: list[_Ready],
        seen: set[Any],
        report: ImportReport,
        rejects: _Rejects | None,
        builder: _Builder,
    ) -> None:
        columns = tuple(table.c[name] for name in key)
        wanted = list({tuple(getattr(value, name) for name in key) for _, value, _ in ready})
        stored: set[tuple[Any, ...]] = set()
        for part in chunked(wanted, 500):
            found = await session.execute(select(*columns).where(tuple_(*columns).in_(part)))
            stored.update(tuple(row) for row in found)
        now = datetime.now(UTC)
        new, rows = [], []
        for _, value, _ in ready:
            identity = tuple(getattr(value, name) for name in key)
            if identity in stored or identity in seen:
                report.already_stored += 1
                continue
            seen.add(identity)
            new.append(value)
            values = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.name != "id"}
            for stamp in ("created_at", "updated_at"):  # the store's own times, where the table keeps them
                if stamp in table.c and values.get(stamp) is None:
                    values[stamp] = now
            rows.append(values)
        if store is not None:
            if new:
                await store(session, new)
        else:
            await _write(session, table, rows)
        report.written += len(new)

    return write


async def _by_content_key(
    session: AsyncSession, table: Table, keyed: list[tuple[str, dict[str, Any]]], seen: set[Any], report: ImportReport
) -> None:
    """Write the rows whose content key is neither stored nor earlier in the file."""
    stored: set[str] = set()
    for part in chunked([key for key, _ in keyed], 500):
        found = await session.execute(select(table.c.content_key).where(table.c.content_key.in_(part)))
        stored.update(key for (key,) in found)
    rows = []
    for key, values in keyed:
        if key in stored or key in seen:
            report.already_stored += 1
            continue
        seen.add(key)
        rows.append(values)
    await _write(session, table, rows)
    report.written += len(rows)


async def _write_decisions(
    session: AsyncSession,
    ready: list[_Ready],
    seen: set[Any],
    report: ImportReport,
    rejects: _Rejects | None,
    builder: _Builder,
) -> None:
    # A file's trade_id is the trade's own id (Trade.trade_id, as the trades file had it): find
    # the database id of that trade on the decision's exchange.
    t = TradeModel.__table__.c
    wanted = {(d.exchange, name) for _, d, name in ready if name is not None}
    ids: dict[tuple[str, str], int] = {}
    for exchange in {k[0] for k in wanted}:
        names = [k[1] for k in wanted if k[0] == exchange]
        for part in chunked(names, 500):
            found = await session.execute(select(t.trade_id, t.id).where(t.exchange == exchange, t.trade_id.in_(part)))
            ids.update(((exchange, name), db_id) for name, db_id in found)
    now = datetime.now(UTC)
    keyed = []
    for record, decision, name in ready:
        if name is not None:
            db_id = ids.get((decision.exchange, name))
            if db_id is None:
                error = ValidationError(
                    f"trade_id: no trade with trade_id {name!r} on {decision.exchange} (import the trades first)"
                )
                if rejects is None:
                    raise RowError(report.file, f"line {record.line}", str(error))
                rejects.add(report.file, record, error, builder.fields, {"trade_id": name})
                report.rejected += 1
                continue
            decision = dataclasses.replace(decision, trade_id=db_id)
        values = {f.name: getattr(decision, f.name) for f in dataclasses.fields(decision) if f.name != "id"}
        values["created_at"] = decision.created_at or now
        values["content_key"] = key = decision_key(values)
        keyed.append((key, values))
    await _by_content_key(session, DecisionModel.__table__, keyed, seen, report)  # type: ignore[arg-type]


async def _write_events(
    session: AsyncSession,
    ready: list[_Ready],
    seen: set[Any],
    report: ImportReport,
    rejects: _Rejects | None,
    builder: _Builder,
) -> None:
    now = datetime.now(UTC)
    keyed = []
    for _, event, _ in ready:
        values = {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name != "id"}
        keyed_fields = {k: v for k, v in values.items() if k != "created_at" or v is not None}
        values["content_key"] = key = content_key("event", keyed_fields)
        values["created_at"] = event.created_at or now
        keyed.append((key, values))
    await _by_content_key(session, SystemEventModel.__table__, keyed, seen, report)  # type: ignore[arg-type]


_WRITERS: dict[str, Writer] = {
    "trades": _unique(
        TradeModel.__table__,  # type: ignore[arg-type]
        ("exchange", "trade_id"),
        lambda session, trades: TradeRepository(session).insert_many(trades),
    ),
    "decisions": _write_decisions,
    "events": _write_events,
    # only new keys reach record_many, so its replacing a stored key never happens here
    "equity": _unique(
        EquitySnapshotModel.__table__,  # type: ignore[arg-type]
        ("bot_id", "mode", "timestamp"),
        lambda session, snapshots: EquityRepository(session).record_many(snapshots),
    ),
}
