"""`oms replay`, `oms archive`, `oms query`: debug a recorded session, step by step and with SQL.

Exit codes: 0 done; 1 the answer is "no" (verify found a difference, no such order, a failed query);
2 the input was refused (not a journal, not an archive, a bad seq or time).

What replay computes lives in `replay`; DuckDB (and `replay.archive`, which loads it with pyarrow) is
imported when a command needs it, so the other commands start without it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from events.journal_errors import JournalError
from oms.client.jetstream_wire import redact_url
from replay import queries, render, stepper
from replay.document import state_document
from replay.points import BadPoint, format_ts, resolve_point
from replay.publish import NotLoopback, open_publisher, replay_to, require_loopback
from replay.serve import ReplayRouter
from replay.source import JournalSource, close_source, location, open_source
from replay.states import diff_states, state_at, states_at
from replay.timeline import UnknownOrder, order_timelines
from replay.verify import verify

EXIT_NO = 1
EXIT_REFUSED = 2

REPLAY_EPILOG = """examples:
  oms replay data/                          the state at the end of the session
  oms replay data/ --at 1520                the state after seq 1520
  oms replay data/ --at 14:03:07            ... after the last event received by 14:03:07 UTC
  oms replay data/ --at 2026-11-20T09:03:07-05:00
  oms replay data/ --at 1520 --json         the state as one JSON document (orders, positions, ...)
  oms replay data/ --order c-42             one order's events, with its state after each
  oms replay data/ --order 1234567890       ... found by IB orderId or permId
  oms replay data/ --diff 14:00:00 14:05:00 what changed between two points, field by field
  oms replay data/ --step                   Enter = next, a number = jump to that seq, q = quit
  oms replay data/ --verify                 refold the log and check every stored snapshot
  oms replay data/ --publish tcp://127.0.0.1:5599 --speed 10
  oms replay data/ --publish tcp://127.0.0.1:5599 --router tcp://127.0.0.1:5598 --speed 0
  oms replay session.duckdb --order c-42    the same questions, asked of an archive
"""

ARCHIVE_EPILOG = """examples:
  oms archive data/ session.duckdb          import what is new since the last run
  oms archive data/ session.duckdb --export-parquet out/   ... and write every table as Parquet
"""

QUERY_EPILOG = """examples:
  oms query session.duckdb "SELECT status, count(*) FROM orders GROUP BY ALL"
  oms query session.duckdb "SELECT * FROM order_timeline('c-42')"
  oms query session.duckdb "SELECT * FROM orders_at(TIMESTAMP '2026-11-20 14:03:07')" --csv
  oms query session.duckdb "SELECT * FROM executions" --json
  oms query session.duckdb "SELECT * FROM fills" --parquet fills.parquet
  oms query session.duckdb --order 1234567890    one order's timeline (client order id, orderId, permId)
tables and views: events, orders, order_states, order_events, positions, position_states,
strategy_positions, fills, executions, errors, accounts, account_states (see docs/replay.md)
"""


def _speed(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"speed must be >= 0 (0: as fast as possible), got {text}")
    return value


def register(subparsers: Any) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    replay = subparsers.add_parser(
        "replay",
        help="replay a session: state at a seq or time, order timelines, diff, step, verify, publish",
        description="Read a data directory's journal (also while the service writes it) or an archive.",
        epilog=REPLAY_EPILOG,
        formatter_class=fmt,
    )
    replay.add_argument(
        "source",
        type=_location,
        metavar="DATA_DIR",
        help="data directory, journal, .duckdb archive or mirror (nats://HOST:PORT/STREAM)",
    )
    what = replay.add_mutually_exclusive_group()
    what.add_argument(
        "--at", metavar="SEQ|TIME", help="state after this seq, or at this time (UTC by default)"
    )
    what.add_argument(
        "--order", metavar="ID", help="timeline of an order: client order id, orderId or permId"
    )
    what.add_argument("--diff", nargs=2, metavar=("A", "B"), help="what changed between two points")
    what.add_argument("--step", action="store_true", help="step through the events interactively")
    what.add_argument("--verify", action="store_true", help="refold the log and compare every snapshot")
    what.add_argument("--publish", metavar="ENDPOINT", help="re-publish over ZeroMQ PUB (loopback)")
    replay.add_argument(
        "--speed", type=_speed, default=1.0, help="with --publish: pace x SPEED; 0 = no pacing"
    )
    replay.add_argument("--from-seq", type=int, default=1, help="with --publish / --step: start at this seq")
    replay.add_argument("--wait", type=float, default=1.0, help="with --publish: seconds of heartbeats first")
    replay.add_argument(
        "--router", metavar="ENDPOINT", help="with --publish: also answer snapshot/events/orders requests"
    )
    replay.add_argument(
        "--json",
        action="store_true",
        help="with --at (or alone: the end): the folded state as one JSON document (docs/state.md)",
    )
    replay.set_defaults(func=_replay)

    archive = subparsers.add_parser(
        "archive",
        help="import a journal into a DuckDB archive (incremental: only new seqs)",
        description="Import DATA_DIR's journal into ARCHIVE (created 0600 if missing); see docs/replay.md.",
        epilog=ARCHIVE_EPILOG,
        formatter_class=fmt,
    )
    archive.add_argument(
        "source",
        type=_location,
        metavar="DATA_DIR",
        help="data directory or mirror (nats://HOST:PORT/STREAM)",
    )
    archive.add_argument("archive", type=Path, metavar="ARCHIVE.duckdb")
    archive.add_argument("--export-parquet", type=Path, metavar="DIR", help="then write every table/view")
    archive.add_argument(
        "--events-only",
        action="store_true",
        help="only the events table: ~4x faster, no fold history (orders/positions tables stay empty)",
    )
    archive.set_defaults(func=_archive)

    query = subparsers.add_parser(
        "query",
        help="run SQL on an archive; print a table, CSV or JSON, or write Parquet",
        epilog=QUERY_EPILOG,
        formatter_class=fmt,
    )
    query.add_argument("archive", type=Path, metavar="ARCHIVE.duckdb")
    query.add_argument("sql", nargs="?", metavar="SQL")
    query.add_argument("--order", metavar="ID", help="an order's timeline instead of SQL")
    out = query.add_mutually_exclusive_group()
    out.add_argument("--csv", action="store_true", help="CSV on stdout")
    out.add_argument("--json", action="store_true", help="one JSON object per row on stdout")
    out.add_argument("--parquet", type=Path, metavar="OUT", help="write the result to a Parquet file")
    query.set_defaults(func=_query)


def _console() -> Any:
    return Console()


def _location(text: str) -> Path | str:
    return location(text)


def _refuse(message: str) -> int:
    print(f"oms: {message}", file=sys.stderr)
    return EXIT_REFUSED


def _replay(args: argparse.Namespace) -> int:
    import duckdb

    try:
        return _replay_checked(args)
    except (JournalError, BadPoint, FileNotFoundError, duckdb.Error) as exc:
        return _refuse(str(exc))
    except UnknownOrder as exc:
        print(f"oms: {exc}", file=sys.stderr)
        return EXIT_NO


def _replay_checked(args: argparse.Namespace) -> int:
    console = _console()
    if args.verify:
        if not isinstance(args.source, Path):
            return _refuse(
                f"--verify checks the snapshots a service wrote in its data directory against a refold of "
                f"its journal; {redact_url(args.source)} holds the events but no snapshots, so there is "
                "nothing to verify there: give the service's data directory (oms replay DATA_DIR "
                "--verify); the mirror answers --at, --order, --diff and --step"
            )
        report = verify(JournalSource(args.source).path)
        render.render_verify(console, report)
        return 0 if report.ok else EXIT_NO
    source = open_source(args.source)
    try:
        return _replay_from(args, source, console)
    finally:
        close_source(source)


def _replay_from(args: argparse.Namespace, source: Any, console: Any) -> int:
    if args.json and (args.order or args.diff or args.step or args.publish):
        return _refuse("--json prints the state at a point: use it alone or with --at SEQ|TIME")
    if args.order:
        for timeline in order_timelines(source, args.order):
            render.render_timeline(console, timeline)
        return 0
    if args.diff:
        a, b = sorted(resolve_point(source, point) for point in args.diff)
        before, after = states_at(source, [a, b])
        render.render_diff(console, f"from seq {a} to seq {b}", diff_states(before, after))
        return 0
    if args.step:
        return stepper.run(source, sys.stdin, console, args.from_seq if args.from_seq > 1 else None)
    if args.publish:
        return _publish(args, source, console)
    seq = resolve_point(source, args.at) if args.at else source.last_seq()
    if seq == 0 and args.at and not args.at.isdigit():
        first = next(iter(source.read(1, 1)), None)
        when = f"was received at {format_ts(first.ts)} UTC" if first else "does not exist: the log is empty"
        return _refuse(f"{args.at} is before the session: its first event (seq 1) {when}; give a later time")
    state = state_at(source, seq)
    if args.json:
        sys.stdout.write(state_document(state).decode() + "\n")
        return 0
    render.render_state(console, state)
    return 0


def _publish(args: argparse.Namespace, source: Any, console: Any) -> int:
    try:
        router = ReplayRouter(require_loopback(args.router), source) if args.router else None
        publisher = open_publisher(args.publish)
    except NotLoopback as exc:
        return _refuse(str(exc))
    try:
        console.print(f"publishing on {publisher.endpoint} in {args.wait:g}s (speed {args.speed:g}; 0 = max)")
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:  # heartbeats let subscribers connect before the first event
            publisher.heartbeat(0)
            (router.wait if router else time.sleep)(0.1)
        report = replay_to(publisher, source, speed=args.speed, from_seq=args.from_seq, router=router)
        console.print(f"published {report.published} events, seqs {report.first_seq}..{report.last_seq}")
        if router is not None:
            console.print(f"answering requests on {router.endpoint} until Ctrl-C")
            while True:
                publisher.heartbeat(report.last_seq)
                router.wait(0.5)
    finally:
        publisher.close()
        if router is not None:
            router.close()
    return 0


def _archive(args: argparse.Namespace) -> int:
    import duckdb

    from replay.archive import ArchiveMismatch, archive_journal

    folder = args.archive.parent
    if not folder.is_dir():
        return _refuse(f"cannot create the archive {args.archive}: the directory {folder} does not exist")
    console = _console()
    columns = (TextColumn("archiving"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("archive", total=None)
        try:
            report = archive_journal(
                args.source,
                args.archive,
                on_start=lambda total: progress.update(task, total=total),
                on_progress=lambda n: progress.advance(task, n),
                events_only=args.events_only,
            )
        except (JournalError, ArchiveMismatch) as exc:
            return _refuse(str(exc))
        except (duckdb.Error, OSError) as exc:
            return _refuse(f"cannot write the archive {args.archive}: {exc}")
    if report.imported:
        console.print(f"archived seqs {report.first_seq}..{report.last_seq} ({report.imported} events)")
    else:
        console.print(f"nothing new: the archive already holds seqs 1..{report.last_seq}")
    if report.note:
        console.print(f"[yellow]{report.note}[/]")
    if args.export_parquet:
        con = queries.connect(args.archive)
        try:
            written = queries.export_all(con, args.export_parquet)
        finally:
            con.close()
        console.print(f"wrote {len(written)} Parquet files to {args.export_parquet}")
    return 0


def _query(args: argparse.Namespace) -> int:
    import duckdb

    if not args.sql and not args.order:
        return _refuse("give SQL to run, or --order ID")
    try:
        con = queries.connect(args.archive)
    except (FileNotFoundError, duckdb.Error) as exc:
        return _refuse(f"{args.archive} is not an archive: {exc}")
    try:
        if args.order:
            keys = queries.find_orders(con, args.order)
            if not keys:
                print(f"oms: no order is named {args.order!r}", file=sys.stderr)
                return EXIT_NO
            results = [(key, queries.order_timeline(con, key)) for key in keys]
        else:
            if args.parquet:
                queries.export_parquet(con, args.sql, args.parquet)
                print(f"wrote {args.parquet}")
                return 0
            results = [("", queries.run(con, args.sql))]
    except duckdb.Error as exc:
        print(f"oms: query failed: {exc}", file=sys.stderr)
        return EXIT_NO
    finally:
        con.close()
    console = _console()
    for title, result in results:
        if args.csv:
            sys.stdout.write(queries.to_csv(result))
        elif args.json:
            sys.stdout.write(queries.to_json_lines(result))
        else:
            render.render_result(console, result, f"order {title}" if title else "")
    return 0
