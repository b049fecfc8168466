"""IB as users meet it (issue 9), one test per row of docs/simulator.md's table: the real ib_async client,
through the project's adapter, against the simulator at server version 178; the sink folds every event
as the service would, and the assertions are on the events and the folded order, position and account."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import ib_async
import pytest

from adapters.ib.adapter import IBAdapter
from adapters.tws_sim import SimConfig
from events.schema import (
    BrokerError,
    ConnectionChanged,
    Contract,
    OpenOrderReported,
    OrderRequested,
    OrderStatusReported,
)
from tests.ib_helpers import Cell, FoldingSink, connected, request, session, until

LIB = Cell("ib_async", 178)  # what every ib_async user runs at today
NY = ZoneInfo("America/New_York")
ES = Contract(symbol="ES", sec_type="FUT", exchange="CME", last_trade_date="20261218")
AAPL_C200 = Contract(
    symbol="AAPL", sec_type="OPT", last_trade_date="20261218", strike=200.0, right="C", multiplier="100"
)


async def place(adapter: IBAdapter, sink: FoldingSink, req: OrderRequested) -> int:
    sink(req)  # the service logs the intent before it calls the adapter
    return await adapter.place(req)


def errors(sink: FoldingSink, req_id: int | None = None) -> list[int]:
    return [e.code for e in sink.of(BrokerError) if req_id is None or e.req_id == req_id]


def run(body: Any) -> None:
    asyncio.run(body())


def at_ny(epoch: float, hour: int, minute: int = 0) -> float:
    """The same New York day as `epoch`, at hour:minute."""
    day = datetime.fromtimestamp(epoch, NY)
    return day.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()


def test_server_version_is_178_and_farms_report_at_connect() -> None:
    async def body() -> None:
        async with session(LIB) as (_sim, adapter, sink):
            assert adapter.ib.client.serverVersion() == 178
            await until(lambda: {2104, 2106, 2158} <= set(errors(sink, -1)), "farm status 2104/2106/2158")
            assert sink.state.orders == {}  # informational: nothing changes

    run(body)


def test_unknown_symbol_is_refused_with_200_and_no_order() -> None:
    async def body() -> None:
        async with session(LIB) as (sim, adapter, sink):
            order_id = await place(adapter, sink, request("zz-1", symbol="ZZZZNOTREAL", qty=1))
            await until(lambda: 200 in errors(sink, order_id), "error 200")
            assert sim.orders == [] and sim.executions == []
            await until(lambda: sink.state.orders["zz-1"].status == "rejected", "rejected", timeout=3)

    run(body)


def test_fractional_stock_quantity_is_refused_with_10243() -> None:
    async def body() -> None:
        async with session(LIB) as (sim, adapter, sink):
            order_id = await place(adapter, sink, request("frac-1", qty="1.5"))
            await until(lambda: 10243 in errors(sink, order_id), "error 10243")
            assert sim.orders == [] and sim.executions == []
            assert all(p.quantity == 0 for p in sink.state.positions.values())
            await until(lambda: sink.state.orders["frac-1"].status == "rejected", "rejected", timeout=3)

    run(body)


def test_price_off_the_tick_is_refused_with_110() -> None:
    async def body() -> None:
        async with session(LIB) as (sim, adapter, sink):
            order_id = await place(adapter, sink, request("tick-1", order_type="LMT", limit_price=100.005))
            await until(lambda: 110 in errors(sink, order_id), "error 110")
            assert sim.orders == []
            await until(lambda: sink.state.orders["tick-1"].status == "rejected", "rejected", timeout=3)

    run(body)


def test_rejection_is_201_then_inactive() -> None:
    async def body() -> None:
        async with session(LIB) as (sim, adapter, sink):
            sim.force_fault("reject")
            order_id = await place(adapter, sink, request("rej-1"))
            await until(lambda: any(e.status == "Inactive" for e in sink.of(OrderStatusReported)), "Inactive")
            assert errors(sink, order_id) == [201]
            assert [o.status for o in sim.orders] == ["Inactive"] and sim.executions == []
            assert sink.state.orders["rej-1"].status in ("rejected", "inactive")

    run(body)


async def _what_if(adapter: IBAdapter) -> Any:
    order = ib_async.MarketOrder("BUY", 100)
    return await adapter.ib.whatIfOrderAsync(ib_async.Stock("AAPL", "SMART", "USD"), order)


def test_what_if_returns_margin_and_never_executes() -> None:
    async def body() -> None:
        async with session(LIB) as (sim, adapter, sink):
            state = await _what_if(adapter)
            assert float(state.initMarginChange) == pytest.approx(100 * sim.price("AAPL") * 0.25)
            assert float(state.equityWithLoanAfter) > 0
            assert sim.orders == [] and sim.executions == []
            assert not sink.state.fills and all(p.quantity == 0 for p in sink.state.positions.values())

    run(body)


def test_what_if_makes_no_order_in_the_fold() -> None:
    async def body() -> None:
        async with session(LIB) as (_sim, adapter, sink):
            await _what_if(adapter)
            assert sink.state.orders == {} and not sink.state.positions

    run(body)


def test_stop_order_is_presubmitted_until_elected() -> None:
    async def body() -> None:
        async with session(LIB) as (sim, adapter, sink):
            sim.set_price("MSFT", 400.0)
            await place(
                adapter,
                sink,
                request("stp-1", symbol="MSFT", side="SELL", order_type="STP", stop_price=390.0),
            )
            await until(
                lambda: any(e.status == "PreSubmitted" for e in sink.of(OrderStatusReported)), "PreSubmitted"
            )
            assert not any(e.status == "Submitted" for e in sink.of(OrderStatusReported))
            assert sink.state.orders["stp-1"].status == "submitted"
            sim.set_price("MSFT", 389.0)
            await until(lambda: sink.state.orders["stp-1"].status == "filled", "elected and filled")

    run(body)


def test_link_lost_keeps_the_socket_then_1102_and_orders_wait() -> None:
    async def body() -> None:
        async with session(LIB) as (sim, adapter, sink):
            sim.lose_link()
            await until(lambda: 1100 in errors(sink, -1), "1100")
            assert adapter.ib.isConnected() and len(sim.connections) == 1  # the API socket stays up
            await place(adapter, sink, request("link-1", qty=5))
            await until(
                lambda: "link-1" in sink.state.orders and sink.state.orders["link-1"].order_id, "sent"
            )
            assert sim.executions == []  # nothing trades while TWS has no link to IB
            sim.restore_link(data_lost=False)
            await until(lambda: 1102 in errors(sink, -1), "1102")
            await until(lambda: sink.state.orders["link-1"].status == "filled", "filled once restored")
            states = [e.state for e in sink.of(ConnectionChanged)]
            assert "lost" in states and states[-1] in ("restored", "connected")
            sim.lose_link()
            sim.restore_link(data_lost=True)
            await until(lambda: 1101 in errors(sink, -1), "1101")

    run(body)


def test_more_than_50_messages_a_second_get_error_100() -> None:
    async def body() -> None:
        async with session(LIB) as (sim, adapter, sink):
            adapter.ib.client.MaxRequests = 0  # switch off ib_async's own throttle (45/s by default)
            for _ in range(70):
                adapter.ib.client.reqCurrentTime()
            await until(lambda: 100 in errors(sink), "error 100")
            assert errors(sink).count(100) >= 10
            assert sim.connections  # once is tolerated; repeated violations disconnect

    run(body)


def test_req_executions_returns_only_executions_since_midnight() -> None:
    async def body() -> None:
        config = SimConfig(clock_start="2026-11-30T10:00:00-05:00")
        async with session(LIB, config) as (sim, adapter, sink):
            await place(adapter, sink, request("today-1", qty=2))
            await until(lambda: sink.state.orders["today-1"].status == "filled", "filled")
            assert (await adapter.reconcile("same day")).executions == 1
            sim.set_time(at_ny(sim.now(), 10) + timedelta(days=1).total_seconds())  # the next morning
            assert (await adapter.reconcile("next day")).executions == 0
            assert sink.state.orders["today-1"].filled == 2  # what was folded stays

    run(body)


def test_tws_orders_have_order_id_0_and_reach_only_client_0_live() -> None:
    async def body() -> None:
        async with session(LIB) as (sim, adapter, sink):
            sim.place_manual_order("AAPL", "SELL", 3, "LMT", lmt_price=500.0, order_ref="manual")
            await adapter.ib.reqCurrentTimeAsync()  # a round trip: anything live would have arrived
            assert not sink.of(OpenOrderReported)  # client 7 does not hear TWS orders live
            await adapter.reconcile("poll")  # reqAllOpenOrders: anyone may see them
            (seen,) = sink.of(OpenOrderReported)
            assert (seen.order_id, seen.client_id, seen.order_ref) == (0, 0, "manual")
            async with connected(sim, LIB, 0) as (master, master_sink):
                master.ib.reqAutoOpenOrders(True)
                await master.ib.reqCurrentTimeAsync()
                sim.place_manual_order("AAPL", "BUY", 4, "LMT", lmt_price=1.0, order_ref="manual-2")
                await until(
                    lambda: any(e.order_ref == "manual-2" for e in master_sink.of(OpenOrderReported)), "live"
                )
                live = next(e for e in master_sink.of(OpenOrderReported) if e.order_ref == "manual-2")
                assert live.order_id < 0 and live.client_id == 0  # bound: a negative orderId

    run(body)


@pytest.mark.parametrize(
    ("contract", "name", "entry", "exit_", "multiplier"),
    [(ES, "ESZ6", 5400.0, 5410.25, 50), (AAPL_C200, "AAPL  261218C00200000", 12.5, 13.0, 100)],
    ids=["future", "option"],
)
def test_future_and_option_trade_with_pnl_times_multiplier(
    contract: Contract, name: str, entry: float, exit_: float, multiplier: int
) -> None:
    async def body() -> None:
        async with session(LIB) as (sim, adapter, sink):
            sim.set_price(name, entry)
            await place(adapter, sink, OrderRequested(
                client_order_id="d-open", strategy_id="s1", account="DU123456", contract=contract,
                side="BUY", quantity=Decimal(2),
            ))  # fmt: skip
            await until(lambda: sink.state.orders["d-open"].status == "filled", "opened")
            positions = await adapter.ib.reqPositionsAsync()
            (ib_pos,) = [p for p in positions if p.contract.secType == contract.sec_type]
            commission = sim.executions[0].commission
            assert ib_pos.avgCost == pytest.approx(entry * multiplier + commission / 2)  # IB's avgCost
            sim.set_price(name, exit_)
            await place(adapter, sink, OrderRequested(
                client_order_id="d-close", strategy_id="s1", account="DU123456", contract=contract,
                side="SELL", quantity=Decimal(2),
            ))  # fmt: skip
            await until(lambda: sink.state.orders["d-close"].status == "filled", "closed")
            (pos,) = [p for p in sink.state.positions.values() if p.contract.sec_type == contract.sec_type]
            assert pos.quantity == 0
            pnl = (Decimal(repr(exit_)) - Decimal(repr(entry))) * 2 * multiplier  # exact, in USD only
            assert pos.realized_pnl_gross == {"USD": pnl}

    run(body)


def test_day_order_is_cancelled_at_the_close() -> None:
    async def body() -> None:
        config = SimConfig(clock_start="2026-11-30T15:00:00-05:00")
        async with session(LIB, config) as (sim, adapter, sink):
            await place(adapter, sink, request("day-1", order_type="LMT", limit_price=100.0))
            await place(adapter, sink, request("gtc-1", order_type="LMT", limit_price=100.0, tif="GTC"))
            await until(lambda: sink.state.orders["gtc-1"].status == "submitted", "working")
            sim.set_time(at_ny(sim.now(), 16, 1))
            await until(lambda: sink.state.orders["day-1"].status == "cancelled", "DAY cancelled at close")
            assert sink.state.orders["gtc-1"].status == "submitted"

    run(body)


def test_outside_rth_orders_work_only_when_flagged() -> None:
    async def body() -> None:
        config = SimConfig(clock_start="2026-11-30T18:00:00-05:00")  # after the close, extended hours
        async with session(LIB, config) as (sim, adapter, sink):
            high = sim.price("AAPL") + 5  # marketable
            rth_id = await place(adapter, sink, request("rth-1", order_type="LMT", limit_price=high))
            await place(adapter, sink, request("eth-1", order_type="LMT", limit_price=high, outside_rth=True))
            await until(lambda: sink.state.orders["eth-1"].status == "filled", "flagged order fills")
            await until(lambda: 399 in errors(sink, rth_id), "399: held until the open")
            assert sink.state.orders["rth-1"].filled == 0
            sim.set_time(at_ny(sim.now(), 9, 31) + 86400)  # the next regular session
            await until(lambda: sink.state.orders["rth-1"].status == "filled", "fills at the open")

    run(body)
