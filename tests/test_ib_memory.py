"""The library's per-order objects follow the working orders: hundreds of orders filled, cancelled and
refused through the real ib_async / ib_insync client and the simulator leave only the working ones in
the library's caches and the adapter's; late callbacks are still logged; working orders still modify
and cancel. Plus the retention rules alone (adapters/ib/retention.py)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from adapters.ib.adapter import IBAdapter
from adapters.ib.pacing import Pacing
from adapters.ib.retention import Release, Retention
from adapters.tws_sim import SimConfig
from adapters.tws_sim.faults import FaultConfig
from events.schema import (
    BrokerError,
    CancelRequested,
    CommissionReported,
    Contract,
    ExecutionReported,
    ModifyRequested,
    OpenOrderReported,
    OrderRequested,
    OrderStatusReported,
)
from tests.ib_helpers import Cell, FoldingSink, matrix, request, session, until

ORDERS = 240
UNSET = "1.7976931348623157E308"  # IB's unset double: no realized P&L
ENDED = ("filled", "cancelled", "rejected", "inactive")
CHURN = SimConfig(
    partial_fills=2,
    max_msg_rate=0,
    faults=FaultConfig(
        seed=11, reject=0.1, commission_late=0.3, correction=0.1, duplicate_exec=0.1, exec_first=0.1,
        status_repeat=0.1,
    ),
)  # fmt: skip


async def place(adapter: IBAdapter, sink: FoldingSink, req: OrderRequested) -> int:
    sink(req)
    return await adapter.place(req)


def only_working(adapter: IBAdapter, working: dict[str, int]) -> bool:
    """The library holds a Trade (under its key and its permId) for each working order and nothing
    else: no Fill (the working orders rest unfilled); the adapter keeps their requests only."""
    wrapper = adapter.ib.wrapper
    trades = set(wrapper.trades)
    by_perm = {id(t) for t in wrapper.permId2Trade.values()}
    return (
        trades == {(7, order_id) for order_id in working.values()}
        and by_perm <= {id(t) for t in wrapper.trades.values()}
        and adapter.kept()
        == {"trades": len(working), "perm_ids": len(by_perm), "fills": 0, "orders": len(working)}
        | {"requests": len(working), "order_ids": len(working)}
    )


@matrix
def test_finished_orders_leave_the_library_and_working_ones_stay_usable(ib: Cell) -> None:
    async def run() -> None:
        async with session(ib, CHURN, pacing=Pacing(rate=50, burst=10)) as (sim, adapter, sink):
            seen_by_library: set[str] = set()  # commissions the library joined to a Trade it still held
            adapter.ib.commissionReportEvent += lambda _t, fill, _r: seen_by_library.add(
                fill.execution.execId
            )
            price = sim.price("AAPL")
            resting: dict[str, int] = {}
            for n in range(ORDERS):
                if n % 6 == 0:  # rests far from the market; most are cancelled below
                    coid = f"lmt-{n}"
                    resting[coid] = await place(
                        adapter, sink, request(coid, order_type="LMT", limit_price=price - 50)
                    )
                elif n % 40 == 1:  # IB knows no such contract: error 200, never an order
                    await place(adapter, sink, request(f"bad-{n}", symbol="NOSUCHSYMBOL"))
                else:
                    await place(adapter, sink, request(f"mkt-{n}", side="BUY" if n % 2 else "SELL", qty=3))
            keep = sorted(resting)[-4:]
            for coid in set(resting) - set(keep):
                sink(CancelRequested(client_order_id=coid))
                await adapter.cancel(resting[coid])

            def all_done() -> bool:
                orders = sink.state.orders
                return all(o.status in ENDED for c, o in orders.items() if c not in keep)

            await until(all_done, "every order but the kept ones ended", timeout=30)
            working = {c: resting[c] for c in keep if sink.state.orders[c].status == "submitted"}
            assert working, "a kept order was rejected by the seeded faults; pick another seed"
            statuses = {o.status for o in sink.state.orders.values()}
            assert {"filled", "cancelled", "rejected"} <= statuses
            executed = {e.exec_id for e in sink.of(ExecutionReported)}
            await until(lambda: executed <= {e.exec_id for e in sink.of(CommissionReported)}, "commissions")
            await until(lambda: only_working(adapter, working), "only the working orders kept")
            assert seen_by_library == executed  # every commission, late ones too, reached a kept Trade

            late = next(iter(executed))  # a commission report long after its order was released
            adapter.ib.client.decoder.interpret(["59", "1", late, "1.25", "USD", UNSET, UNSET, ""])
            assert sink.events[-1] == CommissionReported(exec_id=late, commission=1.25, currency="USD")
            assert only_working(adapter, working)

            finished = await adapter.reconcile("test")  # completed orders and executions come back...
            assert finished.ok and finished.orders and finished.executions >= len(executed)
            await until(lambda: only_working(adapter, working), "...and are released again")

            first = next(iter(working))
            change = ModifyRequested(client_order_id=first, limit_price=price - 40)
            sink(change)
            await adapter.modify(first, working[first], change)
            await until(lambda: sink.state.orders[first].limit_price == price - 40, "modified")
            for coid in working:
                sink(CancelRequested(client_order_id=coid))
                await adapter.cancel(working[coid])
            await until(lambda: only_working(adapter, {}), "the last working orders released")
            assert all(sink.state.orders[c].status == "cancelled" for c in working)

    asyncio.run(run())


# -- the rules alone ----------------------------------------------------------------------------------

AAPL = Contract(symbol="AAPL", con_id=265598)


def status(order_id: int, status: str, filled: int = 0, why_held: str = "") -> OrderStatusReported:
    return OrderStatusReported(
        order_id=order_id, perm_id=900 + order_id, client_id=7, status=status, filled=Decimal(filled),
        remaining=Decimal(0), why_held=why_held,
    )  # fmt: skip


def execution(order_id: int, exec_id: str, shares: int) -> ExecutionReported:
    return ExecutionReported(
        exec_id=exec_id, order_id=order_id, perm_id=900 + order_id, client_id=7, order_ref="", account="DU1",
        contract=AAPL, side="BOT", shares=Decimal(shares), price=1.0,
    )  # fmt: skip


def commission(exec_id: str) -> CommissionReported:
    return CommissionReported(exec_id=exec_id, commission=1.0, currency="USD")


def test_filled_is_final_only_with_every_execution_and_its_commission() -> None:
    kept = Retention(client_id=7)
    kept.sent(1, "a")
    assert kept.observe(status(1, "Filled", filled=10)) is None  # status before its executions
    assert kept.observe(execution(1, "e1.01", 6)) is None
    assert kept.observe(commission("e1.01")) is None  # 6 of 10 executed
    assert kept.observe(commission("e2.02")) is None  # a commission before its execution is remembered
    assert kept.observe(execution(1, "e2.01", 4)) is None  # no commission for it
    done = kept.observe(execution(1, "e2.02", 4))  # its correction, whose commission came first
    assert done == Release((7, 1), 901, ("e1.01", "e2.01", "e2.02"), "a")
    assert kept.kept() == {}
    assert kept.observe(execution(1, "e3.01", 1)) == Release(exec_ids=("e3.01",))  # late: its Fill goes
    assert kept.observe(status(1, "Filled", filled=10)) == Release(
        (7, 1), 901
    )  # a repeat: a re-made Trade goes
    assert kept.kept() == {}


def test_ended_held_refused_and_completed_orders() -> None:
    kept = Retention(client_id=7)
    for order_id, coid in ((1, "cancelled"), (2, "held"), (3, "refused"), (4, "accepted")):
        kept.sent(order_id, coid)
    assert kept.observe(status(1, "Cancelled", filled=2)) == Release((7, 1), 901, (), "cancelled")
    assert kept.observe(status(2, "Inactive", why_held="locate")) is None  # held: still works
    refused = BrokerError(req_id=3, code=200, message="No security definition", error_class="rejection")
    assert kept.observe(refused) == Release((7, 3), 0, (), "refused")
    assert kept.observe(status(4, "Submitted")) is None
    assert kept.observe(BrokerError(req_id=4, code=201, message="", error_class="rejection")) is None
    completed = OpenOrderReported(
        order_id=0, perm_id=904, client_id=0, order_ref="accepted", account="DU1", contract=AAPL, side="BUY",
        quantity=Decimal(1), order_type="LMT", status="Cancelled", completed=True, filled=Decimal(0),
    )  # fmt: skip
    assert kept.observe(completed) == Release((7, 4), 904, (), "accepted")
    assert kept.observe(completed) == Release(904, 904)  # the Trade the library builds again goes at once
    assert set(kept.kept()) == {(7, 2)}
