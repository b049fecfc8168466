"""The `oms` command line: the composition root, the one place that wires oms, adapters and replay.

Every subcommand lives here, one module per family; its `register(subparsers)` adds the parser and sets
`func`. What a command does beyond glue (check a connection, fold a journal, mirror it) lives in
`adapters`, `replay` and `oms.*`, which never import this package (import-linter contracts in
pyproject.toml). Only the web extra and DuckDB are imported when their command runs: the one is
optional, the other costs every command a fifth of a second to start.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence

from oms.cli import check, client, mirror, replay, risk, run, sim, status, web, wire

COMMANDS = (check, client, status, risk, mirror, sim, run, replay, web, wire)  # the order of `oms --help`


EXIT_BROKEN_PIPE = 141  # as a process killed by SIGPIPE reports itself to the shell (128 + 13)


class Parser(argparse.ArgumentParser):
    """`oms`: an unknown flag is reported by the command it was given to, with the closest flag that
    command has (`--limt`: did you mean --limit?), instead of the top-level usage alone."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: None = None) -> argparse.Namespace:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self._commands().get(getattr(parsed, "command", None) or "")
            (command or self).error(unrecognized(extras, command or self))
        return parsed

    def _commands(self) -> dict[str, argparse.ArgumentParser]:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}


def unrecognized(extras: list[str], parser: argparse.ArgumentParser) -> str:
    """`unrecognized argument --limt (did you mean --limit?)`, for each flag the command does not know."""
    flags = [flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")]
    words = []
    for extra in extras:
        given = extra.split("=", 1)[0]
        close = difflib.get_close_matches(given, flags, n=1, cutoff=0.6) if given.startswith("-") else []
        words.append(f"{extra} (did you mean {close[0]}?)" if close else extra)
    return f"unrecognized argument{'s' * (len(extras) > 1)}: {', '.join(words)}"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="oms",
        description="Event-sourced order management service for Interactive Brokers.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """The reader of our output left (`oms status | head`): stop quietly, as a command killed by
    SIGPIPE does. Output still buffered goes to /dev/null, so the flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (captured by a caller)
        pass
    return EXIT_BROKEN_PIPE
