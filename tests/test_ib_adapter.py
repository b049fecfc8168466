"""End to end: the real ib_async / ib_insync client, the adapter, and the TWS simulator over loopback.
The sink folds every event as the service would; assertions are on the folded state."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.ib.adapter import IBAdapter
from adapters.ib.clientlib import LIBRARIES
from adapters.tws_sim import SimConfig
from events.schema import (
    BrokerError,
    CancelRequested,
    CommissionReported,
    ConnectionChanged,
    ExecutionReported,
    ModifyRequested,
    OpenOrderReported,
    OrderRequested,
    OrderSent,
    OrderStatusReported,
    ReconciliationFinished,
)
from tests.ib_helpers import Cell, FoldingSink, connected, matrix, request, session, until, with_157


async def place(adapter: IBAdapter, sink: FoldingSink, req: OrderRequested) -> int:
    sink(req)  # the service logs the intent before it calls the adapter
    return await adapter.place(req)


@with_157
def test_market_buy_fills_with_commission_and_position(ib: Cell) -> None:
    async def run() -> None:
        async with session(ib) as (sim, adapter, sink):
            order_id = await place(adapter, sink, request("mkt-1", qty=10))
            await until(lambda: sink.state.orders["mkt-1"].commission, "commission joined")
            order = sink.state.orders["mkt-1"]
            assert (order.status, order.filled, order.order_id, order.client_id) == (
                "filled",
                10,
                order_id,
                7,
            )
            assert order.avg_fill_price == sim.price("AAPL")
            assert order.commission == {"USD": 1}  # the simulator's minimum commission, per currency
            (position,) = sink.state.positions.values()
            assert (position.quantity, position.contract.con_id, position.status) == (10, 265598, "filled")
            first_report = next(
                e for e in sink.events if isinstance(e, OpenOrderReported | OrderStatusReported)
            )
            assert sink.events.index(sink.of(OrderSent)[0]) < sink.events.index(first_report)

    asyncio.run(run())


@with_157
def test_limit_order_rests_then_cancel(ib: Cell, caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        async with session(ib) as (_sim, adapter, sink):
            order_id = await place(adapter, sink, request("lmt-1", order_type="LMT", limit_price=100.0))
            await until(lambda: sink.state.orders["lmt-1"].status == "submitted", "working")
            sink(CancelRequested(client_order_id="lmt-1"))
            await adapter.cancel(order_id)
            await until(lambda: sink.state.orders["lmt-1"].status == "cancelled", "cancelled")
            assert [e.code for e in sink.of(BrokerError) if e.req_id == order_id] == [202]
            assert sink.state.orders["lmt-1"].filled == 0

    with caplog.at_level(logging.INFO, logger=ib.library):
        asyncio.run(run())
    (said,) = [r for r in caplog.records if " 202, reqId" in r.getMessage()]  # the library's line: INFO
    assert said.levelno == logging.INFO and not [r for r in caplog.records if r.levelno >= logging.ERROR]


@matrix
def test_partial_fills_add_up(ib: Cell) -> None:
    async def run() -> None:
        async with session(ib, SimConfig(partial_fills=3)) as (_sim, adapter, sink):
            await place(adapter, sink, request("part-1", qty=30))
            await until(lambda: sink.state.orders["part-1"].status == "filled", "filled")
            await until(lambda: len(sink.of(CommissionReported)) == 3, "three commissions")
            assert len({e.exec_id for e in sink.of(ExecutionReported)}) == 3
            assert sink.state.orders["part-1"].filled == 30
            assert [p.quantity for p in sink.state.positions.values()] == [30]

    asyncio.run(run())


@with_157
def test_rejected_order(ib: Cell) -> None:
    async def run() -> None:
        async with session(ib) as (sim, adapter, sink):
            sim.force_fault("reject")
            await place(adapter, sink, request("rej-1"))
            await until(lambda: sink.state.orders["rej-1"].status == "rejected", "rejected")
            assert [e.error_class for e in sink.of(BrokerError) if e.code == 201] == ["rejection"]

    asyncio.run(run())


@matrix
def test_bracket_children_point_at_the_parent_and_wait_for_it(ib: Cell) -> None:
    async def run() -> None:
        async with session(ib) as (sim, adapter, sink):
            price = sim.price("AAPL")
            parent = request("br-p", order_type="LMT", limit_price=price - 10)
            take = request(
                "br-tp", side="SELL", order_type="LMT", limit_price=price + 10, parent_client_order_id="br-p"
            )
            stop = request(
                "br-sl", side="SELL", order_type="STP", stop_price=price - 20, parent_client_order_id="br-p"
            )
            for req in (parent, take, stop):
                sink(req)
            ids = await adapter.place_bracket([parent, take, stop])
            coids = ("br-p", "br-tp", "br-sl")
            await until(lambda: all(sink.state.orders[c].status == "submitted" for c in coids), "all working")
            by_id = {o.order_id: o for o in sim.orders}
            assert [by_id[i].parent_id for i in ids] == [0, ids[0], ids[0]]
            assert [by_id[i].transmit for i in ids] == [False, False, True]
            sim.set_price("AAPL", price - 11)  # the parent fills; the take-profit and stop stay working
            await until(lambda: sink.state.orders["br-p"].status == "filled", "parent filled")
            assert sink.state.orders["br-tp"].status == sink.state.orders["br-sl"].status == "submitted"

    asyncio.run(run())


@matrix
def test_modify_replaces_quantity_and_price_of_the_same_order_id(ib: Cell) -> None:
    async def run() -> None:
        async with session(ib) as (sim, adapter, sink):
            order_id = await place(adapter, sink, request("mod-1", order_type="LMT", limit_price=100.0))
            await until(lambda: sink.state.orders["mod-1"].status == "submitted", "working")
            change = ModifyRequested(client_order_id="mod-1", quantity=Decimal(20), limit_price=101.0)
            sink(change)
            await adapter.modify("mod-1", order_id, change)
            await until(lambda: sink.state.orders["mod-1"].limit_price == 101.0, "modify acknowledged")
            order = sink.state.orders["mod-1"]
            assert (order.quantity, order.order_id, order.pending_modify) == (20, order_id, None)
            assert [(o.quantity, o.lmt_price) for o in sim.orders] == [(20, 101.0)]

    asyncio.run(run())


@pytest.mark.parametrize(
    "fault",
    [
        "duplicate_exec",
        "exec_first",
        "commission_late",
        "commission_early",
        "correction",
        "status_repeat",
        "status_skip",
    ],
)
@matrix
def test_fault_gives_one_fill_and_the_right_state(ib: Cell, fault: str) -> None:
    async def run() -> None:
        async with session(ib) as (sim, adapter, sink):
            sim.force_fault(fault)
            await place(adapter, sink, request("f-1", qty=10))
            await until(lambda: sink.state.orders["f-1"].status == "filled", "filled")
            await until(lambda: sink.state.orders["f-1"].commission, "commission joined")
            executions = sink.of(ExecutionReported)
            if fault == "duplicate_exec":  # both callbacks are logged; the fold counts one
                assert len(executions) == 2 and executions[0].exec_id == executions[1].exec_id
            first = {type(e): sink.events.index(e) for e in reversed(sink.events)}  # kind -> first position
            if fault == "exec_first":  # logged in the order IB sent it
                assert first[ExecutionReported] < min(first[OpenOrderReported], first[OrderStatusReported])
            if fault == "commission_early":  # right after its execution, before the order is Filled
                filled = next(e for e in sink.of(OrderStatusReported) if e.status == "Filled")
                assert first[ExecutionReported] < first[CommissionReported] < sink.events.index(filled)
            if fault == "status_repeat":  # repeats are logged too
                statuses = sink.of(OrderStatusReported)
                assert any(a == b for a, b in itertools.pairwise(statuses))
            (fill,) = sink.state.fills.values()
            if fault == "correction":
                assert fill.exec_id.endswith(".02") and fill.corrects.endswith(".01")
            order = sink.state.orders["f-1"]
            assert order.filled == fill.shares == 10
            assert [p.quantity for p in sink.state.positions.values()] == [10]

    asyncio.run(run())


@matrix
def test_informational_10349_changes_nothing(ib: Cell, caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        async with session(ib) as (sim, adapter, sink):
            sim.force_fault("info_10349")
            await place(adapter, sink, request("i-1", order_type="LMT", limit_price=100.0))
            await until(lambda: any(e.code == 10349 for e in sink.of(BrokerError)), "10349 logged")
            assert sink.of(BrokerError)[-1].error_class == "information"
            assert sink.state.orders["i-1"].status == "submitted"

    with caplog.at_level(logging.INFO, logger=ib.library):
        asyncio.run(run())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "10349" in r.getMessage()]


@with_157
def test_fill_while_disconnected_is_recovered_once_by_reconcile(ib: Cell) -> None:
    async def run() -> None:
        async with session(ib) as (sim, adapter, sink):
            sim.force_fault("disconnect")  # ack, then 1100 and hang up; the order fills while away
            await place(adapter, sink, request("away-1", qty=10))
            await until(lambda: sink.state.orders["away-1"].status == "filled", "filled after reconnect")
            await until(lambda: len(sink.of(ReconciliationFinished)) == 2, "reconciled after reconnect")
            await until(lambda: sink.state.orders["away-1"].commission, "commission recovered")
            states = [e.state for e in sink.of(ConnectionChanged)]
            assert states[:2] == ["connected", "lost"] and states.count("connected") == 2
            assert all(f.ok for f in sink.of(ReconciliationFinished))
            await adapter.reconcile("again")  # a further sync restates the fill: not logged again
            assert Counter(e.exec_id for e in sink.of(ExecutionReported)) == {
                sink.of(ExecutionReported)[0].exec_id: 1
            }
            assert len(sink.of(CommissionReported)) == 1
            assert [p.quantity for p in sink.state.positions.values()] == [10]
            assert not [e for e in sink.events if e.__struct_config__.tag == "position_mismatch"]

    asyncio.run(run())


@matrix
def test_master_client_sees_orders_placed_in_tws_live(ib: Cell) -> None:
    async def run() -> None:
        async with (
            session(ib) as (sim, other, other_sink),  # an ordinary client (id 7) beside it
            connected(sim, ib, 7, master_client=True) as (master, sink),
        ):
            assert master.client_id == 0
            assert [c.client_id for c in sim.connections] == [7, 0]
            sim.place_external_order("AAPL", "SELL", 3, "LMT", lmt_price=500.0, client_id=0, order_ref="hand")
            await until(lambda: any(o.external for o in sink.state.orders.values()), "TWS order live")
            (order,) = sink.state.orders.values()
            assert (order.side, order.quantity, order.status) == ("SELL", 3, "submitted")
            assert len(sink.of(ReconciliationFinished)) == 1  # seen live, not by a later sync
            await other.ib.reqCurrentTimeAsync()  # a round trip: anything sent to client 7 is in
            assert not [e for e in other_sink.of(OpenOrderReported) if e.order_ref == "hand"]

    asyncio.run(run())


@with_157
def test_reconcile_reports_completed_orders_once(ib: Cell) -> None:
    async def run() -> None:
        async with session(ib) as (sim, adapter, sink):
            done = sim.fill_external("MSFT", "BUY", 5, client_id=42)  # another client's, filled meanwhile
            await adapter.reconcile("poll")
            (completed,) = [e for e in sink.of(OpenOrderReported) if e.completed]
            assert (completed.order_id, completed.client_id, completed.perm_id) == (0, 0, done.perm_id)
            assert (completed.status, completed.filled, completed.contract.symbol) == ("Filled", 5, "MSFT")
            first = sink.events.index(completed)
            finished = sink.of(ReconciliationFinished)[-1]
            execution = next(e for e in sink.of(ExecutionReported) if e.perm_id == done.perm_id)
            assert first < sink.events.index(execution) < sink.events.index(finished) and finished.ok
            await adapter.reconcile("again")  # nothing new: the same completed order is not logged again
            restarted = IBAdapter(
                "127.0.0.1", sim.port, 8, sink=sink, state_provider=lambda: sink.state, library=ib.library
            )
            await restarted.connect(timeout=5)  # nor by a new session on the same log
            await restarted.disconnect()
            assert len([e for e in sink.of(OpenOrderReported) if e.completed]) == 1

    asyncio.run(run())


@pytest.mark.parametrize("library", LIBRARIES)
def test_filled_without_executions_carries_ibs_fill_and_a_finished_reconciliation(
    library: str, captures_dir: Path, tmp_path: Path
) -> None:
    """IB says Filled (orderStatus: filled 100 at 196.52) and reqExecutions no longer returns the fill
    (executions since midnight only): the log holds what the fold needs to infer it."""

    async def run() -> None:
        capture = (captures_dir / "rust-ibapi" / "tsla_mkt_buy_fill_v163.txt").read_text().splitlines()
        statuses = tmp_path / "statuses.txt"
        statuses.write_text("\n".join(line for line in capture if line.startswith("3|")) + "\n")
        async with session(Cell(library, 176)) as (sim, adapter, sink):
            await sim.play_capture(statuses, client_id=7)
            await until(lambda: any(e.status == "Filled" for e in sink.of(OrderStatusReported)), "Filled")
            await adapter.reconcile("after the status")
            filled = next(e for e in sink.of(OrderStatusReported) if e.status == "Filled")
            assert (filled.perm_id, filled.filled, filled.remaining, filled.avg_fill_price) == (
                1376327563,
                100,
                0,
                196.52,
            )
            assert not [e for e in sink.of(ExecutionReported) if e.perm_id == filled.perm_id]
            finished = sink.of(ReconciliationFinished)[-1]
            assert finished.ok and sink.events.index(finished) > sink.events.index(filled)
            (order,) = [o for o in sink.state.orders.values() if 1376327563 in o.perm_ids]
            assert order.broker_filled == 100

    asyncio.run(run())


@matrix
def test_the_tws_time_zone_comes_from_the_handshake(ib: Cell) -> None:
    async def run() -> None:
        async with session(ib) as (_sim, adapter, sink):
            assert adapter.tws_timezone == "UTC"  # the simulator says "YYYYMMDD HH:MM:SS UTC"
            (connected,) = [e for e in sink.of(ConnectionChanged) if e.state == "connected"]
            assert re.fullmatch(  # the handshake's own text, read off the socket
                r"TWS time '\d{8} \d\d:\d\d:\d\d UTC': execution times without a zone are read in UTC",
                connected.detail,
            )
        async with session(ib, tws_timezone="US/Eastern") as (_sim, adapter, _sink):
            assert adapter.tws_timezone == "US/Eastern"  # an explicit setting wins
        new_york = SimConfig(tws_time_zone="America/New_York")
        async with session(ib, new_york) as (_sim, adapter, sink):  # TWS says "EST" / "EDT", as Java does
            assert adapter.tws_timezone == "America/New_York"
            (connected,) = [e for e in sink.of(ConnectionChanged) if e.state == "connected"]
            assert re.search(r"\d\d:\d\d:\d\d E[SD]T'", connected.detail)

    asyncio.run(run())
