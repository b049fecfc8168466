"""The simulator with the real ib_async and ib_insync clients: connect, orders, fills, account, state."""

from __future__ import annotations

import functools
import time
from typing import Any

import pytest

from adapters.tws_sim import SimConfig, run_simulator_in_thread
from tests.test_tws_sim_support import (
    CLIENT_LIBS,
    ErrorLog,
    connect,
    ib_lib,
    run,
    sim_client,
    simulator,
    wait_for,
)

pytestmark = pytest.mark.parametrize("lib_name", CLIENT_LIBS)


def _aapl(lib):
    return lib.Stock("AAPL", "SMART", "USD")


@pytest.mark.parametrize("version", [157, 176])
def test_connect_negotiates_version_and_syncs(lib_name: str, version: int) -> None:
    async def body() -> None:
        async with simulator(SimConfig(max_server_version=version)) as sim:
            started = time.perf_counter()
            ib = await connect(ib_lib(lib_name), sim)
            elapsed = time.perf_counter() - started
            try:
                assert ib.isConnected()
                assert ib.client.serverVersion() == version
                assert ib.managedAccounts() == ["DU123456"]
                assert elapsed < 3.0, "a missing End message costs the client a 4 s timeout"
                assert [c.server_version for c in sim.connections] == [version]
                assert any(v.tag == "NetLiquidation" for v in ib.accountValues())
            finally:
                ib.disconnect()

    run(body)


def test_market_buy_fills_with_commission_and_position(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name) as (sim, ib, lib):
            contract = _aapl(lib)
            await ib.qualifyContractsAsync(contract)
            assert contract.conId == 265598
            trade = ib.placeOrder(contract, lib.MarketOrder("BUY", 100, orderRef="ref-1"))
            await wait_for(
                lambda: trade.isDone() and trade.fills and trade.fills[0].commissionReport.commission
            )
            assert trade.orderStatus.status == "Filled"
            assert trade.orderStatus.filled == 100
            fill = trade.fills[0]
            assert fill.execution.orderRef == "ref-1"
            assert fill.execution.price == sim.price("AAPL")
            assert fill.commissionReport.commission == pytest.approx(1.0)
            await wait_for(lambda: [p.position for p in ib.positions()] == [100.0], "position 100")
            assert [(e.shares, e.client_id) for e in sim.executions] == [(100.0, 7)]

    run(body)


def test_limit_rests_then_fills_when_price_crosses(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name) as (sim, ib, lib):
            sim.set_price("AAPL", 200.0)
            trade = ib.placeOrder(_aapl(lib), lib.LimitOrder("BUY", 10, 195.0))
            await wait_for(lambda: trade.orderStatus.status == "Submitted")
            sim.set_price("AAPL", 196.0)
            assert sim.orders[-1].status == "Submitted"
            sim.set_price("AAPL", 194.5)
            await wait_for(lambda: trade.orderStatus.status == "Filled")
            assert trade.fills[0].execution.price == 194.5

    run(body)


def test_stop_triggers_on_touch(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name) as (sim, ib, lib):
            sim.set_price("MSFT", 400.0)
            trade = ib.placeOrder(lib.Stock("MSFT", "SMART", "USD"), lib.StopOrder("SELL", 5, 390.0))
            await wait_for(lambda: trade.orderStatus.status == "PreSubmitted")  # until elected, as at IB
            sim.set_price("MSFT", 389.0)
            await wait_for(lambda: trade.orderStatus.status == "Filled")
            assert trade.fills[0].execution.side == "SLD"

    run(body)


def test_cancel_sends_cancelled_then_202(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name) as (_sim, ib, lib):
            errors: list[int] = []
            ib.errorEvent += lambda req_id, code, *rest: errors.append(code)
            trade = ib.placeOrder(_aapl(lib), lib.LimitOrder("BUY", 10, 1.0))
            await wait_for(lambda: trade.orderStatus.status == "Submitted")
            ib.cancelOrder(trade.order)
            await wait_for(lambda: 202 in errors, "error 202")
            assert trade.orderStatus.status == "Cancelled"
            ib.cancelOrder(trade.order)  # already cancelled: refused
            await wait_for(lambda: 161 in errors, "error 161")

    run(body)


def test_cancel_unknown_or_filled_and_duplicate_id(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name) as (sim, ib, lib):
            errors: list[int] = []
            ib.errorEvent += lambda req_id, code, *rest: errors.append(code)
            trade = ib.placeOrder(_aapl(lib), lib.MarketOrder("BUY", 1))
            await wait_for(lambda: trade.orderStatus.status == "Filled")
            ib.client.cancelOrder(trade.order.orderId, *([""] if ib.client.serverVersion() >= 169 else []))
            await wait_for(lambda: 10148 in errors, "error 10148")
            ib.client.cancelOrder(99999, *([""] if ib.client.serverVersion() >= 169 else []))
            await wait_for(lambda: 10147 in errors, "error 10147")
            ib.client.placeOrder(trade.order.orderId, trade.contract, trade.order)
            await wait_for(lambda: 103 in errors, "error 103")
            assert [code for code in errors if code in (10147, 10148, 103)] == [10148, 10147, 103]
            assert trade.orderStatus.status == "Filled"  # the refused cancel left the fill alone
            # ... and the duplicate id placed nothing: the simulator holds the one filled order
            assert [(o.order_id, o.status) for o in sim.orders] == [(trade.order.orderId, "Filled")]

    run(body)


def test_partial_fills_have_distinct_exec_ids(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name, SimConfig(partial_fills=3)) as (_sim, ib, lib):
            trade = ib.placeOrder(_aapl(lib), lib.MarketOrder("BUY", 10))
            await wait_for(lambda: len(trade.fills) == 3 and trade.isDone())
            shares = [f.execution.shares for f in trade.fills]
            assert shares == [4.0, 3.0, 3.0]
            assert [f.execution.cumQty for f in trade.fills] == [4.0, 7.0, 10.0]
            assert len({f.execution.execId for f in trade.fills}) == 3
            assert trade.orderStatus.filled == 10

    run(body)


def test_modify_by_replacing_same_order_id(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name) as (sim, ib, lib):
            sim.set_price("AAPL", 200.0)
            order = lib.LimitOrder("BUY", 10, 190.0)
            trade = ib.placeOrder(_aapl(lib), order)
            await wait_for(lambda: trade.orderStatus.status == "Submitted")
            order.lmtPrice = 201.0
            ib.placeOrder(_aapl(lib), order)
            await wait_for(lambda: trade.orderStatus.status == "Filled")
            assert [o.lmt_price for o in sim.orders] == [201.0]
            assert trade.fills[0].execution.price == 200.0

    run(body)


def test_bracket_children_wait_for_parent_then_oca(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name) as (sim, ib, lib):
            sim.set_price("AAPL", 200.0)
            bracket = ib.bracketOrder("BUY", 10, 199.0, takeProfitPrice=205.0, stopLossPrice=195.0)
            parent, take, stop = (ib.placeOrder(_aapl(lib), o) for o in bracket)
            await wait_for(lambda: parent.orderStatus.status == "Submitted" and stop.orderStatus.status)
            assert take.orderStatus.status == "PreSubmitted"  # waits for the parent
            sim.set_price("AAPL", 206.0)  # above the take-profit, but the parent has not filled
            assert [o.status for o in sim.orders] == ["Submitted", "PreSubmitted", "PreSubmitted"]
            sim.set_price("AAPL", 198.0)
            await wait_for(
                lambda: parent.orderStatus.status == "Filled" and take.orderStatus.status == "Submitted"
            )
            sim.set_price("AAPL", 205.5)
            await wait_for(
                lambda: take.orderStatus.status == "Filled" and stop.orderStatus.status == "Cancelled"
            )
            assert [p.quantity for p in sim.positions] == [0.0]
            await wait_for(lambda: ib.positions() == [], "flat again (the client drops zero positions)")

    run(body)


def test_global_cancel_cancels_every_working_order(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name) as (sim, ib, lib):
            trades = [ib.placeOrder(_aapl(lib), lib.LimitOrder("BUY", 1, 1.0 + i)) for i in range(3)]
            await wait_for(lambda: all(t.orderStatus.status == "Submitted" for t in trades))
            ib.reqGlobalCancel()
            await wait_for(lambda: all(t.orderStatus.status == "Cancelled" for t in trades))
            assert [(o.status, o.filled) for o in sim.orders] == [("Cancelled", 0.0)] * 3  # the book too
            assert ib.openTrades() == []

    run(body)


def test_external_orders_are_visible(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name, client_id=0) as (sim, ib, _lib):
            sim.place_external_order("AAPL", "BUY", 5, "LMT", lmt_price=1.0)
            await wait_for(lambda: len(ib.openTrades()) == 1, "TWS order reaches clientId 0")
            sim.fill_external("MSFT", "SELL", 3, client_id=42)
            await wait_for(lambda: any(p.position == -3 for p in ib.positions()), "position from clientId 42")
            fills = await ib.reqExecutionsAsync()
            assert [(f.execution.clientId, f.execution.shares) for f in fills] == [(42, 3.0)]
            trades = await ib.reqAllOpenOrdersAsync()
            assert len(trades) == 1

    run(body)


def test_completed_orders_and_account_summary(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name) as (_sim, ib, lib):
            trade = ib.placeOrder(_aapl(lib), lib.MarketOrder("BUY", 2))
            await wait_for(lambda: trade.orderStatus.status == "Filled")
            completed = await ib.reqCompletedOrdersAsync(apiOnly=True)
            assert [(t.order.permId, t.orderStatus.status) for t in completed] == [
                (trade.order.permId, "Filled")
            ]
            summary = await ib.accountSummaryAsync()
            assert {v.tag for v in summary} >= {"NetLiquidation", "TotalCashValue"}

    run(body)


def test_completed_orders_are_the_current_trading_days(lib_name: str) -> None:
    """IB restates the orders completed today, not the day before (after a daily restart, too)."""

    async def body() -> None:
        async with sim_client(lib_name) as (sim, ib, lib):
            trade = ib.placeOrder(_aapl(lib), lib.MarketOrder("BUY", 2))
            await wait_for(lambda: trade.orderStatus.status == "Filled")
            completed = await ib.reqCompletedOrdersAsync(apiOnly=True)
            assert [t.order.permId for t in completed] == [trade.order.permId]
            sim.advance(24 * 3600)
            assert await ib.reqCompletedOrdersAsync(apiOnly=True) == []

    run(body)


def test_state_persists_across_restart(lib_name: str, tmp_path) -> None:
    config = SimConfig(state_dir=str(tmp_path / "state"))

    async def body() -> None:
        async with sim_client(lib_name, config) as (_sim, ib, lib):
            trade = ib.placeOrder(_aapl(lib), lib.MarketOrder("BUY", 7))
            resting = ib.placeOrder(_aapl(lib), lib.LimitOrder("BUY", 1, 1.0))
            await wait_for(lambda: trade.isDone() and resting.orderStatus.status == "Submitted")
            first_id = resting.order.orderId
        assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
        assert all(f.stat().st_mode & 0o777 == 0o600 for f in (tmp_path / "state").iterdir())
        async with sim_client(lib_name, config) as (_sim, ib, lib):
            assert [p.position for p in ib.positions()] == [7.0]
            assert [t.order.orderId for t in ib.openTrades()] == [first_id]
            fills = await ib.reqExecutionsAsync()
            assert [f.execution.shares for f in fills] == [7.0]
            assert ib.client.getReqId() > first_id  # nextValidId continues after the used ids

    run(body)


def test_thread_runner_serves_a_sync_client(lib_name: str) -> None:
    sim, port, stop = run_simulator_in_thread(SimConfig())
    try:
        assert port == sim.port > 0

        async def body() -> None:
            lib = ib_lib(lib_name)
            ib = lib.IB()
            await ib.connectAsync("127.0.0.1", port, clientId=3, timeout=5)
            try:
                sim.set_price("IBM", 150.0)  # from another thread: marshalled onto the simulator's loop
                trade = ib.placeOrder(lib.Stock("IBM", "SMART", "USD"), lib.LimitOrder("SELL", 1, 149.0))
                await wait_for(lambda: trade.orderStatus.status == "Filled")
            finally:
                ib.disconnect()

        run(body)
    finally:
        stop()


def test_client_decoder_sees_no_errors(lib_name: str) -> None:
    """Every message of a busy session decodes cleanly in the real client (no "Error handling fields")."""
    import logging

    async def body() -> None:
        handler = ErrorLog()
        logging.getLogger(lib_name).addHandler(handler)
        try:
            for version in (157, 176):
                async with sim_client(lib_name, SimConfig(max_server_version=version, partial_fills=2)) as (
                    _sim,
                    ib,
                    lib,
                ):
                    trade = ib.placeOrder(_aapl(lib), lib.MarketOrder("BUY", 4))
                    await wait_for(functools.partial(_done_with_two_fills, trade))
                    await ib.reqExecutionsAsync()
                    await ib.reqAllOpenOrdersAsync()
                    await ib.reqCompletedOrdersAsync(apiOnly=False)
                    await ib.reqPositionsAsync()
        finally:
            logging.getLogger(lib_name).removeHandler(handler)
        assert not [m for m in handler.messages() if "Error handling fields" in m or "Decode" in m]

    run(body)


def test_contract_by_con_id_alone(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name) as (sim, ib, lib):
            errors: list[int] = []
            ib.errorEvent += lambda req_id, code, *rest: errors.append(code)
            by_id = lib.Contract(conId=265598)
            await ib.qualifyContractsAsync(by_id)
            assert by_id.symbol == "AAPL"
            trade = ib.placeOrder(lib.Contract(conId=265598, exchange="SMART"), lib.MarketOrder("BUY", 1))
            await wait_for(lambda: trade.orderStatus.status == "Filled")
            assert sim.executions[0].contract.symbol == "AAPL"
            ib.placeOrder(lib.Contract(conId=1, exchange="SMART"), lib.MarketOrder("BUY", 1))
            await wait_for(lambda: 200 in errors, "error 200: no security definition")
            assert len(sim.orders) == 1  # the unknown contract made no order

    run(body)


def _done_with_two_fills(trade: Any) -> bool:
    return bool(trade.isDone() and len(trade.fills) == 2)


def test_reqpnl_reports_the_accounts_pnl_now_and_after_each_fill(lib_name: str) -> None:
    async def body() -> None:
        async with sim_client(lib_name) as (_sim, ib, lib):
            account = ib.managedAccounts()[0]
            pnl = ib.reqPnL(account)
            await wait_for(lambda: pnl.dailyPnL == 0.0, "the first PNL: nothing traded yet")
            trade = ib.placeOrder(_aapl(lib), lib.MarketOrder("BUY", 10))
            await wait_for(lambda: trade.isDone())
            await wait_for(lambda: pnl.dailyPnL < 0, "the fill's commission in the daily P&L")
            base = {v.tag: v.value for v in ib.accountValues(account) if v.currency == "BASE"}
            expected = float(base["RealizedPnL"]) + float(base["UnrealizedPnL"])
            assert pnl.dailyPnL == pytest.approx(expected)
            ib.cancelPnL(account)
            before = pnl.dailyPnL
            sold = ib.placeOrder(_aapl(lib), lib.MarketOrder("SELL", 10))
            await wait_for(lambda: sold.isDone())
            await wait_for(lambda: len(ib.fills()) == 2, "the sale's fill")
            assert pnl.dailyPnL == before  # cancelled: no more updates

    run(body)


def test_reqpnl_daily_pnl_restarts_each_day(lib_name: str) -> None:
    """IB's daily P&L restarts every day: yesterday's realized P&L stays in realizedPnL only."""

    async def body() -> None:
        async with sim_client(lib_name) as (sim, ib, lib):
            account = ib.managedAccounts()[0]
            for action in ("BUY", "SELL"):
                trade = ib.placeOrder(_aapl(lib), lib.MarketOrder(action, 10))
                await wait_for(trade.isDone)
            pnl = ib.reqPnL(account)
            await wait_for(lambda: pnl.realizedPnL < 0, "the round trip's commissions realized")
            assert pnl.dailyPnL == pytest.approx(pnl.realizedPnL)  # flat: all of it realized today
            realized = pnl.realizedPnL
            ib.cancelPnL(account)
            sim.set_time(sim.now() + 86400)
            again = ib.reqPnL(account)
            await wait_for(lambda: again.realizedPnL == realized, "the next day's first PNL")
            assert again.dailyPnL == 0.0

    run(body)
