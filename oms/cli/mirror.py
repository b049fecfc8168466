"""`oms mirror`: the journal mirrored into NATS JetStream (adapters/nats), and the wiring that lets
`oms run --mirror`, `oms replay nats://...` and `oms archive nats://...` use it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from adapters.nats.connect import MirrorConfig, mirror_config, mirror_table
from adapters.nats.mirror import Mirror, MirrorDiverged
from adapters.nats.source import NatsSource
from events.journal_errors import JournalError
from oms.cli.logs import setup_logging
from oms.client.jetstream_wire import STATUS_FILE, NatsConfigError
from replay.source import URL_SOURCES, LogSource, journal_dir

EXIT_DIVERGED = 1
EXIT_CONFIG = 2

EPILOG = """\
examples:
  nats-server -js -a 127.0.0.1 -sd /srv/nats            a JetStream server on loopback (docs/scaling.md)
  oms mirror oms-data --nats nats://127.0.0.1:4222      mirror ./oms-data's journal into stream OMS
  oms mirror /srv/oms --nats tls://nats.example.com:4222 --stream OMS_DU123456 --config oms.toml
  oms mirror oms-data --nats nats://n1:4222,nats://n2:4222,nats://n3:4222 --replicas 3   a cluster, R3
  OMS_NATS_USER=oms OMS_NATS_PASSWORD=... oms mirror oms-data

Credentials and TLS: the [mirror] table of --config, then OMS_NATS_* variables (docs/scaling.md).
The lag (journal seq - mirrored seq) is written to DATA_DIR/mirror.json and published on
oms.STREAM.mirror once a second. Exit 1 when the stream and the journal disagree (never overwritten).
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    URL_SOURCES["nats"] = _open_nats
    URL_SOURCES["tls"] = _open_nats
    p = subparsers.add_parser(
        "mirror",
        help="mirror the journal into a NATS JetStream stream (fan-out and history beyond one machine)",
        description="Publish every envelope of DATA_DIR's journal to JetStream: stream seq = journal seq.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="the service's data dir")
    p.add_argument(
        "--nats",
        metavar="URL[,URL...]",
        help="NATS server, or a cluster's servers comma-separated (default nats://127.0.0.1:4222)",
    )
    p.add_argument("--stream", metavar="NAME", help="stream name, one per service (default OMS)")
    p.add_argument(
        "--replicas",
        type=int,
        choices=(1, 3, 5),
        help="replicas of a new stream and snapshot store (def. 1)",
    )
    p.add_argument("--config", metavar="FILE.toml", help="the [mirror] table: credentials, TLS, replicas")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    p.set_defaults(func=mirror_command)


def _open_nats(url: str) -> LogSource:
    return NatsSource(url)


def load_config(
    url: str | None, stream: str | None, config_file: str | None, replicas: int | None = None
) -> MirrorConfig:
    return mirror_config(mirror_table(config_file), os.environ, url, stream, replicas)


def build_mirror(data_dir: Path, config: MirrorConfig) -> Mirror:
    """The mirror of DATA_DIR's journal, reporting to DATA_DIR/mirror.json."""
    return Mirror(journal_dir(data_dir), config, data_dir / STATUS_FILE)


def mirror_command(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    try:
        config = load_config(args.nats, args.stream, args.config, args.replicas)
        mirror = build_mirror(args.data_dir, config)
    except (NatsConfigError, JournalError) as exc:
        print(f"oms mirror: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"oms mirror: {mirror.journal_dir} -> {config.nats.describe()}", file=sys.stderr, flush=True)
    try:
        asyncio.run(_until_signal(mirror))
    except MirrorDiverged as exc:
        print(f"oms mirror: stopped: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


async def _until_signal(mirror: Mirror) -> None:
    """Run the mirror until SIGINT/SIGTERM (then in-flight acks are awaited briefly and the status
    written) or until it stops on a divergence."""
    task = asyncio.create_task(mirror.run())
    loop = asyncio.get_running_loop()

    def stop() -> None:
        mirror.stop()
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise


class MirrorThread:
    """`oms run --mirror`: the mirror on its own event loop in a daemon thread, so the service's loop never
    waits for NATS (the mirror reads the journal files; it is never on the append path)."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror
        self.loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name="oms-mirror", daemon=True)

    def start(self) -> MirrorThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._task = self.loop.create_task(self.mirror.run())
        try:
            self.loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except MirrorDiverged as exc:
            logging.getLogger(__name__).error("mirror stopped: %s", exc)
            print(f"oms run: the mirror stopped: {exc}", file=sys.stderr, flush=True)
        finally:
            self.loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        """After the service stopped: let the mirror publish its last events (bounded), then stop it."""
        with contextlib.suppress(RuntimeError, TimeoutError):  # RuntimeError: the mirror had stopped
            asyncio.run_coroutine_threadsafe(self.mirror.caught_up(timeout), self.loop).result(timeout + 1)
        task = self._task
        with contextlib.suppress(RuntimeError):  # the loop already closed: the mirror had stopped
            self.loop.call_soon_threadsafe(self.mirror.stop)
            if task is not None:
                self.loop.call_soon_threadsafe(task.cancel)
        self._thread.join(timeout)


def start_mirror(
    data_dir: Path, url: str, config_file: str | None, replicas: int | None = None
) -> MirrorThread:
    """What `oms run --mirror URL[,URL...] [--replicas N]` starts beside the service."""
    config = load_config(url, None, config_file, replicas)
    return MirrorThread(build_mirror(Path(data_dir), config)).start()
