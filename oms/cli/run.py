"""`oms run` (the service, by default against the embedded TWS simulator) and `oms keys` (CURVE keys).

The composition root of the service: the only place that joins `oms.service.app` to `adapters.ib` and
`adapters.tws_sim`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from adapters.ib.adapter import IBAdapter
from adapters.ib.wire import WireRecorder
from adapters.tws_sim.config import SimConfig
from adapters.tws_sim.config import load_config as sim_load_config
from adapters.tws_sim.control import CONTROL_FILE, iso_time
from adapters.tws_sim.embedded import start_embedded
from adapters.tws_sim.server import TwsSimulator
from events.journal_errors import JournalLocked
from oms.cli.logs import setup_logging
from oms.cli.mirror import start_mirror
from oms.cli.web import web_child
from oms.client.jetstream_wire import redact_url
from oms.protocol import Endpoints
from oms.service.app import START_ERRORS, BrokerFactory, Service, Sink
from oms.service.clock import ServiceClock
from oms.service.config import Config, ConfigError, load_config, parse_host_port
from oms.service.curve import check_binds, write_keypair
from oms.state.model import State

T = TypeVar("T")
log = logging.getLogger(__name__)

RUN_EPILOG = """\
examples:
  oms run                                  embedded simulator, data in ./oms-data
  oms run --sim-config sim.toml            its settings (clock_start, reset_at, restart_at...) from a file
  oms run --data-dir /srv/oms --ib 127.0.0.1:4002 --account DU123456
  oms run --config oms.toml --max-quantity 500 --allowed-symbols AAPL,MSFT
  oms run --ib 127.0.0.1:7496 --live       a LIVE port needs --live
  oms run --ib 127.0.0.1:4002 --record-wire   every byte to and from IB Gateway into DATA_DIR/wire
  oms run --router tcp://0.0.0.0:5556 --curve-secret keys/server.key_secret --curve-clients keys/clients

The bound endpoints are written to DATA_DIR/endpoints.json (other `oms` commands read it).
With the embedded simulator the service runs on its clock (`oms sim clock` moves both).
SIGINT/SIGTERM: graceful shutdown (journal fsynced, snapshot written), exit 0.
"""

KEYS_EPILOG = """\
examples:
  oms keys keys/                 writes keys/server.key (public) and keys/server.key_secret (0600)
  oms keys keys/clients --name strategy1
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "run",
        help="run the order management service (default: against the embedded TWS simulator)",
        description="Run the service: IB -> journal -> fold -> ZeroMQ PUB/ROUTER.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data-dir", help="journal, snapshots, simulator state, endpoints.json (default ./oms-data)"
    )
    p.add_argument("--config", metavar="FILE.toml", help="configuration file (flags and IBKR_* env win)")
    p.add_argument("--ib", metavar="HOST:PORT", help="TWS / IB Gateway (default: the embedded simulator)")
    p.add_argument("--client-id", type=int, help="IB API client id (default 1)")
    p.add_argument("--account", help="default account for orders (default: the first IB reports)")
    p.add_argument("--live", action="store_true", default=None, help="allow a live-trading port (7496, 4001)")
    p.add_argument("--pub", metavar="ENDPOINT", help="PUB endpoint (default tcp://127.0.0.1:5555)")
    p.add_argument("--router", metavar="ENDPOINT", help="ROUTER endpoint (default tcp://127.0.0.1:5556)")
    p.add_argument("--durability", choices=["always", "group", "never"], help="journal fsync policy")
    p.add_argument("--library", choices=["ib_async", "ib_insync"], help="IB client library")
    p.add_argument(
        "--record-wire", action="store_true", default=None,
        help="record every byte exchanged with TWS into DATA_DIR/wire (`oms wire show`)",
    )  # fmt: skip
    p.add_argument("--snapshot-every", type=int, metavar="N", help="events between snapshots")
    p.add_argument("--max-quantity", type=Decimal, help="risk: largest order quantity")
    p.add_argument("--max-notional", type=Decimal, help="risk: largest quantity x price")
    p.add_argument("--max-position", type=Decimal, help="risk: largest absolute position per contract")
    p.add_argument("--allowed-symbols", metavar="A,B", help="risk: only these symbols")
    p.add_argument("--max-order-age", type=float, metavar="S", help="risk: cancel orders working longer")
    p.add_argument("--curve-secret", metavar="FILE", help="server .key_secret (CURVE)")
    p.add_argument("--curve-clients", metavar="DIR", help="folder of allowed client .key files (CURVE)")
    p.add_argument(
        "--mirror",
        metavar="URL[,URL...]",
        help="also mirror the journal into NATS JetStream: a server or a cluster's servers (docs/scaling.md)",
    )
    p.add_argument(
        "--replicas", type=int, choices=(1, 3, 5), help="with --mirror: replicas of a new stream (default 1)"
    )
    p.add_argument(
        "--sim-tick-ms", type=float, help="embedded simulator price tick (ms; default 1000; 0: none)"
    )
    p.add_argument(
        "--sim-config", metavar="FILE.toml",
        help="embedded simulator: SimConfig fields, as `oms sim --config` (its clock, IB's day, faults)",
    )  # fmt: skip
    p.add_argument(
        "--web", nargs="?", const="127.0.0.1:8080", metavar="HOST:PORT",
        help="also serve the web blotter (`oms web`) beside the service (default 127.0.0.1:8080)",
    )  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    p.set_defaults(func=run)

    k = subparsers.add_parser(
        "keys",
        help="write a CURVE keypair (for binding beyond loopback)",
        epilog=KEYS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    k.add_argument("directory", help="where to write NAME.key and NAME.key_secret")
    k.add_argument("--name", default="server", help="file name stem (default server)")
    k.set_defaults(func=keys)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Flags as config keys; None means "not given" (the TOML file or the environment decide)."""
    host, port = parse_host_port(args.ib) if args.ib else (None, None)
    symbols = (
        tuple(s.strip() for s in args.allowed_symbols.split(",") if s.strip())
        if args.allowed_symbols
        else None
    )
    return {
        "data_dir": args.data_dir,
        "ib_host": host,
        "ib_port": port,
        "client_id": args.client_id,
        "account": args.account,
        "live": args.live,
        "pub": args.pub,
        "router": args.router,
        "durability": args.durability,
        "library": args.library,
        "record_wire": args.record_wire,
        "snapshot_every": args.snapshot_every,
        "risk": {
            "max_quantity": args.max_quantity,
            "max_notional": args.max_notional,
            "max_position": args.max_position,
            "allowed_symbols": symbols,
            "max_order_age_s": args.max_order_age,
        },
        "curve": {"server_secret_key": args.curve_secret, "authorized_clients": args.curve_clients},
    }


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    try:
        config = load_config(args.config, os.environ, overrides(args))
        check_binds([config.pub, config.router], config.curve)  # before anything starts
    except ConfigError as exc:
        print(f"oms run: {exc}", file=sys.stderr)
        return 2
    try:
        sim_config = embedded_sim_config(args.sim_config, args.sim_tick_ms)
    except (OSError, ValueError, msgspec.ValidationError) as exc:  # tomllib's errors are ValueErrors
        print(f"oms run: --sim-config {args.sim_config}: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(
        serve(
            config,
            sim_config,
            web=args.web,
            mirror=args.mirror,
            config_file=args.config,
            replicas=args.replicas,
        )
    )


def embedded_sim_config(path: str | None, tick_ms: float | None) -> SimConfig:
    """The embedded simulator's settings: the file's (`--sim-config`), a price tick every second unless
    it or `--sim-tick-ms` says otherwise (0: no tick)."""
    base = sim_load_config(Path(path)) if path else SimConfig(tick_interval_ms=1000.0)
    return base if tick_ms is None else msgspec.structs.replace(base, tick_interval_ms=tick_ms or None)


def keys(args: argparse.Namespace) -> int:
    try:
        public, secret = write_keypair(args.directory, args.name)
    except FileExistsError as exc:
        print(f"oms keys: {exc.filename} exists; not overwriting keys", file=sys.stderr)
        return 2
    print(f"public key: {public}\nsecret key: {secret} (mode 0600: keep it private)")
    return 0


def broker_factory(config: Config, host: str, port: int) -> BrokerFactory:
    def build(sink: Sink, state_provider: Callable[[], State]) -> IBAdapter:
        return IBAdapter(
            host,
            port,
            config.client_id,
            sink=sink,
            state_provider=state_provider,
            library=config.library,
            master_client=config.master_client,
            wire=WireRecorder.in_data_dir(config.data_dir) if config.record_wire else None,
        )

    return build


async def build(config: Config, sim_config: SimConfig | None = None) -> tuple[Service, TwsSimulator | None]:
    """The service with its journal open, and the embedded simulator (started; state in DATA_DIR/sim)
    when no IB port is set, whose clock is then the service's too (oms.service.clock). The journal's lock
    comes first: a refused start writes nothing anywhere."""
    factory = broker_factory(config, config.ib_host, config.ib_port or 0)
    if not config.embedded_sim:
        service = Service(config, factory)
        service.open()  # the journal lock first: a refused second service writes nothing
        return service, None
    clock = ServiceClock()  # the whole world is simulated: the service's time is the simulator's
    service = Service(config, factory, clock=clock)
    journal_ts = service.open().ts  # the lock first: a refused second service starts no simulator
    clock.floor(journal_ts)
    sim_dir = Path(config.data_dir) / "sim"
    sim_dir.mkdir(mode=0o700, exist_ok=True)  # not via sim's parents=True: that is 0755
    sim_config = msgspec.structs.replace(
        sim_config or SimConfig(),
        state_dir=str(sim_dir),
        control_file=str(Path(config.data_dir) / CONTROL_FILE),  # `oms sim price|clock|restart`
    )
    try:
        sim = await start_embedded(sim_config)  # its own thread and loop: a separate "TWS"
    except BaseException:
        await service.stop()
        raise
    clock.follow(sim.clock)
    if journal_ts / 1e9 > sim.now():
        log.warning(
            "the journal's last event (%s) is later than the simulator's clock (%s): the service's time "
            "holds there until the simulator's passes it (`oms sim clock` moves it on)",
            iso_time(journal_ts / 1e9), iso_time(sim.now()),
        )  # fmt: skip
    service.use_broker(broker_factory(config, "127.0.0.1", sim.port), f"127.0.0.1:{sim.port}")
    return service, sim


async def serve(
    config: Config,
    sim_config: SimConfig | None = None,
    web: str | None = None,
    mirror: str | None = None,
    config_file: str | None = None,
    replicas: int | None = None,
) -> int:
    """Run until SIGINT/SIGTERM; 0 after a clean shutdown, 1 if start-up failed (the reason printed).
    With `web` (HOST:PORT), `oms web` runs as a child process following this service; with `mirror` (a
    NATS URL or a comma-separated list), the JetStream mirror follows the journal on its own thread."""
    try:
        service, sim = await build(config, sim_config)
    except JournalLocked as exc:
        print(
            f"oms run: cannot start: {exc}; another `oms run` uses {config.data_dir}: stop it, "
            "or pass another --data-dir",
            file=sys.stderr,
        )
        return 1
    except START_ERRORS as exc:
        print(f"oms run: cannot start: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    web_process = None
    follower = None
    try:
        starting = asyncio.create_task(service.start())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # raises what made start-up fail
            print_ready(service, web, mirror)
            if web is not None:
                web_process = web_child(str(service.data_dir), web)
            if mirror:
                follower = start_mirror(service.data_dir, mirror, config_file, replicas)
            await show_status(service, stop, config.status_interval_s)
        else:
            starting.cancel()
        stopping.cancel()
    except START_ERRORS as exc:
        print(f"oms run: cannot start: {exc}", file=sys.stderr)
        code = 1
    finally:
        if web_process is not None:
            web_process.terminate()
            await asyncio.to_thread(web_process.wait, 10)
        await service.stop()
        if follower is not None:
            follower.stop()  # after the service: its last events are mirrored too
        if sim is not None:
            await sim.stop()
    if service.summary:
        print(f"oms run: {service.summary}", file=sys.stderr, flush=True)
    return code


def print_ready(service: Service, web: str | None = None, mirror: str | None = None) -> None:
    """One line once commands are accepted, with every address and the data directory (a script or a
    person waits for `ready`)."""
    ep = service.endpoints
    assert ep is not None
    parts = [
        f"PUB {ep.pub}",
        f"ROUTER {ep.router}",
        f"IB {ep.ib}",
        f"data {Path(service.data_dir).resolve()}",
    ]
    if web is not None:  # a child process: it prints its own line (`web URL`, with its token) when up
        parts.append("web (starting: its address follows)" if web.endswith(":0") else f"web http://{web}/")
    if mirror:
        parts.append(f"mirror {redact_url(mirror)}")
    if service.recovery:
        print(f"journal recovery: {service.recovery}", flush=True)
    print(f"ready: {'  '.join(parts)}", flush=True)


async def show_status(service: Service, stop: asyncio.Event, interval: float) -> None:
    """One status line, rewritten in place on a terminal (nothing extra when stdout is not one)."""
    tty = sys.stdout.isatty()
    last_count, last_time = service.pipeline.appended, time.monotonic()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if not tty:
            continue
        status, now = service.status(), time.monotonic()
        rate = (status["appended"] - last_count) / max(now - last_time, 1e-9)
        last_count, last_time = status["appended"], now
        kill = "  KILL SWITCH" if status["kill_switch"] else ""
        line = (
            f"IB {status['connection']:<12} seq {status['seq']:>10}  {rate:>9,.0f} ev/s  "
            f"open orders {status['open_orders']:>5}{kill}"
        )
        print(f"\r{line}", end="", flush=True)
    if tty:
        print(flush=True)


class ServiceThread:
    """The service (and the embedded simulator unless `config.ib_port` is set) on its own event loop in a
    daemon thread: the in-process service API for tests and notebooks. `call(fn)` runs `fn` on that loop
    (the only safe way to read `service.pipeline.state` from another thread)."""

    def __init__(self, config: Config, sim_config: SimConfig | None = None) -> None:
        self.config = config
        self.sim_config = sim_config
        self.loop = asyncio.new_event_loop()
        self.service: Service | None = None
        self.sim: TwsSimulator | None = None
        self._thread = threading.Thread(target=self._run_loop, name="oms-service", daemon=True)

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)  # ib_insync asks the policy for this thread's loop
        self.loop.run_forever()

    def start(self, timeout: float = 60.0) -> ServiceThread:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout)
        except TimeoutError:
            where = self._where()  # before stopping: what the start was waiting for
            self.stop()
            raise TimeoutError(f"the service did not start within {timeout:g} s; {where}") from None
        except BaseException:
            self.stop()
            raise
        return self

    def _where(self) -> str:
        """Where each of the loop's tasks waits, and the IB connection attempts (a start that hangs says
        why)."""
        broker = getattr(self.service, "broker", None)
        lines = [f"IB connect attempts: {getattr(broker, 'connect_attempts', '?')}; the loop's tasks:"]
        for task in list(asyncio.all_tasks(self.loop)):
            lines.append(f"{task.get_name()}:")
            awaiting: Any = task.get_coro()
            while awaiting is not None:  # down the chain of awaits (get_stack shows only the outermost)
                frame = getattr(awaiting, "cr_frame", None) or getattr(awaiting, "gi_frame", None)
                if frame is not None:
                    lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
                awaiting = getattr(awaiting, "cr_await", None) or getattr(awaiting, "gi_yieldfrom", None)
        return "\n".join(lines)

    async def _start(self) -> None:
        self.service, self.sim = await build(self.config, self.sim_config)
        await self.service.start()

    @property
    def endpoints(self) -> Endpoints:
        assert self.service is not None and self.service.endpoints is not None, "not started"
        return self.service.endpoints

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def stop(self) -> None:
        """Graceful, like SIGTERM (idempotent)."""
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            if self.service is not None:
                await self.service.stop()
            if self.sim is not None:
                await self.sim.stop()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def __enter__(self) -> ServiceThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
