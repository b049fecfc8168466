"""The service: one asyncio process wiring journal, fold, broker adapter, publisher and router.

Start-up, in order: open the journal (a torn tail is cut and reported), load the newest snapshot and fold
the tail after it, bind the sockets (the router answers queries at once, commands get `not_ready`), log
SessionStarted, connect to IB (the adapter reconciles open orders, executions and positions), and only
then accept commands. Shutdown: stop taking commands, let broker calls in flight finish, disconnect,
fsync the journal, write a snapshot, close the sockets.

The broker is built by a factory from the composition root (`oms.cli.run`): nothing in `oms` but the
command line imports `adapters`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import zmq
import zmq.asyncio

from events.journal import JournalWriter
from events.journal_errors import JournalError
from events.reader import JournalReader
from events.schema import ConnectionChanged, Event, ReconciliationFinished, SessionStarted
from events.snapshots import CorruptSnapshotWarning, latest_snapshot, prune_snapshots, write_snapshot
from oms import __version__
from oms.protocol import ENDPOINTS_FILE, HEARTBEAT_INTERVAL_S, Endpoints, StatusResult
from oms.service.authz import load_grants
from oms.service.config import Config, ConfigError
from oms.service.curve import check_binds, server_keys, start_authenticator
from oms.service.files import write_private
from oms.service.handlers import Broker, Handlers
from oms.service.pipeline import Pipeline
from oms.service.publisher import Publisher
from oms.service.router import Router
from oms.state.codec import SnapshotError, decode_state, encode_state
from oms.state.fold import fold
from oms.state.model import TERMINAL, State, initial_state

log = logging.getLogger(__name__)
LOSS_WATCH_S = 1.0  # how often loss limits are checked against IB's prices (and sessions rolled)


class ManagedBroker(Broker, Protocol):
    async def connect(self, timeout: float) -> Any: ...
    async def disconnect(self) -> Any: ...


Sink = Callable[[Event], Any]
START_ERRORS = (ConfigError, JournalError, ConnectionError, OSError, TimeoutError)  # reported, not raised
BrokerFactory = Callable[[Sink, Callable[[], State]], ManagedBroker]


def load_state(
    journal_dir: Path, last_seq: int, frame_crc: Callable[[int], int | None] | None = None
) -> tuple[State, int]:
    """(state at `last_seq`, seq of the snapshot it started from, 0 for none): a snapshot the code
    cannot read (an older state layout), a corrupt one, or one whose journal frame is not the one it was
    taken at (the log was cut and grew again) is skipped with a warning, since the journal is the truth;
    the service owns the directory, so the bad ones are deleted."""
    state = initial_state()
    with warnings.catch_warnings(record=True) as skipped:
        warnings.simplefilter("always", CorruptSnapshotWarning)
        found = latest_snapshot(journal_dir, max_seq=last_seq, discard=True, frame_crc=frame_crc)
    for warning in skipped:
        log.warning("snapshot skipped: %s", warning.message)
    if found is not None:
        try:
            state = decode_state(found[1])
        except SnapshotError as exc:
            log.warning("snapshot at seq %d unreadable (%s); folding the whole journal", found[0], exc)
            found = None
    if state.seq < last_seq:  # a snapshot at the end (a clean stop) needs no read of the journal at all
        state = fold(JournalReader(journal_dir).read(state.seq + 1, last_seq), state)
    return state, found[0] if found else 0


def local_time_zone() -> str:
    """The IANA name of this host's zone: $TZ, else the /etc/localtime link, else UTC."""
    for name in (os.environ.get("TZ", "").lstrip(":"), _zone_of_link(Path("/etc/localtime"))):
        if name:
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
            return name
    return "UTC"


def _zone_of_link(path: Path) -> str:
    try:
        target = str(path.resolve(strict=True))
    except OSError:
        return ""
    return target.partition("/zoneinfo/")[2]


class Service:
    def __init__(
        self,
        config: Config,
        broker_factory: BrokerFactory,
        ib_endpoint: str = "",
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        """`clock` (ns since the epoch) stamps the journal's events and is what max-age compares their
        times with: wall time, or the simulator's when the whole world is simulated (oms.service.clock)."""
        self.config = config
        self.clock = clock
        self.data_dir = Path(config.data_dir)
        self.journal_dir = self.data_dir / "journal"
        self.ib_endpoint = ib_endpoint or f"{config.ib_host}:{config.ib_port}"
        self._broker_factory = broker_factory
        self._tasks: list[asyncio.Task[Any]] = []
        self._snapshot_writes: set[asyncio.Future[Any]] = set()
        self.broker: ManagedBroker | None = None
        self.endpoints: Endpoints | None = None
        self.recovery: str | None = None
        self.summary = ""  # what shutdown flushed, one line (also logged)
        self._state: State | None = None
        self._stopped = False
        self.started_ts = time.time_ns()
        self.reconciled: tuple[int, int, bool] = (0, 0, False)  # seq, ts, ok of the last reconciliation

    def use_broker(self, broker_factory: BrokerFactory, ib_endpoint: str) -> None:
        """Point the service at IB once its address is known (the embedded simulator's free port)."""
        self._broker_factory = broker_factory
        self.ib_endpoint = ib_endpoint

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        state = self.open()
        curve_public, curve_secret = server_keys(config.curve)
        self.ctx = zmq.asyncio.Context()
        self.auth = start_authenticator(self.ctx, config.curve) if curve_secret else None
        self.publisher = Publisher(
            zmq.Context.shadow(self.ctx.underlying), config.pub, config.pub_hwm, curve_secret
        )
        self.pipeline = Pipeline(
            self.journal, state, self.publisher, self._snapshot_due, config.snapshot_every, config.durability
        )
        self.handlers = Handlers(
            self.pipeline, config, JournalReader(self.journal_dir), __version__, clock=self.clock
        )
        self.handlers.status_provider = self.status_result
        self.router = Router(self.ctx, config.router, self.handlers.handle, curve_secret)
        self.endpoints = Endpoints(
            pub=self.publisher.endpoint,
            router=self.router.endpoint,
            ib=self.ib_endpoint,
            pid=os.getpid(),
            curve_server_key=curve_public.decode() if curve_public else None,
        )
        write_private(self.data_dir / ENDPOINTS_FILE, msgspec.json.encode(self.endpoints))
        self._tasks = [
            asyncio.create_task(self.router.serve(), name="router"),
            asyncio.create_task(self._every(HEARTBEAT_INTERVAL_S, self.pipeline.heartbeat), name="heartbeat"),
        ]
        if config.risk.max_order_age_s is not None:
            sweep = min(1.0, config.risk.max_order_age_s / 4)
            expire = self._every(sweep, self.handlers.cancel_expired)
            self._tasks.append(asyncio.create_task(expire, name="max_age"))

        session = self.pipeline.append(SessionStarted(version=__version__, config_digest=config.digest()))
        self.broker = self._broker_factory(self._sink, lambda: self.pipeline.state)
        await self.broker.connect(config.connect_timeout_s)
        self.handlers.abandon_unsent(session.seq)
        self.handlers.broker = self.broker  # reconciled: commands are accepted from here on
        self.handlers.cancel_killed()
        losses = self._every_async(LOSS_WATCH_S, self.handlers.watch_losses)
        self._tasks.append(asyncio.create_task(losses, name="daily_loss"))
        log.info("ready: PUB %s ROUTER %s IB %s", self.endpoints.pub, self.endpoints.router, self.ib_endpoint)

    def open(self) -> State:
        """Lock and recover the journal; the state at its last seq (snapshot + tail). The first thing
        start-up does (the composition root calls it even before starting the embedded simulator), so a
        service refused by the lock touches nothing; idempotent."""
        if self._state is not None:
            return self._state
        check_binds([self.config.pub, self.config.router], self.config.curve)  # refusals touch nothing
        server_keys(self.config.curve)
        load_grants(self.config.curve)
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.journal = JournalWriter.open(
            self.journal_dir,
            durability=self.config.durability,
            group_commit_ms=self.config.group_commit_ms,
            clock=self.clock,
        )
        if self.journal.recovery is not None:
            self.recovery = str(self.journal.recovery)
            log.warning("journal recovery: %s", self.recovery)
        for path in self.journal.discarded_snapshots:
            log.warning(
                "snapshot %s is beyond the journal's end (seq %d): deleted", path, self.journal.last_seq
            )
        try:
            state, snapshot_seq = load_state(self.journal_dir, self.journal.last_seq, self.journal.frame_crc)
        except BaseException:
            self.journal.close()
            raise
        log.info("state at seq %d (snapshot at %d + the journal after it)", state.seq, snapshot_seq)
        self._state = state
        return state

    def _sink(self, event: Event) -> None:
        """The adapter's sink; learns the default account from the connection when none is configured."""
        if type(event) is ConnectionChanged and event.accounts and not self.handlers.default_account:
            self.handlers.default_account = event.accounts[0]
        env = self.pipeline.append(event)
        if type(event) is ReconciliationFinished:
            self.reconciled = (env.seq, env.ts, event.ok)

    async def stop(self) -> None:
        """Graceful shutdown (idempotent); the journal ends fsynced and a snapshot is written."""
        if self._stopped:
            return
        self._stopped = True
        handlers = getattr(self, "handlers", None)
        if handlers is not None:
            handlers.accepting = False
            await handlers.drain_tasks()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.broker is not None:
            with contextlib.suppress(Exception):
                await self.broker.disconnect()
        if hasattr(self, "pipeline"):
            await asyncio.gather(*self._snapshot_writes, return_exceptions=True)
            if self.pipeline.failure is None:  # a failed journal has nothing more to flush or snapshot
                self.pipeline.drain()
                durable = self.journal.sync()
                snapshot = self.write_snapshot()
                self.summary = (
                    f"stopped: journal fsynced through seq {durable} ({self.pipeline.appended} events "
                    f"this session), snapshot written at seq {snapshot}"
                )
            else:
                self.summary = f"stopped after a journal failure ({self.pipeline.failure}): no snapshot"
            log.info("%s", self.summary)
        if hasattr(self, "journal"):
            self.journal.close()
        for closable in ("router", "publisher"):
            if hasattr(self, closable):
                getattr(self, closable).close()
        if getattr(self, "auth", None) is not None:
            self.auth.stop()  # type: ignore[union-attr]
        if hasattr(self, "ctx"):
            self.ctx.destroy(linger=0)  # closes what a failed start left open: never waits
        if self.endpoints is not None:  # ours (a refused start must not remove a running service's file)
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / ENDPOINTS_FILE).unlink()

    # -- snapshots ----------------------------------------------------------------------------------

    def write_snapshot(self) -> int:
        state = self.pipeline.state
        write_snapshot(self.journal_dir, state.seq, encode_state(state), self.journal.frame_crc(state.seq))
        prune_snapshots(self.journal_dir, keep=3)
        return state.seq

    def _snapshot_due(self) -> None:
        """Encode now (consistent at this seq), write and fsync in a thread."""
        state = self.pipeline.state
        seq, payload = state.seq, encode_state(state)
        frame_crc = self.journal.frame_crc(seq)

        def write() -> None:
            write_snapshot(self.journal_dir, seq, payload, frame_crc)
            prune_snapshots(self.journal_dir, keep=3)

        future = asyncio.get_running_loop().run_in_executor(None, write)
        self._snapshot_writes.add(future)
        future.add_done_callback(self._snapshot_writes.discard)

    # -- periodic work and status -------------------------------------------------------------------

    async def _every(self, interval: float, action: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                action()
            except Exception:
                log.exception("periodic %s failed", getattr(action, "__name__", action))

    async def _every_async(self, interval: float, action: Callable[[], Coroutine[Any, Any, None]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await action()
            except Exception:
                log.exception("periodic %s failed", getattr(action, "__name__", action))

    @property
    def ready(self) -> bool:
        return hasattr(self, "handlers") and self.handlers.ready

    def status_result(self) -> StatusResult:
        """The `status` reply (`oms status`)."""
        state = self.pipeline.state
        seq, ts, ok = self.reconciled
        scopes = state.kill_scopes
        return StatusResult(
            ready=self.ready,
            version=__version__,
            pid=os.getpid(),
            ib=self.ib_endpoint,
            connection=state.connection,
            journal_seq=self.journal.last_seq,
            durable_seq=self.journal.durable_seq,
            reconciled_seq=seq,
            reconciled_ts=ts,
            reconciliation_ok=ok,
            subscribers=self.publisher.subscribers,
            open_orders=sum(1 for o in state.orders.values() if o.status not in TERMINAL),
            kill_switch=state.kill_switch,
            started_ts=self.started_ts,
            kill_scopes={k: f"{code or 'kill_switch'}: {why}" for k, (code, why) in scopes.items()},
            live_orders=len(state.orders),
            retired_orders=state.history.orders,
            time_zone=local_time_zone(),
            simulator=self.config.embedded_sim,
        )

    def status(self) -> dict[str, Any]:
        state = self.pipeline.state
        return {
            "connection": state.connection,
            "ready": self.ready,
            "seq": state.seq,
            "appended": self.pipeline.appended,
            "open_orders": sum(1 for o in state.orders.values() if o.status not in TERMINAL),
            "kill_switch": state.kill_switch,
            "time": time.time(),
        }
