"""`oms status`: is the service running, where, and how it is doing (IB, journal, subscribers).

Exit codes as the other client commands: 0 running and answering; 2 not running (no endpoints file,
its pid is gone) or not answering within --timeout.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from oms.protocol import StatusResult


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from oms.commands.client import _add_service_arguments, _run

    status = subparsers.add_parser(
        "status",
        help="is the service running: pid, endpoints, IB connection, journal seqs, subscribers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  oms status\n  oms status --data-dir /srv/oms --json\n"
        "exit status: 0 running, 2 not running or not answering",
    )
    status.add_argument("--json", action="store_true", help="the status as one JSON object")
    _add_service_arguments(status)
    status.set_defaults(func=lambda args: _run(args, _status))


async def _status(args: argparse.Namespace) -> int:
    from oms.commands.client import _connect

    client = await _connect(args, follow=False)
    try:
        result = await client.status()
    finally:
        await client.close()
    if args.json:
        import msgspec

        sys.stdout.write(
            msgspec.json.encode(
                {**msgspec.to_builtins(result), "pub": client.pub, "router": client.router}
            ).decode()
            + "\n"
        )
    else:
        print(render(result, client.router, client.pub))
    return 0


def _when(ts: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(status: StatusResult, router: str, pub: str) -> str:
    """Aligned `name  value` lines, for people."""
    reconciled = (
        f"seq {status.reconciled_seq} at {_when(status.reconciled_ts)}"
        + ("" if status.reconciliation_ok else " (with problems: see the log)")
        if status.reconciled_seq
        else "not yet in this session"
    )
    rows = [
        (
            "service",
            f"running, pid {status.pid}, version {status.version}, up since {_when(status.started_ts)}",
        ),
        ("ready", "yes: commands accepted" if status.ready else "no: commands are refused (not_ready)"),
        ("ROUTER", router),
        ("PUB", f"{pub} ({status.subscribers} subscriber{'s' if status.subscribers != 1 else ''})"),
        ("IB", f"{status.ib} ({status.connection})"),
        ("journal", f"seq {status.journal_seq}, durable through {status.durable_seq}"),
        ("reconciled", reconciled),
        ("orders", f"{status.open_orders} working"),
        ("kill switch", "ENGAGED: new orders refused" if status.kill_switch else "off"),
    ]
    return "\n".join(f"{name:<12}{value}" for name, value in rows)
