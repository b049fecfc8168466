"""Each injected fault, as the real clients see it on the wire (frames recorded at the client's decoder)."""

from __future__ import annotations

import asyncio
import struct

import pytest

from adapters.tws_sim import FaultConfig, SimConfig
from adapters.tws_sim.faults import FAULT_NAMES, FaultDice, parse_fault_args
from adapters.tws_sim.hours import SimClock
from tests.test_tws_sim_support import (
    CLIENT_LIBS,
    connect,
    ib_lib,
    order_flow,
    record_messages,
    run,
    sim_client,
    simulator,
    wait_for,
)

NORMAL_MKT = ["open", "status", "exec", "open", "status", "open", "commission"]


def _mkt_flow(lib_name: str, fault: str | None, config: SimConfig | None = None, qty: int = 10):
    """Place one market order under `fault`; returns (flow, frames, trade, sim executions)."""

    async def body():
        async with sim_client(lib_name, config) as (sim, ib, lib):
            frames = record_messages(ib)
            if fault:
                sim.force_fault(fault)
            trade = ib.placeOrder(lib.Stock("AAPL", "SMART", "USD"), lib.MarketOrder("BUY", qty))
            await wait_for(lambda: [o.status for o in sim.orders] == ["Filled"], "the simulator filled it")
            await ib.reqCurrentTimeAsync()  # a round trip: every frame sent before has been decoded
            return order_flow(frames), frames, trade, sim.executions

    return run(body)


@pytest.mark.parametrize("lib_name", CLIENT_LIBS)
def test_normal_market_fill_sequence_matches_real_tws(lib_name: str) -> None:
    flow, _, trade, _ = _mkt_flow(lib_name, None)
    assert flow == NORMAL_MKT
    assert trade.orderStatus.status == "Filled"


@pytest.mark.parametrize("lib_name", CLIENT_LIBS)
def test_duplicate_exec_arrives_twice(lib_name: str) -> None:
    flow, frames, trade, _ = _mkt_flow(lib_name, "duplicate_exec")
    execs = [f for f in frames if f[0] == "11"]
    assert len(execs) == 2 and execs[0] == execs[1]
    assert flow.count("exec") == 2
    assert trade.orderStatus.status == "Filled"


@pytest.mark.parametrize("lib_name", CLIENT_LIBS)
def test_exec_before_open_order_and_status(lib_name: str) -> None:
    flow, *_ = _mkt_flow(lib_name, "exec_first")
    assert flow[0] == "exec"
    assert sorted(flow) == sorted(NORMAL_MKT)


@pytest.mark.parametrize("lib_name", CLIENT_LIBS)
def test_commission_late_comes_after_everything(lib_name: str) -> None:
    flow, *_ = _mkt_flow(lib_name, "commission_late", SimConfig(partial_fills=2))
    assert flow[-2:] == ["commission", "commission"]
    assert "commission" not in flow[:-2]


@pytest.mark.parametrize("lib_name", CLIENT_LIBS)
def test_commission_early_comes_before_open_order(lib_name: str) -> None:
    flow, _, trade, _ = _mkt_flow(lib_name, "commission_early")
    assert flow == ["open", "status", "exec", "commission", "open", "status", "open"]
    assert trade.orderStatus.status == "Filled"


@pytest.mark.parametrize("lib_name", CLIENT_LIBS)
def test_execution_correction_shares_the_prefix(lib_name: str) -> None:
    _, frames, _, executions = _mkt_flow(lib_name, "correction")
    exec_ids = [f[14] for f in frames if f[0] == "11"]
    assert len(exec_ids) == 2
    first, corrected = exec_ids
    assert first.rsplit(".", 1)[0] == corrected.rsplit(".", 1)[0]
    assert (first[-3:], corrected[-3:]) == (".01", ".02")
    prices = [float(f[20]) for f in frames if f[0] == "11"]
    assert prices[0] != prices[1]
    assert [e.exec_id for e in executions] == exec_ids


@pytest.mark.parametrize("lib_name", CLIENT_LIBS)
def test_status_repeated_and_skipped(lib_name: str) -> None:
    repeated, *_ = _mkt_flow(lib_name, "status_repeat")
    assert repeated.count("status") == 4
    skipped, _, _, executions = _mkt_flow(lib_name, "status_skip")
    assert "status" not in skipped
    assert len(executions) == 1


@pytest.mark.parametrize("lib_name", CLIENT_LIBS)
def test_reject_sends_201_then_inactive(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name, SimConfig(faults=FaultConfig(reject=1.0))) as (sim, ib, lib):
            frames = record_messages(ib)
            trade = ib.placeOrder(lib.Stock("AAPL", "SMART", "USD"), lib.MarketOrder("BUY", 1))
            await wait_for(lambda: trade.orderStatus.status == "Inactive")
            await ib.reqCurrentTimeAsync()
            assert order_flow(frames) == ["error:201", "open", "status"]  # ib_insync#554
            assert sim.executions == [] and sim.orders[0].status == "Inactive"

    run(body)


@pytest.mark.parametrize("lib_name", CLIENT_LIBS)
def test_rejected_modify_leaves_the_order_working(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name) as (sim, ib, lib):
            frames = record_messages(ib)
            sim.set_price("AAPL", 100.0)
            order = lib.LimitOrder("BUY", 1, 90.0)
            ib.placeOrder(lib.Stock("AAPL", "SMART", "USD"), order)
            await wait_for(lambda: [o.status for o in sim.orders] == ["Submitted"])
            sim.force_fault("reject")
            order.lmtPrice = 95.0
            ib.placeOrder(lib.Stock("AAPL", "SMART", "USD"), order)
            await wait_for(lambda: "error:201" in order_flow(frames))
            assert [(o.status, o.lmt_price) for o in sim.orders] == [("Submitted", 90.0)]
            sim.set_price("AAPL", 89.0)
            await wait_for(lambda: "exec" in order_flow(frames), "the original order still fills")

    run(body)


@pytest.mark.parametrize("lib_name", CLIENT_LIBS)
def test_info_10349_leaves_the_order_working(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name) as (sim, ib, lib):
            frames = record_messages(ib)
            sim.set_price("AAPL", 100.0)
            sim.force_fault("info_10349")
            ib.placeOrder(lib.Stock("AAPL", "SMART", "USD"), lib.LimitOrder("BUY", 1, 99.0))
            await wait_for(lambda: "error:10349" in order_flow(frames))
            assert sim.orders[0].status == "Submitted"
            sim.set_price("AAPL", 98.0)
            await wait_for(lambda: "exec" in order_flow(frames), "the order still fills")

    run(body)


@pytest.mark.parametrize("lib_name", CLIENT_LIBS)
def test_fill_while_disconnected_then_reqexecutions(lib_name: str) -> None:
    async def body() -> None:
        lib = ib_lib(lib_name)
        async with simulator() as sim:
            ib = await connect(lib, sim)
            errors: list[int] = []
            ib.errorEvent += lambda req_id, code, *rest: errors.append(code)
            sim.force_fault("disconnect")
            trade = ib.placeOrder(lib.Stock("AAPL", "SMART", "USD"), lib.MarketOrder("BUY", 3))
            await wait_for(lambda: not ib.isConnected(), "dropped")
            assert 1100 in errors
            assert trade.fills == [] and len(sim.executions) == 1  # filled while the client was away
            again = lib.IB()
            again.errorEvent += lambda req_id, code, *rest: errors.append(code)
            await again.connectAsync("127.0.0.1", sim.port, clientId=7, timeout=5)
            try:
                await wait_for(lambda: 1101 in errors, "restored, data lost")
                fills = await again.reqExecutionsAsync()
                assert [(f.execution.orderId, f.execution.shares) for f in fills] == [
                    (trade.order.orderId, 3.0)
                ]
                assert [p.position for p in again.positions()] == [3.0]
            finally:
                again.disconnect()

    run(body)


@pytest.mark.parametrize("lib_name", CLIENT_LIBS)
def test_drop_connections_then_reconnect_gets_1102(lib_name: str) -> None:
    async def body() -> None:
        lib = ib_lib(lib_name)
        async with simulator() as sim:
            ib = await connect(lib, sim)
            await sim.drop_connections()
            await wait_for(lambda: not ib.isConnected() and not sim.connections)
            errors: list[int] = []
            again = lib.IB()
            again.errorEvent += lambda req_id, code, *rest: errors.append(code)
            await again.connectAsync("127.0.0.1", sim.port, clientId=7, timeout=5)
            await wait_for(lambda: 1102 in errors, "restored, data maintained")
            assert 1101 not in errors  # "data maintained", never "data lost": the account is still there
            assert not ib.isConnected()  # the dropped client stays dropped
            assert [c.client_id for c in sim.connections] == [7]
            again.disconnect()

    run(body)


def test_garbage_never_crashes_the_simulator() -> None:
    async def body() -> None:
        async with simulator() as sim:
            for junk in (
                b"GET / HTTP/1.1\r\n\r\n",
                b"API\0" + struct.pack(">I", 3) + b"x\0\0",
                b"API\0" + struct.pack(">I", 9) + b"v157..176" + struct.pack(">I", 0xFFFFFFFF),
                b"API\0"
                + struct.pack(">I", 10)
                + b"v157..176\0"
                + struct.pack(">I", 10)
                + b"71\x002\0abc\0\0",
                b"API\0" + struct.pack(">I", 10) + b"v157..176\0" + struct.pack(">I", 3) + b"zz\0",
            ):
                reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
                writer.write(junk)
                await writer.drain()
                assert await asyncio.wait_for(reader.read(), 5) is not None  # the server hangs up
                writer.close()
            ib = await connect(ib_lib("ib_async"), sim)
            assert ib.isConnected()
            ib.disconnect()

    run(body)


def test_duplicate_client_id_is_refused() -> None:
    async def body() -> None:
        lib = ib_lib("ib_async")
        async with simulator() as sim:
            first = await connect(lib, sim, client_id=5)
            second = lib.IB()
            with pytest.raises((ConnectionError, asyncio.TimeoutError, TimeoutError)):
                await second.connectAsync("127.0.0.1", sim.port, clientId=5, timeout=2)
            assert [c.client_id for c in sim.connections] == [5]
            first.disconnect()

    run(body)


def test_fault_dice_is_seeded_and_forced() -> None:
    config = parse_fault_args(["reject=0.5", "duplicate-exec=1"], seed=42)
    assert config.reject == 0.5 and config.duplicate_exec == 1.0
    a, b = FaultDice(config), FaultDice(config)
    seq_a, seq_b = [a.draw() for _ in range(50)], [b.draw() for _ in range(50)]
    assert seq_a == seq_b
    assert all("duplicate_exec" in d for d in seq_a)
    assert 10 < sum("reject" in d for d in seq_a) < 40
    forced = FaultDice(FaultConfig())
    forced.force("correction")
    assert forced.draw() == {"correction"} and forced.draw() == frozenset()
    with pytest.raises(ValueError, match="unknown fault"):
        parse_fault_args(["bogus=1"])
    with pytest.raises(ValueError, match="not in"):
        parse_fault_args(["reject=2"])
    assert set(FAULT_NAMES) == set(FaultConfig.__struct_fields__) - {"seed"}


def test_repeated_rate_violations_disconnect_the_client() -> None:
    """Over 50 requests in each of three seconds in a row: error 100 each time, then TWS hangs up."""

    async def body() -> None:
        lib = ib_lib("ib_async")
        async with simulator() as sim:
            sim.engine.clock = SimClock(sim.now(), monotonic=lambda: 0.0)  # stands still: advance() moves it
            ib = await connect(lib, sim)
            ib.client.MaxRequests = 0  # ib_async's own throttle off
            codes: list[int] = []
            ib.errorEvent += lambda req_id, code, *rest: codes.append(code)
            for second in range(1, 4):  # one burst of 60 in each of three seconds of the simulator's clock
                for _ in range(60):
                    ib.client.reqCurrentTime()

                def refused(n: int = second) -> bool:
                    return codes.count(100) >= 9 * n

                await wait_for(refused, f"error 100 in second {second}")
                sim.advance(1)
            await wait_for(lambda: not ib.isConnected(), "disconnected by TWS")
            assert 100 in codes and not ib.isConnected()
            await wait_for(lambda: not sim.connections, "dropped by the simulator")

    run(body)
