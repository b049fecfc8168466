"""`TwsSimulator`: the asyncio TCP server, its test hooks, and a thread runner for synchronous callers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec

from adapters.tws_sim import orders
from adapters.tws_sim.account import ExecRecord, Position
from adapters.tws_sim.catalog import BY_KEY, resolve
from adapters.tws_sim.config import SimConfig
from adapters.tws_sim.control import ControlServer
from adapters.tws_sim.engine import Engine
from adapters.tws_sim.hours import SimClock
from adapters.tws_sim.matching import SimOrder
from adapters.tws_sim.playback import read_capture
from adapters.tws_sim.requests import PlaceOrder
from adapters.tws_sim.schedule import RESET_END, RESET_START, RESTART_END, RESTART_START, Schedule
from adapters.tws_sim.session import Session
from events.schema import Contract

log = logging.getLogger(__name__)
T = TypeVar("T")


class ConnectionInfo(msgspec.Struct, frozen=True):
    client_id: int
    server_version: int
    frames_sent: int


class TwsSimulator:
    """A simulated TWS on loopback. Test hooks may be called from the loop or from any other thread."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.engine = Engine(self.config)
        self.port = 0
        self.host = "127.0.0.1"
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sessions: set[Session] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._stop_thread: Callable[[], None] | None = None  # set by run_simulator_in_thread
        self._control: ControlServer | None = None
        self.schedule = Schedule(self.config, self.engine.clock())
        self.restarting = False  # TWS's daily restart: sockets closed, new ones refused until it ends
        self._watch: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._on_client, host, port)
        self.host, self.port = self._server.sockets[0].getsockname()[:2]
        if self.config.tick_interval_ms:
            self._ticker = asyncio.create_task(self._tick(self.config.tick_interval_ms / 1000.0))
        elif self.schedule.active:  # IB's day follows the clock even when no price moves
            self._watch = asyncio.create_task(self._follow_schedule())
        if self.config.control_file:
            self._control = ControlServer(self, Path(self.config.control_file))
            await self._control.start()
        log.debug("TWS simulator listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stop serving; from another loop than the simulator's own (it runs on a thread), the thread's
        runner stops it and the thread."""
        if self._stop_thread is not None and self._loop is not None and _running_loop() is not self._loop:
            await asyncio.to_thread(self._stop_thread)
            return
        if self._control is not None:
            await self._control.stop()
        for task in (self._ticker, self._watch):
            if task:
                task.cancel()
        if self._server:
            self._server.close()
        for session in list(self._sessions):
            self.engine.peers.remove(session)
            session.close()
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=5)
            for task in pending:
                task.cancel()
        if self._server:
            await self._server.wait_closed()
        self.engine.close()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.restarting:  # not listening yet: the client sees its connection closed and retries
            writer.close()
            return
        session = Session(self.engine, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._tasks.discard(task)
            self._sessions.discard(session)

    async def _tick(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self._scheduled()
            self.engine.expire()
            self._step(1)

    async def _follow_schedule(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._scheduled()

    def _scheduled(self) -> None:
        """Go through the moments of IB's day the clock has passed (schedule.py), in order."""
        for moment in self.schedule.crossed(self.engine.clock()):
            log.info("IB's day: %s", moment)
            if moment == RESET_START:
                self.engine.set_link(False)
            elif moment == RESET_END:
                self.engine.set_link(True, self.config.reset_data_lost)
            elif moment == RESTART_START:
                self.restart(lasting=True)
            elif moment == RESTART_END:
                self.restarting = False

    def _call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the simulator's loop (now if already there), so the engine has one thread."""
        loop = self._loop
        if loop is None or not loop.is_running() or _running_loop() is loop:
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    # ---- test and fault hooks --------------------------------------------------------------------

    def set_price(self, name: str, price: float) -> None:
        """Move a price path (a stock symbol, or a local symbol: `ESZ6`, `EUR.USD`) and match at it."""
        key = price_key(name)

        def run() -> None:
            self.engine.prices.set(key, price)
            self.engine.match(key)

        self._call(run)

    def price(self, name: str) -> float:
        key = price_key(name)
        return self._call(lambda: self.engine.prices.price(key))

    def step(self, n: int = 1) -> None:
        self._call(lambda: self._step(n))

    def _step(self, n: int) -> None:
        for key in self.engine.prices.step(n):
            self.engine.match(key)

    # ---- the clock and TWS's link to IB ----------------------------------------------------------

    def now(self) -> float:
        return self._call(self.engine.clock)

    @property
    def clock(self) -> Callable[[], float]:
        """The simulator's clock itself, to read from any thread without a hop to its loop (a SimClock
        is safe to read so): the embedded service stamps its journal with it."""
        return self.engine.clock

    def set_time(self, epoch: float) -> None:
        """Move the simulator's clock (DAY orders past their close are cancelled, sessions open)."""
        self._call(lambda: self._moved(lambda clock: clock.set(epoch)))

    def advance(self, seconds: float) -> None:
        self._call(lambda: self._moved(lambda clock: clock.advance(seconds)))

    def _moved(self, move: Callable[[SimClock], None]) -> None:
        clock = self.engine.clock
        if not isinstance(clock, SimClock):
            raise TypeError("this simulator runs on an external clock")
        move(clock)
        self._scheduled()
        self.engine.expire()
        self.engine.match_all()

    def lose_link(self) -> None:
        """TWS loses IB (1100 to every client, sockets stay up); nothing trades until restored."""
        self._call(lambda: self.engine.set_link(False))

    def restore_link(self, data_lost: bool = False) -> None:
        """1101 (data lost: clients must resubscribe) or 1102 (data maintained); matching resumes."""
        self._call(lambda: self.engine.set_link(True, data_lost))

    def force_fault(self, name: str, times: int = 1) -> None:
        """Make the next `times` orders suffer fault `name`, whatever the configured probabilities."""
        self._call(lambda: self.engine.dice.force(name, times))

    def restart(self, code: int | None = None, lasting: bool = False) -> None:
        """TWS restarts: every API socket closes (error `code` first if given) and new ones are refused;
        `lasting`: until the schedule's restart_end, else TWS is back at once (the control channel's and
        the fault hook's restart)."""
        self.restarting = True
        for peer in list(self.engine.peers):
            self.engine.drop_peer(peer, code)
        self.restarting = lasting

    async def drop_connections(self, code: int | None = 1100) -> None:
        """The API sockets drop (TWS restarting), error `code` first; safe from any thread's loop."""
        self._call(lambda: self.restart(code))

    def place_external_order(
        self,
        symbol: str,
        action: str,
        quantity: float,
        order_type: str = "LMT",
        lmt_price: float | None = None,
        aux_price: float | None = None,
        client_id: int = 0,
        order_ref: str = "",
        tif: str = "DAY",
        contract: Contract | None = None,
    ) -> SimOrder:
        """An order placed in TWS by hand (client_id 0: orderId 0 until bound, live only to client 0 with
        reqAutoOpenOrders(True) and to the master client) or by another API client."""

        def run() -> SimOrder:
            manual = client_id == 0
            order_id = self.engine.new_manual_id() if manual else self.engine.next_valid_id(client_id)
            req = PlaceOrder(
                order_id=order_id,
                contract=contract or Contract(symbol=symbol.upper()),
                action=action.upper(),
                quantity=float(quantity),
                order_type=order_type.upper(),
                lmt_price=lmt_price,
                aux_price=aux_price,
                tif=tif,
                oca_group="",
                account=self.config.accounts[0],
                order_ref=order_ref,
                transmit=True,
                parent_id=0,
                outside_rth=False,
            )
            orders.place(self.engine, client_id, req)
            return self.engine.book.orders[(client_id, order_id)]

        return self._call(run)

    place_manual_order = place_external_order

    def fill_external(self, symbol: str, action: str, quantity: float, client_id: int = 0) -> SimOrder:
        """A market order placed outside this client that fills at once at the current price."""
        return self.place_external_order(symbol, action, quantity, "MKT", client_id=client_id)

    async def play_capture(self, path: Path, client_id: int | None = None) -> int:
        """Send a recorded capture's frames to connected clients (all, or those with `client_id`)."""
        frames = read_capture(Path(path))
        peers = [p for p in self.engine.peers if client_id is None or p.client_id == client_id]
        for peer in peers:
            for fields in frames:
                peer.send(fields)
        return len(frames) * len(peers)

    # ---- read-only views -------------------------------------------------------------------------

    @property
    def connections(self) -> list[ConnectionInfo]:
        return self._call(
            lambda: [
                ConnectionInfo(p.client_id, p.version, getattr(p, "frames_sent", 0))
                for p in self.engine.peers
            ]
        )

    @property
    def orders(self) -> list[SimOrder]:
        return self._call(lambda: sorted(self.engine.book.orders.values(), key=lambda o: o.perm_id))

    @property
    def executions(self) -> list[ExecRecord]:
        return self._call(lambda: list(self.engine.executions))

    @property
    def positions(self) -> list[Position]:
        return self._call(lambda: [p for a in self.engine.accounts.values() for p in a.positions.values()])


def price_key(name: str) -> str:
    """The price path a test names: a stock symbol or a local symbol (`ESZ6`, `EUR.USD`, an option's)."""
    if name in BY_KEY:
        return name
    inst = resolve(Contract(symbol=name.upper()))
    if inst is None:
        raise KeyError(f"{name!r} names no instrument of the simulator's catalog")
    return inst.key


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Served(Protocol):
    """A server with the simulator's lifecycle (the simulator, a playback)."""

    port: int

    async def start(self, host: str = ..., port: int = ...) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=Served)


def serve_in_thread(server: S, host: str = "127.0.0.1", port: int = 0) -> tuple[S, int, Callable[[], None]]:
    """Start `server` on its own event loop in a daemon thread; returns (server, port, stop)."""
    loop = asyncio.new_event_loop()
    started: concurrent.futures.Future[None] = concurrent.futures.Future()

    def serve() -> None:
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            try:
                await server.start(host, port)
            except BaseException as exc:
                started.set_exception(exc)
                raise
            started.set_result(None)

        loop.run_until_complete(boot())
        loop.run_forever()

    thread = threading.Thread(target=serve, name="tws-sim", daemon=True)
    thread.start()
    started.result(timeout=10)

    def stop() -> None:
        if not loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    return server, server.port, stop


def run_simulator_in_thread(
    config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> tuple[TwsSimulator, int, Callable[[], None]]:
    """Start a simulator on its own event loop in a daemon thread; returns (simulator, port, stop)."""
    sim, port, stop = serve_in_thread(TwsSimulator(config), host, port)
    sim._stop_thread = stop
    return sim, port, stop


__all__: list[Any] = ["TwsSimulator", "run_simulator_in_thread", "serve_in_thread"]
