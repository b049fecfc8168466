"""`oms wire show` and `oms wire redact`: read a wire capture (`--record-wire`) as IB's messages, and
mask its account numbers so it can be attached to a bug report. The work is in adapters/ib/wire.py."""

from __future__ import annotations

import argparse
import json
import sys

from adapters.ib.wire import CaptureError, messages, read_records, redact

EPILOG = """examples:
  oms wire show oms-data/wire                 the newest capture, one message per line
  oms wire show oms-data/wire/20261206T203000.000000Z --json
  oms wire redact oms-data/wire/20261206T203000.000000Z shared-capture
exit status: 0, or 2 when CAPTURE is not a wire capture (or the redact target exists).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "wire",
        help="read or redact a wire capture (every byte exchanged with TWS, from --record-wire)",
        description="Wire captures written by `oms run --record-wire` and `oms check --record-wire`.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="wire_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="print a capture decoded as IB's messages, one per line")
    show.add_argument("capture", metavar="CAPTURE", help="a capture directory, a segment, or DATA_DIR/wire")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    show.set_defaults(func=run_show)
    red = sub.add_parser("redact", help="copy a capture with every account number masked")
    red.add_argument("capture", metavar="CAPTURE", help="the capture to copy")
    red.add_argument("target", metavar="TARGET", help="the new capture directory (must not exist)")
    red.set_defaults(func=run_redact)


def run_show(args: argparse.Namespace) -> int:
    try:
        for message in messages(read_records(args.capture)):
            print(json.dumps(message.to_json()) if args.json else message.line())
    except CaptureError as exc:
        print(f"oms wire show: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `| head`
        sys.stderr.close()
    return 0


def run_redact(args: argparse.Namespace) -> int:
    try:
        mask = redact(args.capture, args.target)
    except CaptureError as exc:
        print(f"oms wire redact: {exc}", file=sys.stderr)
        return 2
    print(f"{args.target}: {len(mask.mapping)} account number(s) masked")
    return 0
