"""`oms status`: is the service running, where, and how it is doing (IB, journal, subscribers, and the
JetStream mirror's lag when one reports into the data directory).

Exit codes as the other client commands: 0 running and answering; 2 not running (no endpoints file,
its pid is gone) or not answering within --timeout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from typing import Any

import msgspec

from oms.cli.client import add_service_arguments, connect, run_client
from oms.client.jetstream_wire import MirrorStatus, read_status
from oms.protocol import StatusResult


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = subparsers.add_parser(
        "status",
        help="is the service running: pid, endpoints, IB connection, journal seqs, subscribers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  oms status\n  oms status --data-dir /srv/oms --json\n"
        "exit status: 0 running, 2 not running or not answering",
    )
    status.add_argument("--json", action="store_true", help="the status as one JSON object")
    add_service_arguments(status)
    status.set_defaults(func=lambda args: run_client(args, _status))


async def _status(args: argparse.Namespace) -> int:
    client = await connect(args, follow=False)
    try:
        result = await client.status()
    finally:
        await client.close()
    mirror = read_status(args.data_dir)
    if args.json:
        lag = mirror_lag(result.journal_seq, mirror)
        doc = {**msgspec.to_builtins(result), "pub": client.pub, "router": client.router, "mirror": lag}
        sys.stdout.write(msgspec.json.encode(doc).decode() + "\n")
    else:
        print(render(result, client.router, client.pub, mirror))
    return 0


STALE_NS = 5_000_000_000  # a mirror that has not reported for this long is not running


def mirror_lag(
    journal_seq: int, mirror: MirrorStatus | None, now_ns: int | None = None
) -> dict[str, Any] | None:
    """The JetStream mirror as the status shows it: lag = the service's journal seq minus what the
    stream holds; `running` false when its status file is stale or it stopped on an error; on a
    cluster, the node it is connected to, the stream's leader and its other replicas."""
    if mirror is None:
        return None
    now_ns = time.time_ns() if now_ns is None else now_ns
    running = not mirror.error and now_ns - mirror.ts_ns <= STALE_NS
    return {
        "stream": mirror.stream,
        "mirrored_seq": mirror.mirrored_seq,
        "lag": max(journal_seq - mirror.mirrored_seq, 0),
        "running": running,
        "error": mirror.error,
        "server": mirror.server,
        "cluster": mirror.cluster,
        "leader": mirror.leader,
        "replicas": [
            {"name": r.name, "current": r.current, "offline": r.offline, "lag": r.lag}
            for r in mirror.replicas
        ],
    }


def _cluster_line(mirror: MirrorStatus) -> str:
    """`cluster C: leader n1, replicas n2 (current), n3 (offline)`, via the node the mirror talks to."""
    replicas = ", ".join(
        f"{r.name} ({'offline' if r.offline else 'current' if r.current else f'NOT CURRENT, {r.lag} behind'})"
        for r in mirror.replicas
    )
    return f"cluster {mirror.cluster}: leader {mirror.leader or 'NONE'}, replicas {replicas or 'none'}"


def _when(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(status: StatusResult, router: str, pub: str, mirror: MirrorStatus | None = None) -> str:
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
        (
            "orders",
            f"{status.open_orders} working, {status.live_orders} in the live state, "
            f"{status.retired_orders} retired to history",
        ),
        ("kill switch", "ENGAGED: new orders refused" if status.kill_switch else "off"),
        *(("", f"{scope}: ENGAGED ({why}); only orders that reduce a position pass")
          for scope, why in sorted(status.kill_scopes.items())),
    ]  # fmt: skip
    lag = mirror_lag(status.journal_seq, mirror)
    if lag is not None:
        state = "running" if lag["running"] else f"NOT RUNNING{': ' + lag['error'] if lag['error'] else ''}"
        rows.append(
            (
                "mirror",
                f"stream {lag['stream']}: lag {lag['lag']} events, seq {lag['mirrored_seq']} ({state})",
            )
        )
        if mirror is not None and mirror.cluster:
            rows.append(("", f"{_cluster_line(mirror)}; connected to {mirror.server or 'none'}"))
    return "\n".join(f"{name:<12}{value}" for name, value in rows)
