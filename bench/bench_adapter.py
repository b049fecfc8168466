"""The IB adapter: what its hooks cost per callback, and an order's round trip through the simulator.

1. Callbacks: a simulator session's frames are recorded from the wire once, then fed through a fresh
   client's Decoder twice in the same run: bare (the library alone: the baseline) and with the adapter's
   hooks (normalize + what-is-new + a counting sink). The difference is what the adapter adds.
2. Round trip: place -> the Filled orderStatus event, one order at a time, through the adapter, beside
   the bare client library placing the same orders on the same simulator.
Each library runs at the server version its users run: ib_async 178 (176 while the simulator stops
there), ib_insync 176.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import statistics
import time
from typing import Any

from adapters.ib.adapter import IBAdapter
from adapters.ib.clientlib import LIBRARIES, load
from adapters.ib.pacing import Pacing
from adapters.tws_sim import SimConfig, TwsSimulator
from events.schema import Contract, Event, OrderRequested, OrderStatusReported

ACCOUNT = "DU123456"
USERS_VERSION = {"ib_async": 178, "ib_insync": 176}


def _sim_config(library: str, **fields: Any) -> SimConfig:
    """The simulator at the library's users' server version, or the highest below it it speaks."""
    for version in range(USERS_VERSION[library], 156, -1):
        try:
            return SimConfig(max_server_version=version, **fields)
        except ValueError:
            continue
    return SimConfig(**fields)


def main(short: bool) -> None:
    logging.disable(logging.CRITICAL)  # the libraries log per message; both runs pay it, the table does not
    try:
        print(f"{'library':<10} {'measure':<44} {'value':>14}  baseline (bare library, same run)")
        for library in LIBRARIES:
            asyncio.run(_callbacks(library, orders=40 if short else 200, repeat=5 if short else 8))
            asyncio.run(_round_trips(library, n=30 if short else 300))
    finally:
        logging.disable(logging.NOTSET)


async def _record_frames(library: str, orders: int) -> tuple[list[list[str]], int]:
    """A real session's server->client frames (connect, sync, fills), as the client decoded them."""
    sim = TwsSimulator(_sim_config(library, partial_fills=2))
    await sim.start(port=0)
    frames: list[list[str]] = []
    done: list[Event] = []
    adapter = IBAdapter("127.0.0.1", sim.port, 1, sink=done.append, library=library)
    decoder = adapter.ib.client.decoder
    interpret = decoder.interpret

    def record(fields: list[str]) -> None:
        frames.append(list(fields))
        interpret(fields)

    decoder.interpret = record
    try:
        await adapter.connect(timeout=5)
        for i in range(orders):
            await adapter.place(_order(f"rec-{i}", "BUY" if i % 2 else "SELL"))
        await _until(
            lambda: sum(isinstance(e, OrderStatusReported) and e.status == "Filled" for e in done) >= orders
        )
        return frames, adapter.ib.client.serverVersion()
    finally:
        await adapter.disconnect()
        await sim.stop()


async def _callbacks(library: str, orders: int, repeat: int) -> None:
    frames, version = await _record_frames(library, orders)
    bare = hooked = float("inf")
    for _ in range(5):  # interleaved, best of 5: both runs see the same machine state
        bare = min(bare, _feed(library, frames, version, repeat, hooked=False))
        hooked = min(hooked, _feed(library, frames, version, repeat, hooked=True))
    n = len(frames) * repeat
    _row(
        library,
        f"callbacks/s through the adapter ({len(frames)} frames)",
        f"{n / hooked:,.0f}",
        f"{n / bare:,.0f}/s",
    )
    _row(library, "time per callback (us)", f"{hooked / n * 1e6:.2f}", f"{bare / n * 1e6:.2f} us")
    _row(library, "added by the adapter per callback (us)", f"{(hooked - bare) / n * 1e6:.2f}", "")


def _feed(library: str, frames: list[list[str]], version: int, repeat: int, hooked: bool) -> float:
    """Seconds to decode `frames` `repeat` times on a fresh client, with or without the adapter."""
    events: list[Event] = []
    if hooked:
        decoder = IBAdapter(sink=events.append, library=library).ib.client.decoder
    else:
        decoder = load(library).IB().client.decoder
    decoder.serverVersion = version
    interpret = decoder.interpret
    gc.collect()
    gc.disable()  # a collection landing in one run and not the other would swamp a few microseconds
    try:
        start = time.perf_counter()
        for _ in range(repeat):
            for fields in frames:
                interpret(list(fields))
        return time.perf_counter() - start
    finally:
        gc.enable()


async def _round_trips(library: str, n: int) -> None:
    sim = TwsSimulator(_sim_config(library))
    await sim.start(port=0)
    try:
        adapter_lat = await _adapter_round_trips(library, sim.port, n)
        bare_lat = await _bare_round_trips(library, sim.port, n)
    finally:
        await sim.stop()
    for label, q in (("p50", 0.5), ("p99", 0.99)):
        _row(
            library,
            f"place -> Filled event {label} (ms)",
            f"{_q(adapter_lat, q):.3f}",
            f"{_q(bare_lat, q):.3f} ms",
        )
    one_at_a_time = f"{n / sum(adapter_lat) * 1e3:,.0f}"
    _row(
        library,
        "orders/s, one in flight (pacing wait excluded)",
        one_at_a_time,
        f"{n / sum(bare_lat) * 1e3:,.0f}/s",
    )
    _row(
        library,
        "orders/s sustained: the pacing (IB allows 50 msg/s)",
        f"{Pacing().rate:,.0f}",
        "45/s library throttle",
    )


async def _adapter_round_trips(library: str, port: int, n: int) -> list[float]:
    filled: set[int] = set()

    def sink(event: Event) -> None:
        if isinstance(event, OrderStatusReported) and event.status == "Filled":
            filled.add(event.order_id)

    adapter = IBAdapter("127.0.0.1", port, 2, sink=sink, library=library)
    await adapter.connect(timeout=5)
    lat: list[float] = []
    try:
        for i in range(n):
            await _until(lambda: adapter.pacer.wait_time() == 0)  # time the adapter, not the pacing
            start = time.perf_counter()
            order_id = await adapter.place(_order(f"rt-{i}", "BUY" if i % 2 else "SELL"))
            await _until(lambda oid=order_id: oid in filled)
            lat.append((time.perf_counter() - start) * 1e3)
    finally:
        await adapter.disconnect()
    return lat


async def _bare_round_trips(library: str, port: int, n: int) -> list[float]:
    lib = load(library)
    ib = lib.IB()
    await ib.connectAsync("127.0.0.1", port, clientId=3, timeout=5)
    lat: list[float] = []
    try:
        for i in range(n):
            start = time.perf_counter()
            order = lib.Order(
                action="BUY" if i % 2 else "SELL", totalQuantity=1, orderType="MKT", account=ACCOUNT
            )
            trade = ib.placeOrder(
                lib.Contract(symbol="AAPL", secType="STK", exchange="SMART", currency="USD"), order
            )
            await _until(lambda t=trade: t.orderStatus.status == "Filled")
            lat.append((time.perf_counter() - start) * 1e3)
    finally:
        ib.disconnect()
    return lat


def _order(coid: str, side: str) -> OrderRequested:
    return OrderRequested(
        client_order_id=coid, strategy_id="bench", account=ACCOUNT, contract=Contract(symbol="AAPL"),
        side=side, quantity=1,  # type: ignore[arg-type]
    )  # fmt: skip


async def _until(predicate: Any, timeout: float = 30.0) -> None:
    """Yield to the loop until `predicate()` holds (a benchmark, so no fixed sleeps: poll at once)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(0)


def _q(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] if len(values) > 1 else values[0]


def _row(library: str, measure: str, value: str, baseline: str) -> None:
    print(f"{library:<10} {measure:<44} {value:>14}  {baseline}", flush=True)
