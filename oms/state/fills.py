"""Executions and commissions: fills deduped by execId, corrections (a later execId with the same part
before the last ".") replacing what they correct, commissions joined to executions whichever comes
first, and inferred fills for what IB reports filled but no execution explains. Fills are the only
source of filled quantities and positions. This module owns `State.fills` and
`State.pending_commissions` and writes them only into the step's plan.
"""

from __future__ import annotations

from decimal import Decimal

from msgspec import Struct
from msgspec.structs import replace

from events import schema as ev_
from oms.state import tombstones
from oms.state.model import Commission, Fill, Order, State
from oms.state.money import ZERO, Money, add, exact, rounded
from oms.state.plan import Link, Plan, keys_after

INFERRED = "inferred:"  # the key of an order's inferred fill is INFERRED + its client order id
_NONE: Money = {}


def later(exec_id: str, than: str) -> bool:
    """Whether `exec_id` corrects `than` (same part before the last "."; a later part after it)."""
    a, b = exec_id.rpartition(".")[2], than.rpartition(".")[2]
    return (len(a), a) > (len(b), b) if a.isdigit() and b.isdigit() else a > b


def base_of(exec_id: str) -> str:
    """A fill's key in `State.fills` and in its positions' histories: the execId before its last "."
    (a correction's execId shares it)."""
    return exec_id.rpartition(".")[0] or exec_id


class FillChange(Struct, frozen=True, gc=False):
    """One fill changed under `base`: from `before` (None: new) to `after` (None: removed), with its
    order's executed totals after it (quantity, value, the inferred part); summed again over the order's
    fills when it replaced one."""

    base: str
    before: Fill | None
    after: Fill | None
    qty: Decimal
    value: Decimal
    inferred: Decimal


class Executed(Struct, frozen=True, gc=False):
    """What an execution did to fills, in order: its own fill (new, or replacing the one it corrects),
    then the order's inferred fill shrunk or removed; with how the order's commission and IB's realized
    P&L moved."""

    changes: tuple[FillChange, ...]
    commission: Money
    broker: Money
    account: str  # whose IB realized P&L `broker` is: the execution's account


def from_execution(plan: Plan, ev: ev_.ExecutionReported, link: Link) -> Executed | None:
    """The fill `ev` makes (new, or replacing the fill it corrects), with its commission if the report
    came first; reports waiting for executions it supersedes are dropped. A real execution for what was
    inferred replaces the inferred fill, never adds to it. None for an execution seen before, or one a
    correction superseded (a report waiting for it is moot). For an order the state does not know
    (`link.old` None), IB repeating a retired order's execution raises `tombstones.Repeated` (the step
    changes nothing), and anything else for a retired order `tombstones.RetiredOrder`."""
    w = plan.w
    base = base_of(ev.exec_id)
    if link.old is None and tombstones.repeated_execution(plan.state, ev, base):
        raise tombstones.Repeated(ev.exec_id)
    prev = plan.state.fills.get(base)
    if prev is not None and not later(ev.exec_id, prev.exec_id):
        w["pending_commissions", ev.exec_id] = None
        return None
    seq = plan.seq
    report = _waiting_report(plan, ev.exec_id, base) if plan.state.pending_commissions else None
    money = None if report is None else _money_of(report)  # its commission report came first
    order, side = link.order, link.side
    assert side is not None  # a link made by an execution
    fill = Fill(
        exec_id=ev.exec_id,
        client_order_id=order.client_order_id,
        strategy_id=order.strategy_id,
        account=ev.account,
        position_key=link.key,
        contract=link.contract,
        side=side,
        shares=ev.shares,
        price=exact(ev.price),
        time_ns=ev.time_ns,
        seq=prev.seq if prev is not None else seq,
        ts=prev.ts if prev is not None else plan.ts,
        updated_seq=seq,
        corrects=prev.exec_id if prev is not None else "",
    )
    if money is not None:
        w["pending_commissions", ev.exec_id] = None
        fill = replace(fill, commission=money[0], broker_realized_pnl=money[1])
    w["fills", base] = fill
    if prev is None:
        qty = order.filled + order.overfill + fill.shares
        value = order.fill_value + fill.shares * fill.price
        own = FillChange(base, None, fill, qty, value, order.inferred)
        commission, broker = fill.commission, fill.broker_realized_pnl
    else:
        own = FillChange(base, prev, fill, *order_totals(plan, order.client_order_id))
        commission = (
            add(fill.commission, prev.commission, -1) if fill.commission or prev.commission else _NONE
        )
        broker = fill.broker_realized_pnl
        if prev.broker_realized_pnl:
            broker = add(broker, prev.broker_realized_pnl, -1)
    shrunk = (
        inferred(plan, order, link.order_key, own.qty, own.value, own.inferred) if order.inferred else None
    )
    return Executed((own,) if shrunk is None else (own, shrunk), commission, broker, ev.account)


def _waiting_report(plan: Plan, exec_id: str, base: str) -> Commission | None:
    """The commission report waiting for execution `exec_id` (it came first), if any; reports waiting
    for the executions it corrects (under `base`) are dropped: they are never joined."""
    w = plan.w
    for key in [
        k for k in keys_after(plan, "pending_commissions") if base_of(k) == base and later(exec_id, k)
    ]:
        w["pending_commissions", key] = None
    report: Commission | None = w.get(
        ("pending_commissions", exec_id), plan.state.pending_commissions.get(exec_id)
    )
    return report


def commission(plan: Plan, ev: ev_.CommissionReported) -> tuple[Fill, Money, Money] | None:
    """Joined to its execution by execId, whichever comes first; a re-sent report replaces the first; a
    report for an execution a correction replaced is dropped. Returns the fill with its commission, and
    how its commission and IB's realized P&L moved; None when no fill changed."""
    state = plan.state
    base = base_of(ev.exec_id)
    fill = plan.w.get(("fills", base), state.fills.get(base))
    report = Commission(
        exec_id=ev.exec_id,
        commission=exact(ev.commission),
        currency=ev.currency,
        realized_pnl=exact(ev.realized_pnl) if ev.realized_pnl is not None else None,
    )
    if fill is None or fill.exec_id != ev.exec_id:
        if fill is None and tombstones.retired(state.history, "b", base):
            _changes_retired(state, ev, report)
            return None  # a retired fill's report, repeated after a reconnect
        if fill is None and tombstones.retired(state.history, "n", base):
            raise tombstones.RetiredOrder(
                f"commission for {ev.exec_id}, a fill retired to history without one: not applied"
            )
        if fill is None or later(ev.exec_id, fill.exec_id):  # its execution has not come yet
            plan.w["pending_commissions", ev.exec_id] = report
        return None  # otherwise it is for an execution a correction replaced
    commission, broker = _money_of(report)
    new = replace(fill, commission=commission, broker_realized_pnl=broker, updated_seq=plan.seq)
    if new.commission == fill.commission and new.broker_realized_pnl == fill.broker_realized_pnl:
        return None
    plan.w["fills", base] = new
    return (
        new,
        add(new.commission, fill.commission, -1),
        add(new.broker_realized_pnl, fill.broker_realized_pnl, -1),
    )


def _changes_retired(state: State, ev: ev_.CommissionReported, report: Commission) -> None:
    """A retired fill's report: the same report again changes nothing, and nor does one for an execution
    its correction superseded; another amount would change a retired order's money, which is refused as
    `RetiredOrder` like any other change to it."""
    past = state.history
    if not tombstones.retired(past, "e", ev.exec_id):
        return  # for an execution a correction replaced before the fill retired
    if not tombstones.retired(past, "m", tombstones.commission_ident(ev.exec_id, *_money_of(report))):
        raise tombstones.RetiredOrder(
            f"commission for {ev.exec_id} ({report.commission} {report.currency}) differs from the one its "
            "fill retired with: not applied"
        )


def _money_of(report: Commission) -> tuple[Money, Money]:
    """A commission report's commission and IB's realized P&L, as a fill holds them."""
    realized = report.realized_pnl
    return (
        {report.currency: report.commission} if report.commission else {},
        {report.currency: realized} if realized else {},
    )


def order_totals(plan: Plan, coid: str) -> tuple[Decimal, Decimal, Decimal]:
    """An order's executed quantity, value and inferred part, summed over its fills as this step leaves
    them (after a fill was replaced: a correction, an inferred fill resized or removed)."""
    qty = value = inferred = ZERO
    w, fills = plan.w, plan.state.fills
    for key in keys_after(plan, "fills"):  # rare: corrections and inferred fills only
        f = w.get(("fills", key), fills.get(key))
        if f is not None and f.client_order_id == coid:
            qty += f.shares
            value += f.shares * f.price
            if f.inferred:
                inferred += f.shares
    return qty, value, inferred


def inferred(plan: Plan, order: Order, pkey: str | None, qty: Decimal, value: Decimal, inferred_qty: Decimal
             ) -> FillChange | None:  # fmt: skip
    """What IB reports filled beyond the order's executions, as one inferred fill (deterministic id,
    flagged, keyed `pkey`), priced so the order's average matches IB's; a real execution arriving later
    shrinks it or removes it, never adds to it. `qty`, `value` and `inferred_qty` are the order's
    executed totals before it. None when nothing changes."""
    key = INFERRED + order.client_order_id
    w = plan.w
    current = w.get(("fills", key), plan.state.fills.get(key))
    want = order.broker_filled - (qty - inferred_qty)
    if want <= 0:
        if current is None:
            return None
        w["fills", key] = None
        return FillChange(key, current, None, *order_totals(plan, order.client_order_id))
    price = _inferred_price(order, current, want, qty, value)
    if current is not None and (current.shares, current.price) == (want, price):
        return None
    if pkey is None or not order.side:
        return None  # nothing to key it by: IB has not named the instrument or side
    fill = Fill(
        exec_id=key,
        client_order_id=order.client_order_id,
        strategy_id=order.strategy_id,
        account=order.account,
        position_key=pkey,
        contract=order.contract,
        side=order.side,
        shares=want,
        price=price,
        seq=current.seq if current is not None else plan.seq,
        ts=current.ts if current is not None else plan.ts,
        updated_seq=plan.seq,
        inferred=True,
    )
    w["fills", key] = fill
    if current is None:
        return FillChange(key, None, fill, qty + want, value + want * price, inferred_qty + want)
    return FillChange(key, current, fill, *order_totals(plan, order.client_order_id))


def _inferred_price(
    order: Order, current: Fill | None, want: Decimal, qty: Decimal, value: Decimal
) -> Decimal:
    """So that the order's average over real and inferred fills (`qty` for `value` so far) is IB's."""
    broker_avg = order.broker_avg_price
    if not broker_avg:
        avg = rounded(value / qty) if qty else ZERO
        return avg or exact(order.limit_price or 0.0)
    real_value = value - (current.shares * current.price if current is not None else ZERO)
    return rounded((broker_avg * order.broker_filled - real_value) / want)
