"""The `oms` command line: the composition root, the one place that wires oms, adapters and replay.

Each subcommand lives in the module that owns its job; that module's `register(subparsers)` adds its
parser (arguments only, imports kept light) and sets `func`, which does the heavy imports when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMAND_MODULES: tuple[str, ...] = (
    "adapters.ib.check",
    "oms.commands.client",
    "oms.commands.status",
    "oms.commands.mirror",
    "adapters.tws_sim.command",
    "oms.commands.run",
    "replay.commands",
    "oms.commands.web",
    "oms.commands.wire",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oms",
        description="Event-sourced order management service for Interactive Brokers.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
