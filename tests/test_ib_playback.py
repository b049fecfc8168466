"""Play a wire capture back: a session recorded against the simulator, replayed by `WirePlayback` to the
same client, gives the same events, order ids and request ids free to differ."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.ib.adapter import Backoff, IBAdapter
from adapters.ib.clientlib import LIBRARIES
from adapters.ib.wire import FROM_TWS, CaptureError, WireRecorder, read_records
from adapters.tws_sim import SimConfig, TwsSimulator, run_simulator_in_thread
from adapters.tws_sim.playback import WirePlayback, conversations
from adapters.tws_sim.server import serve_in_thread
from events.schema import (
    ConnectionChanged,
    Event,
    ExecutionReported,
    OpenOrderReported,
    OrderStatusReported,
    ReconciliationFinished,
    SessionStarted,
)
from oms.cli.run import ServiceThread
from tests.ib_helpers import Cell, FoldingSink, matrix, request, until
from tests.waiting import wait_until

FAST = Backoff(initial=0.02, max_delay=0.2, attempts=0)


def comparable(events: list[Event]) -> list[Any]:
    """Events without what differs between two servers and two data directories: the port connected
    to, the digest of the configuration (which names both)."""
    out: list[Any] = []
    for e in events:
        if isinstance(e, ConnectionChanged):
            e = msgspec.structs.replace(e, port=0)
        elif isinstance(e, SessionStarted):
            e = msgspec.structs.replace(e, config_digest="")
        out.append(e)
    return out


async def fill_session(
    port: int,
    ib: Cell,
    wire: WireRecorder | None = None,
    away: bool = False,
    skip_ids: int = 0,
    ended: Callable[[], bool] = lambda: True,
) -> FoldingSink:
    """Connect, a 10-share market buy filled with its commission (filled while disconnected if `away`);
    `skip_ids` ids drawn first, so the order's id is not the recorded one."""
    sink = FoldingSink()
    adapter = IBAdapter(
        "127.0.0.1", port, 7, sink=sink, state_provider=lambda: sink.state, library=ib.library,
        reconnect=FAST, wire=wire,
    )  # fmt: skip
    try:
        await adapter.connect(timeout=5)
        for _ in range(skip_ids):
            adapter.ib.client.getReqId()
        req = request("mkt-1", qty=10)
        sink(req)
        await adapter.place(req)
        await until(lambda: sink.state.orders["mkt-1"].commission, "commission joined")
        if away:
            await until(lambda: len(sink.of(ReconciliationFinished)) == 2, "reconciled after reconnect")
        await until(ended, "the session to end")
    finally:
        await adapter.disconnect()
    return sink


def all_read(playback: WirePlayback, captures: Path) -> Callable[[], bool]:
    """Whether the playback has played every connection to its end and the client has read every
    message it sent (the client's own wire capture, under `captures`, holds them all)."""

    def done() -> bool:
        if playback.completed < len(playback.conversations):
            return False
        received = sum(1 for r in read_records(captures) if r.kind == FROM_TWS)
        return received == playback.sent

    return done


async def record(ib: Cell, capture: Path, away: bool = False) -> FoldingSink:
    sim = TwsSimulator(ib.config())
    await sim.start(port=0)
    try:
        if away:
            sim.force_fault("disconnect")  # ack, 1100, hang up; the order fills while the client is away
        return await fill_session(sim.port, ib, WireRecorder(capture), away)
    finally:
        await sim.stop()


@matrix
@pytest.mark.parametrize("away", [False, True], ids=["fill", "fill-while-away"])
def test_a_played_back_session_gives_the_recorded_events(ib: Cell, away: bool, tmp_path: Path) -> None:
    async def run() -> None:
        recorded = await record(ib, tmp_path / "cap", away)
        playback = WirePlayback(tmp_path / "cap", speed=4.0)
        await playback.start()
        try:
            replayed = await fill_session(
                playback.port,
                ib,
                WireRecorder(tmp_path / "again"),
                away,
                ended=all_read(playback, tmp_path / "again"),
            )
        finally:
            await playback.stop()
        assert playback.server_version == ib.server_version
        assert comparable(replayed.events) == comparable(recorded.events)
        assert replayed.state.orders["mkt-1"].commission == {"USD": 1}
        assert len(playback.conversations) == (2 if away else 1)
        assert not playback.unmatched

    asyncio.run(run())


def test_not_a_wire_capture_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CaptureError):
        conversations(tmp_path)


@matrix
def test_replies_follow_the_ids_the_client_uses(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        recorded = await record(ib, tmp_path / "cap", away=True)
        playback = WirePlayback(tmp_path / "cap", speed=4.0)
        await playback.start()
        try:
            replayed = await fill_session(playback.port, ib, away=True, skip_ids=5)
        finally:
            await playback.stop()
        was, now = recorded.state.orders["mkt-1"], replayed.state.orders["mkt-1"]
        assert now.order_id == was.order_id + 5
        assert (now.status, now.filled, now.commission) == ("filled", 10, {"USD": 1})
        assert [p.quantity for p in replayed.state.positions.values()] == [10]
        assert len(replayed.state.fills) == len(recorded.state.fills) == 1
        reports = replayed.of(OrderStatusReported) + replayed.of(OpenOrderReported)
        assert reports and {r.order_id for r in reports if r.order_id} == {now.order_id}  # completed: 0
        assert {e.order_id for e in replayed.of(ExecutionReported)} == {now.order_id}

    asyncio.run(run())


def service_session(data_dir: Path, port: int, library: str, ended: Callable[[], bool]) -> list[Any]:
    """`oms run` against IB at `port`, recording the wire: a 10-share market buy through the service's
    ROUTER, filled while the service is away (the simulator drops it after the ack), found by the
    reconciliation after the reconnect; then `ended` is awaited. The journal's events, in order."""
    from events.reader import JournalReader
    from tests.test_service_support import Wire, make_config, place, state_of

    config = make_config(data_dir, ib_port=port, library=library, record_wire=True)
    with ServiceThread(config) as service:
        wire = Wire(service.endpoints.router, service.endpoints.pub)
        wire.ok(place(strategy_id="s1", client_order_id="entry-1"))

        def settled() -> bool:
            state = state_of(service)
            order = state.orders.get("entry-1")
            return bool(order and order.commission) and state.connection != "lost" and not state.reconciling

        wait_until(settled, timeout=15, what="the fill found after the reconnect")
        wait_until(ended, timeout=15, what="the session to end")
        wire.close()
    return [env.event for env in JournalReader(data_dir / "journal").read()]


@pytest.mark.parametrize("library", LIBRARIES)
def test_oms_run_against_a_playback_journals_what_it_journaled_against_tws(
    library: str, tmp_path: Path
) -> None:
    sim, sim_port, stop_sim = run_simulator_in_thread(SimConfig())
    try:
        sim.force_fault("disconnect")
        recorded = service_session(tmp_path / "a", sim_port, library, lambda: True)
    finally:
        stop_sim()
    (capture,) = (tmp_path / "a" / "wire").iterdir()
    playback, port, stop_playback = serve_in_thread(WirePlayback(capture, speed=4.0))
    try:
        replayed = service_session(tmp_path / "b", port, library, all_read(playback, tmp_path / "b" / "wire"))
    finally:
        stop_playback()
    assert len(playback.conversations) == 2 and not playback.unmatched
    assert comparable(replayed) == comparable(recorded)


def test_oms_sim_playback_serves_a_capture(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    ib = Cell("ib_insync", 176)
    asyncio.run(record(ib, tmp_path / "cap"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "oms", "sim", "--playback", str(tmp_path / "cap"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        found = re.search(r"listening on 127\.0\.0\.1:(\d+) \(server version 176, 1 connection", banner)
        assert found, banner
        replayed = asyncio.run(fill_session(int(found.group(1)), ib))
        assert replayed.state.orders["mkt-1"].commission == {"USD": 1}
    finally:
        proc.terminate()
        proc.wait(10)
    bad = subprocess.run(
        [sys.executable, "-m", "oms", "sim", "--playback", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "no wire capture" in bad.stdout


@matrix
def test_with_patience_a_capture_replays_to_a_client_without_the_recorded_strategy(
    ib: Cell, tmp_path: Path
) -> None:
    """A user's capture, replayed to an adapter that places nothing: the placeOrder it waits for is
    skipped after `patience`, and the fill TWS reported still reaches the fold, with its commission."""

    async def run() -> None:
        await record(ib, tmp_path / "cap")
        playback = WirePlayback(tmp_path / "cap", speed=4.0, patience=0.2)
        await playback.start()
        sink = FoldingSink()
        adapter = IBAdapter(
            "127.0.0.1", playback.port, 7, sink=sink, state_provider=lambda: sink.state,
            library=ib.library, wire=WireRecorder(tmp_path / "again"),
        )  # fmt: skip
        try:
            await adapter.connect(timeout=5)
            await until(all_read(playback, tmp_path / "again"), "played to the end")
        finally:
            await adapter.disconnect()
            await playback.stop()
        assert [f[0] for f in playback.skipped] == ["3"]  # the placeOrder nobody sent
        (order,) = sink.state.orders.values()  # not requested here: IB's order, by its permId
        assert (order.external, order.status, order.filled, order.commission) == (
            True,
            "filled",
            10,
            {"USD": 1},
        )
        assert [p.quantity for p in sink.state.positions.values()] == [10]

    asyncio.run(run())
