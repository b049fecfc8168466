"""`oms check`: connect to a TWS / IB Gateway as the service would, and say what works and what does not
(the check itself: adapters/ib/check.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from rich.console import Console
from rich.table import Table

from adapters.ib.acceptance import Acceptance, Refused, refuse_port
from adapters.ib.check import check
from adapters.ib.wire import WireRecorder
from oms.service.config import ConfigError, env_int

EPILOG = """examples:
  oms check                                  127.0.0.1:7497 (TWS paper), client id 1, ib_async
  oms check --port 4002 --client-id 9        IB Gateway paper
  oms check --library ib_insync --timeout 20
  oms check --record-wire                    also write every byte exchanged into ./oms-data/wire
  oms check --port 4002 --acceptance         the paper-account scenario, one line per step
  oms check --acceptance --allow-fills       ... and a one-share market buy and sell
environment: IBKR_HOST, IBKR_PORT, IBKR_CLIENT_ID give the defaults (flags win).
exit status: 0 when connected and synchronized (every step passed, with --acceptance), 1 otherwise,
2 for a bad IBKR_* variable, or --acceptance against a live port or account.
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "check",
        help="test the connection to TWS / IB Gateway (server version, accounts, sync)",
        description="Connect to TWS or IB Gateway, synchronize, report what worked and what failed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default=os.environ.get("IBKR_HOST", "127.0.0.1"), help="TWS / Gateway host")
    p.add_argument("--port", type=int, help="API port (default: $IBKR_PORT or 7497)")
    p.add_argument("--client-id", type=int, help="API client id (default: $IBKR_CLIENT_ID or 1)")
    p.add_argument(
        "--library", choices=("ib_async", "ib_insync"), default="ib_async", help="IB client library"
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each step")
    p.add_argument(
        "--record-wire", action="store_true", help="record every byte exchanged into DATA_DIR/wire"
    )
    p.add_argument("--data-dir", default="oms-data", help="where captures are written (default ./oms-data)")
    p.add_argument(
        "--acceptance", action="store_true",
        help="the scripted paper-account scenario (orders far from the market; paper and DU accounts only)",
    )  # fmt: skip
    p.add_argument(
        "--allow-fills", action="store_true", help="with --acceptance: also buy and sell one share at market"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:  # read here, not when the parser is built: a bad variable must not break every command
        args.port = args.port if args.port is not None else env_int(os.environ, "IBKR_PORT", 7497)
        args.client_id = (
            args.client_id if args.client_id is not None else env_int(os.environ, "IBKR_CLIENT_ID", 1)
        )
    except ConfigError as exc:
        print(f"oms check: {exc}", file=sys.stderr)
        return 2
    if args.acceptance:
        return acceptance(args)
    wire = WireRecorder.in_data_dir(args.data_dir) if args.record_wire else None
    rows = check(args.host, args.port, args.client_id, args.library, args.timeout, wire)
    table = Table(
        title=f"IB connection check: {args.host}:{args.port} client id {args.client_id} ({args.library})"
    )
    for column in ("check", "result", "detail"):
        table.add_column(column)
    ok = True
    for name, passed, detail in rows:
        ok = ok and passed is not False
        result = "ok" if passed else ("FAILED" if passed is False else "-")
        table.add_row(name, f"[green]{result}[/]" if passed else f"[red]{result}[/]", detail)
    Console().print(table)
    if wire is not None:
        print(f"wire capture: {wire.directory} (`oms wire show {wire.directory}`)")
    return 0 if ok else 1


def acceptance(args: argparse.Namespace) -> int:
    """`--acceptance`: one line per step as it ends, always with a wire capture to attach."""
    try:
        refuse_port(args.port)  # before anything is created or sent
    except Refused as exc:
        print(f"oms check: refused: {exc}", file=sys.stderr)
        return 2
    logging.getLogger(args.library).setLevel(logging.CRITICAL)  # the lines say it all, once
    wire = WireRecorder.in_data_dir(args.data_dir)
    print(
        f"acceptance check: {args.host}:{args.port} client id {args.client_id} ({args.library})", flush=True
    )
    scenario = Acceptance(
        args.host, args.port, args.client_id, args.library, args.timeout, args.allow_fills, wire,
        lambda step: print(step.line(), flush=True),
    )  # fmt: skip
    try:
        steps = asyncio.run(scenario.run())
    except Refused as exc:
        print(f"oms check: refused: {exc}", file=sys.stderr)
        return 2
    finally:
        print(f"wire capture: {wire.directory} (`oms wire redact` it before attaching it to a report)")
    failed = [s for s in steps if s.passed is False]
    print(f"{len([s for s in steps if s.passed])} passed, {len(failed)} failed")
    return 1 if failed else 0
