"""`oms web`: the live blotter and recorded-session views in a browser (oms.web; docs/web.md).

The composition root of the web app: it finds the service like every client command (DATA_DIR's
endpoints.json, or --router/--pub), opens recorded sessions with `replay`, and serves `oms.web` with
uvicorn (the web extra, imported when the command runs: `oms` works without it). `oms run --web`
starts this command as a child process beside the service, so rendering pages never shares the
service's event loop or interpreter. `--nats` follows a JetStream mirror instead (`JetStreamClient`,
read-only: no commands, no intake).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from events.journal_errors import NotAJournal
from events.schema import Envelope
from oms.cli.client import EXIT_NO_SERVICE, add_service_arguments, connect, follow_mirror
from oms.cli.logs import setup_logging
from oms.client import AsyncClient, ServiceUnavailable
from oms.client.jetstream import JetStreamClient
from oms.client.jetstream_wire import settings_from
from oms.state.model import State
from replay.source import open_source
from replay.states import state_at
from replay.timeline import order_timelines

if TYPE_CHECKING:
    from oms.web.intake import IntakeConfig
    from oms.web.security import Guard
    from oms.web.session import Timeline

DEFAULT_LISTEN = "127.0.0.1:8080"

EPILOG = """\
examples:
  oms web                                   follow the service of ./oms-data on http://127.0.0.1:8080/
  oms web --session ./oms-data-yesterday    scrub through a recorded session (data dir or .duckdb archive)
  oms web --allow-commands                  cancel and kill switch from the page (URL printed with its token)
  oms web --intake intake.toml              HTTP order intake and alert webhooks (docs/web.md)
  oms web --nats nats://n1:4222,nats://n2:4222,nats://n3:4222/OMS_DU123456
                                            follow a JetStream mirror of the service (read-only)
  oms web --listen 0.0.0.0:8080 --token "$OMS_WEB_TOKEN" --allowed-host blotter.lan
                                            beyond loopback a token, and the names it is reached by
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "web",
        help="the live blotter and recorded sessions in a browser",
        description="Serve a web blotter that follows the service as a client does (read-only by default).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help=f"default {DEFAULT_LISTEN}")
    p.add_argument(
        "--token", default=os.environ.get("OMS_WEB_TOKEN"), help="the token pages and commands need "
        "(default: $OMS_WEB_TOKEN, else one made up per run); required beyond loopback"
    )  # fmt: skip
    p.add_argument("--allow-commands", action="store_true", help="cancel and kill switch from the page")
    p.add_argument("--intake", metavar="FILE.toml", help="enable HTTP order intake and webhooks (mode 0600)")
    p.add_argument(
        "--session", action="append", default=[], metavar="PATH",
        help="a recorded session to open: a data directory or a DuckDB archive (repeatable)",
    )  # fmt: skip
    p.add_argument("--no-service", action="store_true", help="recorded sessions only; follow no service")
    p.add_argument(
        "--nats", metavar="URL[,URL...]/STREAM",
        help="follow a mirror in NATS JetStream instead of the service (read-only: no commands, no intake)",
    )  # fmt: skip
    p.add_argument(
        "--allowed-host", action="append", default=[], metavar="NAME",
        help="a host name the pages may be reached by besides loopback's and --listen's (repeatable; "
        "any other Host header is refused, against DNS rebinding)",
    )  # fmt: skip
    add_service_arguments(p)
    p.set_defaults(func=run)


class ReplayRecording:
    """A recorded session read by `replay` (journal or archive), in the shape `oms.web.session` wants."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise ValueError(
                f"--session {path}: no such file or directory (a data directory or a .duckdb archive)"
            )
        self.name = str(path)
        try:
            self._source = open_source(path)
        except (NotAJournal, duckdb.Error) as exc:
            raise ValueError(f"--session {path}: not a recorded session ({exc})") from None

    def last_seq(self) -> int:
        return self._source.last_seq()

    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[Envelope]:
        return self._source.read(from_seq, to_seq)

    def state_at(self, seq: int) -> State:
        return state_at(self._source, seq)

    def timelines(self, ident: str) -> list[Timeline]:
        return list(order_timelines(self._source, ident))  # UnknownOrder is a LookupError


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--listen wants HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def run(args: argparse.Namespace) -> int:
    setup_logging()
    try:
        from oms.web.intake import IntakeConfigError, load_intake
        from oms.web.security import Guard
    except ModuleNotFoundError as exc:
        print(f"oms web: {exc.name} is missing: pip install 'ib-oms[web]'", file=sys.stderr)
        return 2

    try:
        host, port = split_listen(args.listen)
        guard = Guard(host, args.allow_commands, **({"token": args.token} if args.token else {}),
                      token_given=bool(args.token), allowed_hosts=frozenset(args.allowed_host))  # fmt: skip
        if args.nats and (args.allow_commands or args.intake or args.no_service):
            raise ValueError("--nats follows a mirror, which takes no commands: it goes with neither "
                             "--allow-commands, --intake nor --no-service")  # fmt: skip
        mirror = JetStreamClient(settings_from(args.nats, env=os.environ)) if args.nats else None
        intake = load_intake(args.intake) if args.intake else None
        recordings = [ReplayRecording(Path(p)) for p in args.session]
    except (ValueError, IntakeConfigError, OSError) as exc:
        print(f"oms web: {exc}", file=sys.stderr)
        return 2
    try:
        sock = listen(host, port)
    except OSError as exc:
        print(f"oms web: cannot listen on {args.listen}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(args, sock, guard, intake, recordings, mirror))


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts (a taken port fails at once); connections
    wait in its backlog from now on, so the address printed next answers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


async def _serve(
    args: argparse.Namespace,
    sock: socket.socket,
    guard: Guard,
    intake: IntakeConfig | None,
    recordings: list[ReplayRecording],
    mirror: JetStreamClient | None,
) -> int:
    import uvicorn

    from oms.web.app import build_app
    from oms.web.intake import Intake
    from oms.web.live import LiveFeed
    from oms.web.session import Session

    client: AsyncClient | JetStreamClient | None = None
    feed: LiveFeed | None = None
    try:
        if mirror is not None:  # the feed listens first: it hears every event from seq 1 (its history)
            feed = LiveFeed(mirror)
            client = await follow_mirror(mirror, use_snapshot=False)
        elif not args.no_service:
            client = await connect(args, follow=True)
            feed = LiveFeed(client)
    except ServiceUnavailable as exc:
        feed = None
        if not recordings:
            print(f"oms web: the service is not running or not answering: {exc}", file=sys.stderr)
            return EXIT_NO_SERVICE
        print(f"oms web: no service ({exc}); showing recorded sessions only", file=sys.stderr)
    if feed is not None:
        feed.start()
    service = client if isinstance(client, AsyncClient) else None
    app = build_app(feed, [Session(r) for r in recordings], guard, Intake(intake, service))
    host, bound = sock.getsockname()[:2]
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    needed = guard.allow_commands or guard.pages_need_token
    # only a token made here: one the operator gave (--token, OMS_WEB_TOKEN) stays out of logs
    token = f"?token={guard.token}" if needed and not guard.token_given else ""
    print(f"web     http://{shown}:{bound}/{token}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    try:
        await server.serve(sockets=[sock])
    finally:
        if feed is not None:
            await feed.close()
        if client is not None:
            await client.close()
    return 0


def web_child(data_dir: str, listen: str) -> subprocess.Popen[bytes]:
    """`oms web` for `oms run --web`: a child process following the service in `data_dir`."""
    command = [sys.executable, "-m", "oms", "web", "--data-dir", data_dir, "--listen", listen]
    return subprocess.Popen(command)
