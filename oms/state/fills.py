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
from events.schema import Contract
from oms.state import history
from oms.state.model import Commission, Fill, FillSide, Order, State
from oms.state.money import ZERO, Money, add, exact, rounded
from oms.state.plan import Plan, keys_after

INFERRED = "inferred:"  # the key of an order's inferred fill is INFERRED + its client order id
_NONE: Money = {}


def later(exec_id: str, than: str) -> bool:
    """Whether `exec_id` corrects `than` (same part before the last "."; a later part after it)."""
    a, b = exec_id.rpartition(".")[2], than.rpartition(".")[2]
    return (len(a), a) > (len(b), b) if a.isdigit() and b.isdigit() else a > b


def base_of(exec_id: str) -> str:
    """A fill's key in `State.fills` and in its positions' histories: the execId before its last "."."""
    return exec_id.rpartition(".")[0] or exec_id


def of_retired(state: State, ev: ev_.ExecutionReported) -> bool:
    """True for IB repeating a retired order's execution (after a reconnect): nothing to do. Anything
    else for a retired order, such as a correction of one of its fills, raises `RetiredOrder`."""
    past = state.history
    if history.retired(past, "e", ev.exec_id):
        return True
    base = base_of(ev.exec_id)
    if (
        history.retired(past, "b", base)
        or history.retired(past, "n", base)
        or history.retired_ids(state, ev.order_id, ev.perm_id, ev.client_id, ev.order_ref)
    ):
        raise history.RetiredOrder(
            f"execution {ev.exec_id} changes a fill of an order already retired to history: not applied"
        )
    return False


class Executed(Struct, frozen=True, gc=False):
    """What an execution did to its fill: the fill's key, the fill it replaced (a correction) and the
    fill now, with how the order's commission and IB's realized P&L moved."""

    base: str
    before: Fill | None
    fill: Fill
    commission: Money
    broker: Money


def execution(plan: Plan, ev: ev_.ExecutionReported, order: Order, contract: Contract, pkey: str,
              side: FillSide) -> Executed | None:  # fmt: skip
    """The fill `ev` makes (new, or replacing the fill it corrects), with its commission if the report
    came first; reports waiting for executions it supersedes are dropped. None for an execution seen
    before, or one a correction superseded (a report waiting for it is moot)."""
    w = plan.w
    base = base_of(ev.exec_id)
    prev = plan.state.fills.get(base)
    if prev is not None and not later(ev.exec_id, prev.exec_id):
        w["pending_commissions", ev.exec_id] = None
        return None
    seq = plan.seq
    waiting = plan.state.pending_commissions
    if waiting:
        for key in [
            k for k in keys_after(plan, "pending_commissions") if base_of(k) == base and later(ev.exec_id, k)
        ]:
            w["pending_commissions", key] = None  # reports for the executions this one corrects: never joined
    fill = Fill(
        exec_id=ev.exec_id,
        client_order_id=order.client_order_id,
        strategy_id=order.strategy_id,
        account=ev.account,
        position_key=pkey,
        contract=contract,
        side=side,
        shares=ev.shares,
        price=exact(ev.price),
        time_ns=ev.time_ns,
        seq=prev.seq if prev is not None else seq,
        ts=prev.ts if prev is not None else plan.ts,
        updated_seq=seq,
        corrects=prev.exec_id if prev is not None else "",
    )
    report = w.get(("pending_commissions", ev.exec_id), waiting.get(ev.exec_id)) if waiting else None
    if report is not None:  # its commission report came first
        w["pending_commissions", ev.exec_id] = None
        fill = _with_commission(fill, report)
    w["fills", base] = fill
    if prev is None:
        return Executed(base, None, fill, fill.commission, fill.broker_realized_pnl)
    commission = add(fill.commission, prev.commission, -1) if fill.commission or prev.commission else _NONE
    broker = fill.broker_realized_pnl
    if prev.broker_realized_pnl:
        broker = add(broker, prev.broker_realized_pnl, -1)
    return Executed(base, prev, fill, commission, broker)


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
        if fill is None and history.retired(state.history, "b", base):
            _changes_retired(state, ev, report)
            return None  # a retired fill's report, repeated after a reconnect
        if fill is None and history.retired(state.history, "n", base):
            raise history.RetiredOrder(
                f"commission for {ev.exec_id}, a fill retired to history without one: not applied"
            )
        if fill is None or later(ev.exec_id, fill.exec_id):  # its execution has not come yet
            plan.w["pending_commissions", ev.exec_id] = report
        return None  # otherwise it is for an execution a correction replaced
    new = _with_commission(fill, report, plan.seq)
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
    if not history.retired(past, "e", ev.exec_id):
        return  # for an execution a correction replaced before the fill retired
    with_it = _with_commission(_NO_FILL, report)
    if not history.retired(
        past, "m", history.commission_ident(ev.exec_id, with_it.commission, with_it.broker_realized_pnl)
    ):
        raise history.RetiredOrder(
            f"commission for {ev.exec_id} ({report.commission} {report.currency}) differs from the one its "
            "fill retired with: not applied"
        )


_NO_FILL = Fill(
    exec_id="", client_order_id="", strategy_id="", account="", position_key="",
    contract=Contract(symbol=""), side="BUY", shares=ZERO, price=ZERO,
)  # fmt: skip


def _with_commission(fill: Fill, report: Commission, updated_seq: int | None = None) -> Fill:
    """`fill` with the report's commission and realized P&L (and `updated_seq` when given)."""
    realized = report.realized_pnl
    return replace(
        fill,
        commission={report.currency: report.commission} if report.commission else {},
        broker_realized_pnl={report.currency: realized} if realized else {},
        updated_seq=fill.updated_seq if updated_seq is None else updated_seq,
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


def inferred(plan: Plan, order: Order, pkey: str | None) -> tuple[str, Fill | None, Fill | None] | None:
    """What IB reports filled beyond the order's executions, as one inferred fill (deterministic id,
    flagged, keyed `pkey`), priced so the order's average matches IB's; a real execution arriving later
    shrinks it or removes it, never adds to it. Returns (key, the fill before, the fill after; None when
    removed), or None when nothing changes."""
    key = INFERRED + order.client_order_id
    w = plan.w
    current = w.get(("fills", key), plan.state.fills.get(key))
    real = order.filled + order.overfill - order.inferred
    want = order.broker_filled - real
    if want <= 0:
        if current is None:
            return None
        w["fills", key] = None
        return key, current, None
    price = _inferred_price(order, current, want)
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
    return key, current, fill


def _inferred_price(order: Order, current: Fill | None, want: Decimal) -> Decimal:
    """So that the order's average over real and inferred fills is IB's average."""
    broker_avg = order.broker_avg_price
    if not broker_avg:
        return order.avg_fill_price or exact(order.limit_price or 0.0)
    real_value = order.fill_value - (current.shares * current.price if current is not None else ZERO)
    return rounded((broker_avg * order.broker_filled - real_value) / want)
