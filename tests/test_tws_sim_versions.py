"""Every message the simulator sends decodes in the real clients at the versions users run: ib_async at 178,
ib_insync at 176, and both at 157. A decoder that cannot read a frame logs "Error handling fields" and drops
it, so each case also checks that nothing was logged and that the decoded objects carry the right values."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from adapters.tws_sim import SimConfig
from adapters.tws_sim.catalog import INSTRUMENTS
from tests.test_tws_sim_support import ErrorLog, connect, ib_lib, run, simulator, wait_for

CASES = [("ib_async", 178), ("ib_insync", 176), ("ib_async", 157), ("ib_insync", 157)]


@pytest.mark.parametrize(("lib_name", "version"), CASES, ids=[f"{n}-{v}" for n, v in CASES])
def test_every_message_decodes(lib_name: str, version: int) -> None:
    async def body() -> None:
        lib = ib_lib(lib_name)
        log = ErrorLog()
        logging.getLogger(lib_name).addHandler(log)
        try:
            async with simulator(SimConfig(max_server_version=version, partial_fills=2)) as sim:
                ib = await connect(lib, sim)
                try:
                    await _exercise(ib, lib, sim, version)
                finally:
                    ib.disconnect()
        finally:
            logging.getLogger(lib_name).removeHandler(log)
        assert not [m for m in log.messages() if "Error handling fields" in m], log.messages()

    run(body, timeout=90)


async def _exercise(ib: Any, lib: Any, sim: Any, version: int) -> None:
    assert ib.client.serverVersion() == version
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, *rest: codes.append(code)
    # openOrder, orderStatus, execDetails (two executions), commissionReport; positions and portfolio
    trade = ib.placeOrder(lib.Stock("AAPL", "SMART", "USD"), lib.MarketOrder("BUY", 10))
    await wait_for(lambda: trade.orderStatus.status == "Filled" and len(trade.fills) == 2, "filled")
    await wait_for(lambda: all(f.commissionReport.commission > 0 for f in trade.fills), "commissions")
    assert trade.order.permId and trade.fills[0].execution.execId and trade.fills[1].execution.cumQty == 10
    future = ib.placeOrder(
        lib.Future("ES", "20261218", "CME", currency="USD"), lib.MarketOrder("BUY", 1)
    )  # a future: avgCost with the multiplier
    await wait_for(lambda: future.orderStatus.status == "Filled", "future filled")
    positions = {p.contract.conId: p for p in await ib.reqPositionsAsync()}
    assert positions[265598].position == 10 and positions[649180695].avgCost > 50 * 5000
    await wait_for(lambda: len(ib.portfolio()) == 2, "portfolio")
    values = {(v.tag, v.currency) for v in ib.accountValues()}
    assert {("NetLiquidation", "USD"), ("ExchangeRate", "BASE"), ("CashBalance", "BASE")} <= values
    # a rejection (error 201, openOrder and orderStatus Inactive) and a cancel (Cancelled, error 202)
    sim.force_fault("reject")
    rejected = ib.placeOrder(lib.Stock("MSFT", "SMART", "USD"), lib.LimitOrder("BUY", 1, 1.0))
    await wait_for(lambda: rejected.orderStatus.status == "Inactive", "inactive")
    resting = ib.placeOrder(lib.Stock("MSFT", "SMART", "USD"), lib.LimitOrder("BUY", 1, 1.0))
    await wait_for(lambda: resting.orderStatus.status == "Submitted", "working")
    ib.cancelOrder(resting.order)
    await wait_for(lambda: 202 in codes and 201 in codes, "errors 201 and 202")
    # completedOrder, execDetails on request, contract details of every instrument, a market data snapshot
    completed = await ib.reqCompletedOrdersAsync(apiOnly=False)
    assert {t.orderStatus.status for t in completed} >= {"Filled", "Cancelled", "Inactive"}
    fills = await ib.reqExecutionsAsync()
    assert sorted(f.execution.shares for f in fills) == [1, 5, 5]
    for inst in INSTRUMENTS:
        (details,) = await ib.reqContractDetailsAsync(lib.Contract(conId=inst.con_id))
        assert (details.contract.symbol, details.minTick) == (inst.symbol, inst.min_tick)
        assert details.liquidHours and details.timeZoneId
    (eurusd,) = await ib.qualifyContractsAsync(lib.Forex("EURUSD"))
    (ticker,) = await ib.reqTickersAsync(eurusd)
    assert ticker.last == sim.price("EUR.USD") and ticker.bid < ticker.ask
