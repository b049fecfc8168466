"""Connection, pacing and reconciliation against the simulator: retries with backoff, a client id in use,
a restart on an existing log, other clients' orders and fills, position mismatches, failed requests,
the 50 msg/s limit, and recorded TWS traffic played through a live connection."""

from __future__ import annotations

import asyncio
import socket
import time
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.ib.adapter import Backoff, ClientIdInUse, IBAdapter
from adapters.ib.clientlib import LIBRARIES
from adapters.tws_sim import TwsSimulator
from events.schema import (
    BrokerError,
    CommissionReported,
    ConnectionChanged,
    Contract,
    ExecutionReported,
    OpenOrderReported,
    OrderSent,
    PositionMismatch,
    ReconciliationFinished,
    ReconciliationStarted,
)
from tests.ib_helpers import ACCOUNT, Cell, FoldingSink, matrix, request, session, until, with_157


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@matrix
def test_connect_retries_with_backoff_until_tws_is_up(ib: Cell) -> None:
    async def run() -> None:
        port = free_port()
        sink = FoldingSink()
        adapter = IBAdapter(
            "127.0.0.1",
            port,
            3,
            sink=sink,
            library=ib.library,
            backoff=Backoff(initial=0.02, max_delay=0.05, attempts=0),
        )
        connecting = asyncio.ensure_future(adapter.connect(timeout=2))
        await until(lambda: adapter.connect_attempts >= 2, "two refused attempts")
        sim = TwsSimulator(ib.config())
        await sim.start(port=port)
        try:
            await asyncio.wait_for(connecting, 10)
            (connected,) = [e for e in sink.of(ConnectionChanged) if e.state == "connected"]
            assert connected.server_version == ib.server_version and connected.accounts == (ACCOUNT,)
            assert sink.of(ReconciliationFinished)[-1].ok
        finally:
            await adapter.disconnect()
            await sim.stop()

    asyncio.run(run())


@matrix
def test_connect_gives_up_after_the_configured_attempts(ib: Cell) -> None:
    async def run() -> None:
        adapter = IBAdapter(
            "127.0.0.1", free_port(), 3, library=ib.library, backoff=Backoff(initial=0.01, attempts=3)
        )
        with pytest.raises(ConnectionError, match="3 attempts"):
            await adapter.connect(timeout=1)
        assert adapter.connect_attempts == 3

    asyncio.run(run())


@with_157
def test_client_id_in_use_is_reported_clearly(ib: Cell) -> None:
    async def run() -> None:
        async with session(ib) as (sim, _adapter, _sink):
            sink = FoldingSink()
            second = IBAdapter("127.0.0.1", sim.port, 7, sink=sink, library=ib.library)
            with pytest.raises(ClientIdInUse, match="client id 7 is already in use"):
                await second.connect(timeout=5)
            assert second.connect_attempts == 1  # refused: no point in retrying
            (last,) = [e for e in sink.of(ConnectionChanged) if e.state == "disconnected"]
            assert last.detail == "client id 7 is already in use"
            assert any(e.code == 326 for e in sink.of(BrokerError))

    asyncio.run(run())


@with_157
def test_restart_on_an_existing_log_logs_only_new_executions(ib: Cell) -> None:
    async def run() -> None:
        sim = TwsSimulator(ib.config())
        await sim.start(port=0)
        sink = FoldingSink()
        try:
            first = IBAdapter(
                "127.0.0.1", sim.port, 7, sink=sink, state_provider=lambda: sink.state, library=ib.library
            )
            await first.connect(timeout=5)
            sink(request("r-1"))
            await first.place(request("r-1"))
            await until(lambda: sink.state.orders["r-1"].commission, "first fill")
            await first.disconnect()
            sim.fill_external("MSFT", "BUY", 5, client_id=0)  # a fill in TWS while the service is down
            # the service restarts: a new adapter, the same log
            second = IBAdapter(
                "127.0.0.1", sim.port, 7, sink=sink, state_provider=lambda: sink.state, library=ib.library
            )
            await second.connect(timeout=5)
            await second.disconnect()
            per_exec: dict[str, int] = {}
            for e in sink.of(ExecutionReported):
                per_exec[e.exec_id] = per_exec.get(e.exec_id, 0) + 1
            assert sorted(per_exec.values()) == [1, 1]  # ours once (live), TWS's once (found by the sync)
            assert len(sink.of(CommissionReported)) == 2  # each once, though every sync restates them
            assert all(f.commission for f in sink.state.fills.values())
            external = [o for o in sink.state.orders.values() if o.external]
            assert [(o.contract.symbol, o.filled, o.status) for o in external] == [("MSFT", 5, "filled")]
            assert {p.contract.symbol: p.quantity for p in sink.state.positions.values()} == {
                "AAPL": 10,
                "MSFT": 5,
            }
            assert not sink.of(PositionMismatch)
        finally:
            await sim.stop()

    asyncio.run(run())


def forget_executions(sim: TwsSimulator) -> None:
    """What IB does at midnight: reqExecutions no longer returns the day's executions."""
    executions = getattr(sim.engine, "executions", None)
    if not isinstance(executions, list):
        pytest.skip("the simulator keeps executions where this test cannot clear them")
    executions.clear()


@with_157
def test_restart_after_ib_forgot_the_executions_reports_the_fill_ib_still_states(ib: Cell) -> None:
    """Our order filled while the service was down; it restarts the next day: the completed order says
    Filled 10 with our orderRef, no execution explains it, and the reconciliation finishes after the
    executions request: what the fold needs to infer the fill (docs/ib-adapter.md)."""

    async def run() -> None:
        async with session(ib) as (sim, adapter, sink):
            await adapter.disconnect()  # the service stops
            sink(request("day-1", qty=10))  # its intent was logged, the order sent...
            sent = sim.place_external_order("AAPL", "BUY", 10, "MKT", client_id=7, order_ref="day-1")
            sink(OrderSent(client_order_id="day-1", order_id=sent.order_id, client_id=7))
            forget_executions(sim)  # ...it filled, and by the restart IB no longer returns the fill
            restarted = IBAdapter(
                "127.0.0.1", sim.port, 7, sink=sink, state_provider=lambda: sink.state, library=ib.library
            )
            await restarted.connect(timeout=5)
            await restarted.disconnect()
            (done,) = [e for e in sink.of(OpenOrderReported) if e.completed]
            assert (done.order_ref, done.status, done.filled, done.perm_id) == (
                "day-1",
                "Filled",
                10,
                sent.perm_id,
            )
            assert not sink.of(ExecutionReported)
            finished = [
                e for e in sink.of(ReconciliationFinished) if sink.events.index(e) > sink.events.index(done)
            ]
            assert finished and finished[0].ok and finished[0].executions == 0
            assert sink.state.orders["day-1"].perm_ids == (sent.perm_id,)  # joined by orderRef

    asyncio.run(run())


@matrix
def test_orders_of_other_clients_and_tws_are_recorded_as_external(ib: Cell) -> None:
    async def run() -> None:
        async with session(ib) as (sim, adapter, sink):
            sim.place_external_order(
                "AAPL", "SELL", 3, "LMT", lmt_price=500.0, client_id=0, order_ref="manual"
            )
            sim.place_external_order("AAPL", "BUY", 4, "LMT", lmt_price=1.0, client_id=42)
            await adapter.reconcile("poll")
            refs = sorted((e.client_id, e.order_ref) for e in sink.of(OpenOrderReported))
            assert refs == [(0, "manual"), (42, "")]
            external = sorted(
                (o.side, o.quantity, o.status) for o in sink.state.orders.values() if o.external
            )
            assert external == [("BUY", 4, "submitted"), ("SELL", 3, "submitted")]
            before = len(sink.events)
            await adapter.reconcile("poll again")  # nothing new: only the Started / Finished pair
            assert [e.__struct_config__.tag for e in sink.events[before:]] == [
                "reconciliation_started",
                "reconciliation_finished",
            ]

    asyncio.run(run())


def ghost_fill(sink: FoldingSink) -> None:
    """The log holds a fill IB never made (e.g. a log from another account): IB's positions disagree."""
    sink(request("ghost", symbol="MSFT", qty=5))
    sink(
        ExecutionReported(
            exec_id="ghost.01", order_id=0, perm_id=0, client_id=7, order_ref="ghost", account=ACCOUNT,
            contract=Contract(symbol="MSFT", con_id=272093), side="BOT", shares=Decimal(5), price=400.0,
        )
    )  # fmt: skip


@matrix
def test_position_that_disagrees_with_the_fold_is_a_mismatch(ib: Cell) -> None:
    async def run() -> None:
        sink = FoldingSink()
        ghost_fill(sink)
        async with session(ib, sink=sink) as (_sim, _adapter, sink):
            (mismatch,) = sink.of(PositionMismatch)
            assert (mismatch.contract.symbol, mismatch.broker_position, mismatch.folded_position) == (
                "MSFT",
                0,
                5,
            )
            assert sink.of(ReconciliationFinished)[-1].ok

    asyncio.run(run())


@matrix
def test_a_request_that_times_out_is_never_read_as_empty(ib: Cell) -> None:
    async def run() -> None:
        sink = FoldingSink()
        ghost_fill(sink)
        async with session(ib, sink=sink, request_timeout=1e-6) as (_sim, _adapter, sink):
            finished = sink.of(ReconciliationFinished)[-1]
            assert (
                not finished.ok
                and "no answer" in finished.detail
                and "positions not compared" in finished.detail
            )
            assert not sink.of(PositionMismatch)

    asyncio.run(run())


@matrix
def test_a_burst_of_120_orders_is_paced_under_50_per_second(ib: Cell) -> None:
    async def run() -> None:
        async with session(ib) as (_sim, adapter, sink):
            sent: list[float] = []
            conn = adapter.ib.client.conn
            original = conn.sendMsg

            def record(msg: bytes) -> None:
                if msg[4:6] == b"3\0":  # placeOrder, as it is written to the socket
                    sent.append(time.monotonic())
                original(msg)

            conn.sendMsg = record
            reqs = [request(f"p-{i}", order_type="LMT", limit_price=1.0, qty=1) for i in range(120)]
            for req in reqs:
                sink(req)
            await asyncio.gather(*(adapter.place(r) for r in reqs))
            orders = sink.state.orders
            await until(
                lambda: all(orders[r.client_order_id].status == "submitted" for r in reqs), "all working"
            )
            assert len(sent) == 120
            busiest = max(sum(1 for t in sent[i:] if t - start <= 1.0) for i, start in enumerate(sent))
            assert busiest < 50

    asyncio.run(run())


@pytest.mark.parametrize("library", LIBRARIES)
def test_recorded_tws_traffic_played_through_a_live_connection(library: str, captures_dir: Path) -> None:
    async def run() -> None:  # the capture's layout is 176's: both libraries read it at 176
        async with session(Cell(library, 176)) as (sim, _adapter, sink):
            await sim.play_capture(captures_dir / "rust-ibapi" / "es_fut_lmt_fill_v176.txt", client_id=7)
            await until(lambda: sink.of(CommissionReported), "the capture's commission")
            (order,) = [o for o in sink.state.orders.values() if o.contract.symbol == "ES"]
            assert (order.status, order.filled, order.commission, order.perm_ids) == (
                "filled",
                1,
                {"USD": Decimal("2.25")},
                (2126726143,),
            )

    asyncio.run(run())


@matrix
def test_link_lost_then_restored_reconciles(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        frames = tmp_path / "link.txt"  # TWS's own link to IB drops and comes back; the socket stays up
        # from 166 an error carries advancedOrderRejectJson (empty); the reader drops one trailing `|`
        frames.write_text(
            "4|2|-1|1100|Connectivity between IB and TWS has been lost.|||\n4|2|-1|1102|restored|||\n"
        )
        async with session(ib) as (sim, _adapter, sink):
            await sim.play_capture(frames, client_id=7)
            await until(
                lambda: any(e.reason == "restored" for e in sink.of(ReconciliationStarted)), "reconcile"
            )
            await until(lambda: len(sink.of(ReconciliationFinished)) == 2, "reconciled")
            states = [e.state for e in sink.of(ConnectionChanged)]
            assert states == ["connected", "lost", "restored"]

    asyncio.run(run())


@matrix
def test_reconnect_that_gives_up_says_so(ib: Cell) -> None:
    async def run() -> None:
        sim = TwsSimulator(ib.config())
        await sim.start(port=0)
        sink = FoldingSink()
        adapter = IBAdapter(
            "127.0.0.1",
            sim.port,
            7,
            sink=sink,
            library=ib.library,
            reconnect=Backoff(initial=0.01, attempts=2),
        )
        await adapter.connect(timeout=2)
        await sim.stop()  # TWS goes away for good
        await until(lambda: sink.of(ConnectionChanged)[-1].state == "disconnected", "gave up")
        states = [e.state for e in sink.of(ConnectionChanged)]
        assert (
            states[0] == "connected"
            and "lost" in states
            and "2 attempts" in sink.of(ConnectionChanged)[-1].detail
        )
        assert not adapter.connected
        with pytest.raises(ConnectionError):
            await adapter.place(request("late"))

    asyncio.run(run())
