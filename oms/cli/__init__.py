"""The `oms` command line: the composition root, the one place that wires oms, adapters and replay.

Every subcommand lives here, one module per family; its `register(subparsers)` adds the parser and sets
`func`. What a command does beyond glue (check a connection, fold a journal, mirror it) lives in
`adapters`, `replay` and `oms.*`, which never import this package (import-linter contracts in
pyproject.toml). Only the web extra and DuckDB are imported when their command runs: the one is
optional, the other costs every command a fifth of a second to start.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from oms.cli import check, client, mirror, replay, run, sim, status, web, wire

COMMANDS = (check, client, status, mirror, sim, run, replay, web, wire)  # the order of `oms --help`


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oms",
        description="Event-sourced order management service for Interactive Brokers.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
