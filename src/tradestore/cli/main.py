"""The ``tradestore`` command: argument parsing, running a subcommand, and turning failures into one line.

Exit status: 0 on success (also when the reader of the output leaves early, as ``head`` does),
1 on a failure (reported as ``error: <reason>`` on stderr), 2 for a usage error, 130 when
interrupted. Passwords given in any URL never reach the output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from tradestore import __version__, timeframes
from tradestore.admin.history import KINDS
from tradestore.admin.transfer import DEFAULT_CHUNK_ROWS
from tradestore.cli import bot_commands, file_commands, report_commands, schema_commands, upkeep_commands
from tradestore.cli.arguments import age, duration, moment, number, positive, timeframe
from tradestore.cli.console import CommandError, Console, ReaderGone, writing_out
from tradestore.domain import BOT_STATUSES, MODES
from tradestore.errors import ConfigurationError, StorageError
from tradestore.files.ohlcv import ALIGNMENTS, FORMATS
from tradestore.urls import DEFAULT_URL, ENV_VAR, resolve, scrub

Handler = Callable[[argparse.Namespace, Console], Coroutine[Any, Any, int]]
log = logging.getLogger("tradestore")

DESCRIPTION = """\
tradestore: look after a trading bot's database (SQLite or PostgreSQL).

Every command takes --url (default: $TRADESTORE_DATABASE_URL, else sqlite:///data/tradestore.db),
prints a table (or JSON with --json) and exits non-zero with a one-line reason when it fails.
"""


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument(
        "--url", default=None, help=f"database URL (default: ${ENV_VAR}, else {DEFAULT_URL.replace('+aiosqlite', '')})"
    )
    group.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")
    group.add_argument("-v", "--verbose", action="count", default=0, help="log what happens (twice: debug)")
    return common


def _series_arguments(parser: argparse.ArgumentParser, *, positional: bool) -> None:
    if positional:
        parser.add_argument("exchange", help="e.g. binance")
        parser.add_argument("symbol", help="e.g. BTCUSDT")
        parser.add_argument("timeframe", type=timeframe, help=f"one of {' '.join(timeframes.TIMEFRAMES)}")
    else:
        parser.add_argument("--exchange", required=True, help="e.g. binance")
        parser.add_argument("--symbol", required=True, help="e.g. BTCUSDT")
        parser.add_argument(
            "--timeframe", required=True, type=timeframe, help=f"one of {' '.join(timeframes.TIMEFRAMES)}"
        )


def _window_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", type=moment, help="first bar start, inclusive (ISO-8601 or epoch s/ms; UTC)")
    parser.add_argument("--end", type=moment, help="last bar start, inclusive")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every subcommand with its arguments and handler (``args.handler``)."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog="tradestore", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"tradestore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, handler: Handler, text: str
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, parents=[common], help=text, description=text)
        sub.set_defaults(handler=handler)
        return sub

    db = commands.add_parser("db", help="schema revisions: upgrade, downgrade, current, check")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    sub = command(db_commands, "upgrade", schema_commands.upgrade, "upgrade the schema (to head by default)")
    sub.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    sub = command(db_commands, "downgrade", schema_commands.downgrade, "downgrade the schema to REV (base: no schema)")
    sub.add_argument("revision", metavar="REV", help="target revision, e.g. base or -1")
    sub.add_argument("--yes", action="store_true", help="go ahead even though the database holds rows")
    command(db_commands, "current", schema_commands.current, "show the database's revision and this code's head")
    command(db_commands, "check", schema_commands.check, "fail unless the schema is at head and matches the models")

    command(commands, "health", report_commands.health, "is the database up, how fast, and is its schema current")
    command(commands, "stats", report_commands.stats, "size, schema, rows per table, number of candle series")
    sub = command(commands, "series", report_commands.series, "every stored candle series, its span and its gaps")
    sub.add_argument("--exchange", help="only this exchange")
    sub = command(commands, "gaps", report_commands.gaps, "the missing bars of one candle series")
    _series_arguments(sub, positional=True)
    _window_arguments(sub)

    sub = command(commands, "bots", bot_commands.bots, "every bot: status, mode, heartbeat age; stale ones marked")
    sub.add_argument("--status", choices=BOT_STATUSES, help="only bots with this status")
    sub.add_argument("--mode", choices=MODES, help="only bots of this mode")
    sub.add_argument(
        "--stale-after", type=duration, default=timedelta(minutes=5), metavar="AGE",
        help="a running bot silent for longer is stale (default 5m)",
    )  # fmt: skip
    sub = command(commands, "performance", bot_commands.performance, "performance figures of one bot's equity curve")
    sub.add_argument("bot_id", metavar="BOT_ID")
    sub.add_argument("--mode", choices=MODES, help="default: the one mode the bot has equity in")
    sub.add_argument("--start", type=moment, help="first snapshot time, inclusive (ISO-8601 or epoch s/ms; UTC)")
    sub.add_argument("--end", type=moment, help="last snapshot time, inclusive")
    sub.add_argument("--periods-per-year", type=number, default=Decimal(365), help="annualisation (default 365)")
    sub.add_argument("--risk-free-rate", type=number, default=Decimal(0), help="yearly, e.g. 0.04 (default 0)")
    sub.add_argument("--plot", type=Path, metavar="FILE.png", help="draw the equity curve and drawdown (matplotlib)")

    imports = commands.add_parser("import", help="load candles, trades, decisions, events or equity from files")
    import_kinds = imports.add_subparsers(dest="kind", required=True, metavar="KIND")
    sub = command(
        import_kinds, "ohlcv", file_commands.import_ohlcv, "upsert candles from CSV, ccxt JSON or Parquet files"
    )
    sub.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _series_arguments(sub, positional=False)
    sub.add_argument(
        "--format", choices=FORMATS, help="default: ccxt-json for .json, parquet for .parquet/.pq, else csv"
    )
    sub.add_argument(
        "--align",
        choices=ALIGNMENTS,
        default="start",
        help="the file's times are bar starts (default) or bar ends (moved back to the start of their bar)",
    )
    sub.add_argument("--chunk-rows", type=positive, default=10_000, help="bars per upsert (default 10000)")
    for kind in KINDS:
        sub = command(
            import_kinds, kind, file_commands.import_history, f"add {kind} from JSON or JSON Lines files (- for stdin)"
        )
        sub.add_argument("files", nargs="+", metavar="FILE", help="a JSON array of objects or JSON Lines; - is stdin")
        sub.add_argument(
            "--map", action="append", default=[], metavar="OLD=NEW", help="rename a field, e.g. asset=symbol"
        )
        sub.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="FIELD=VALUE",
            help="give every record a field, e.g. mode=paper",
        )
        sub.add_argument(
            "--skip-invalid",
            type=Path,
            metavar="REJECTS",
            help="write the valid records and put the rejected ones, with their reasons, in REJECTS (JSON Lines)",
        )

    exports = commands.add_parser("export", help="write candles to a file")
    export_kinds = exports.add_subparsers(dest="kind", required=True, metavar="KIND")
    sub = command(export_kinds, "ohlcv", file_commands.export_ohlcv, "write one candle series to CSV or Parquet")
    _series_arguments(sub, positional=True)
    _window_arguments(sub)
    sub.add_argument(
        "-o", "--output", type=Path, required=True, help="the file (.csv, .parquet), or - for CSV on stdout"
    )
    sub.add_argument("--format", choices=("csv", "parquet"), help="default: from the file's extension")
    sub.add_argument("--force", action="store_true", help="replace an existing file")

    plots = commands.add_parser("plot", help="draw candles to a PNG file (needs tradestore[plot])")
    plot_kinds = plots.add_subparsers(dest="kind", required=True, metavar="KIND")
    sub = command(plot_kinds, "ohlcv", file_commands.plot_ohlcv, "candles over volume, gaps shaded, as a PNG file")
    _series_arguments(sub, positional=True)
    _window_arguments(sub)
    sub.add_argument("-o", "--output", type=Path, required=True, help="the PNG file")
    sub.add_argument("--force", action="store_true", help="replace an existing file")

    sub = command(commands, "copy", upkeep_commands.copy, "copy every table to another database, then verify it")
    sub.add_argument("urls", nargs="+", metavar="URL", help="SOURCE_URL TARGET_URL (or TARGET_URL, from --url)")
    sub.add_argument("--append", action="store_true", help="add to a target that already holds rows")
    sub.add_argument("--chunk-rows", type=positive, default=DEFAULT_CHUNK_ROWS, help="rows per read and write")

    sub = command(commands, "backup", upkeep_commands.backup, "a consistent backup file (SQLite API, or pg_dump)")
    sub.add_argument("dest", type=Path, metavar="DEST", help="the backup file, or a folder for a time-stamped one")
    sub.add_argument("--force", action="store_true", help="replace an existing file")

    sub = command(commands, "prune", upkeep_commands.prune, "remove old rows: one retention rule per table")
    sub.add_argument("--events-older-than", type=age, metavar="AGE", help="system events, e.g. 30d")
    sub.add_argument("--bars-older-than", type=age, metavar="AGE", help="candles, e.g. 365d (needs --timeframe)")
    sub.add_argument("--timeframe", type=timeframe, help="the timeframe whose old bars go")
    sub.add_argument("--trades-older-than", type=age, metavar="AGE", help="closed or cancelled trades (open ones stay)")
    sub.add_argument(
        "--orders-older-than", type=age, metavar="AGE", help="final orders with their fills and history (open stay)"
    )
    sub.add_argument("--positions-older-than", type=age, metavar="AGE", help="closed positions (open ones stay)")
    sub.add_argument("--equity-older-than", type=age, metavar="AGE", help="equity snapshots")
    sub.add_argument(
        "--equity-keep-daily", action="store_true", help="keep each day's last old snapshot instead of deleting it"
    )
    sub.add_argument("--reports-older-than", type=age, metavar="AGE", help="stored performance reports")
    sub.add_argument("--bots-older-than", type=age, metavar="AGE", help="stopped bots not updated since")
    sub.add_argument(
        "--decisions-older-than", type=age, metavar="AGE", help="decisions (those of pending proposals stay)"
    )
    sub.add_argument(
        "--proposals-older-than", type=age, metavar="AGE", help="decided proposals (pending and approved stay)"
    )
    sub.add_argument("--dry-run", action="store_true", help="count what would go, remove nothing")

    deletes = commands.add_parser("delete", help="remove candles imported by mistake")
    delete_kinds = deletes.add_subparsers(dest="kind", required=True, metavar="KIND")
    sub = command(
        delete_kinds, "ohlcv", upkeep_commands.delete_ohlcv, "remove a window of one candle series (or all of it)"
    )
    _series_arguments(sub, positional=True)
    _window_arguments(sub)
    sub.add_argument("--dry-run", action="store_true", help="count what would go, remove nothing")

    command(commands, "optimize", upkeep_commands.optimize, "VACUUM/ANALYZE (SQLite), ANALYZE (PostgreSQL)")
    return parser


def _secrets(args: argparse.Namespace) -> list[URL]:
    """Every URL given that holds a password, to cut it out of anything printed."""
    found = []
    for url in [getattr(args, "url", None), *getattr(args, "urls", [])]:
        try:
            parsed = resolve(url)
        except ConfigurationError:
            continue
        if parsed.password:
            found.append(parsed)
    return found


def _one_line(exc: BaseException, secrets: Sequence[URL]) -> str:
    known = (StorageError, CommandError, OSError)
    text = str(exc) if isinstance(exc, known) and str(exc) else f"{type(exc).__name__}: {exc}"
    line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    for url in secrets:
        line = scrub(line, url)
    return line


def _silence(out: IO[str]) -> None:
    """Point ``out`` at the null device: what is still buffered would fail again when the
    interpreter flushes it at exit, with a "Broken pipe" message."""
    with contextlib.suppress(AttributeError, OSError, ValueError):  # no file descriptor: nothing to do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, usage errors: argparse has printed them
        return int(exit_.code or 0)
    if args.verbose:
        logging.basicConfig(
            level=logging.DEBUG if args.verbose > 1 else logging.INFO,
            stream=err,
            format="%(levelname)s %(name)s: %(message)s",
        )
    handler: Handler = args.handler
    secrets = _secrets(args)
    try:
        code = asyncio.run(handler(args, Console(out, err, json=args.json)))
        with writing_out():
            out.flush()  # what is still buffered: if the reader has gone, find out here, not at exit
        return code
    except KeyboardInterrupt:
        err.write("error: interrupted\n")
        return 130
    except ReaderGone:  # `tradestore … | head`: the reader has all it wanted
        _silence(out)
        return 0
    except (StorageError, CommandError, SQLAlchemyError, OSError, ValueError) as exc:
        log.debug("command failed", exc_info=True)
        err.write(f"error: {_one_line(exc, secrets)}\n")
        return 1
    except Exception as exc:  # a bug: still one line, the traceback with -v
        log.debug("unexpected failure", exc_info=True)
        err.write(f"error: unexpected {_one_line(exc, secrets)} (run with -vv for the traceback)\n")
        return 1
