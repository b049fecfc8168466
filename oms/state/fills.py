"""Executions and commissions: fills deduped by execId, corrections (a later execId with the same part
before the last ".") replacing what they correct, commissions joined to executions whichever comes
first, and inferred fills for what IB reports filled but no execution explains. Fills are the only
source of filled quantities and positions.
"""

from __future__ import annotations

from decimal import Decimal

from msgspec.structs import replace

from events import schema as ev_
from oms.state import book, history, links, orders, positions
from oms.state.model import Commission, Fill, Order, State
from oms.state.money import ZERO, add, exact, rounded
from oms.state.tx import Tx

INFERRED = "inferred:"  # the key of an order's inferred fill is INFERRED + its client order id


def _later(exec_id: str, than: str) -> bool:
    """Whether `exec_id` corrects `than` (same part before the last "."; a later part after it)."""
    a, b = exec_id.rpartition(".")[2], than.rpartition(".")[2]
    return (len(a), a) > (len(b), b) if a.isdigit() and b.isdigit() else a > b


def _base(exec_id: str) -> str:
    return exec_id.rpartition(".")[0] or exec_id


def on_execution(state: State, tx: Tx, ev: ev_.ExecutionReported, seq: int, ts: int) -> None:
    """A fill: deduped by execId; a later execId with the same part before the last "." replaces it."""
    old = links.known(state, ev.order_id, ev.perm_id, ev.client_id, ev.order_ref)
    if old is None and _of_retired(state, ev):
        return
    side = orders.ib_side(ev.side)
    if old is None:
        order = orders.external(
            (ev.client_id, ev.order_id, ev.perm_id), ev.account, ev.contract, side, ZERO, seq, ts
        )
    else:
        order = links.placed(old, ev.account, side)
    coid = order.client_order_id
    order = links.bind(state, tx, order, ev.order_id, ev.perm_id, ev.client_id)
    order = learn(state, tx, order, ev.contract, old is None)
    base = _base(ev.exec_id)
    prev = state.fills.get(base)
    if prev is not None and not _later(ev.exec_id, prev.exec_id):
        tx.pop(state.pending_commissions, ev.exec_id)  # a replay, or superseded: its report is moot
        book.put(state, tx, old, order)
        return
    _drop_superseded(state, tx, base, ev.exec_id)
    contract = links.instrument(state, tx, ev.contract)
    pkey = positions.position_key(ev.account, contract, state.con_ids)
    fill = Fill(
        exec_id=ev.exec_id,
        client_order_id=coid,
        strategy_id=order.strategy_id,
        account=ev.account,
        position_key=pkey,
        contract=contract,
        side=side,
        shares=ev.shares,
        price=exact(ev.price),
        time_ns=ev.time_ns,
        seq=prev.seq if prev is not None else seq,
        ts=prev.ts if prev is not None else ts,
        updated_seq=seq,
        corrects=prev.exec_id if prev is not None else "",
    )
    pending = tx.pop(state.pending_commissions, ev.exec_id)
    if pending is not None:  # its commission report came first
        fill = _with_commission(fill, pending)
    tx.put(state.fills, base, fill)
    commission = add(fill.commission, prev.commission if prev is not None else {}, -1)
    if commission:
        order = replace(order, commission=add(order.commission, commission))
    _record(state, tx, old, order, base, fill, prev is not None, seq, ts)
    broker = add(fill.broker_realized_pnl, prev.broker_realized_pnl if prev is not None else {}, -1)
    if broker:
        book.add_to_account(state, tx, fill.account, seq, {}, {}, broker)
    order = state.orders[coid]
    if order.inferred:  # a real execution for what was inferred: it replaces, never adds
        infer(state, tx, order, seq, ts)


def _of_retired(state: State, ev: ev_.ExecutionReported) -> bool:
    """True for IB repeating a retired order's execution (after a reconnect): nothing to do. Anything
    else for a retired order, such as a correction of one of its fills, raises `RetiredOrder`."""
    past = state.history
    if history.retired(past, "e", ev.exec_id):
        return True
    base = _base(ev.exec_id)
    if (
        history.retired(past, "b", base)
        or history.retired(past, "n", base)
        or history.retired_ids(state, ev.order_id, ev.perm_id, ev.client_id, ev.order_ref)
    ):
        raise history.RetiredOrder(
            f"execution {ev.exec_id} changes a fill of an order already retired to history: not applied"
        )
    return False


def _record(state: State, tx: Tx, old: Order | None, order: Order, base: str, fill: Fill, replaces: bool,
            seq: int, ts: int) -> None:  # fmt: skip
    """A new fill, or one replacing an earlier fill of the same key (a correction, a resized inferred
    fill), into its order and positions. A new fill and the order's move out of the working orders (when
    it completes it) are one input of the position's history."""
    if replaces:
        book.add_fill(state, tx, base, fill, seq, replaces=True)
        book.put(state, tx, old, _executed(state, order, None, seq, ts))
    else:
        book.put(state, tx, old, _executed(state, order, fill, seq, ts), deferred=True)
        book.add_fill(state, tx, base, fill, seq, replaces=False)


def _drop_superseded(state: State, tx: Tx, base: str, exec_id: str) -> None:
    """Commission reports waiting for executions this one corrects will never be joined: drop them."""
    for waiting in [k for k in state.pending_commissions if _base(k) == base and _later(exec_id, k)]:
        tx.pop(state.pending_commissions, waiting)


def _with_commission(fill: Fill, report: Commission) -> Fill:
    realized = report.realized_pnl
    return replace(
        fill,
        commission={report.currency: report.commission} if report.commission else {},
        broker_realized_pnl={report.currency: realized} if realized else {},
    )


def _executed(state: State, order: Order, new: Fill | None, seq: int, ts: int) -> Order:
    """The order's executed quantity and average: one `new` fill added to what it had, or, after a fill
    was replaced (a correction, an inferred fill resized), recomputed from all its fills."""
    if new is not None:
        qty = order.filled + order.overfill + new.shares
        value = order.fill_value + new.shares * new.price
        return orders.executed(
            order, qty, value, order.inferred + (new.shares if new.inferred else ZERO), seq, ts
        )
    qty = value = inferred = ZERO
    coid = order.client_order_id
    for f in state.fills.values():  # rare: corrections and inferred fills only
        if f.client_order_id == coid:
            qty += f.shares
            value += f.shares * f.price
            if f.inferred:
                inferred += f.shares
    return orders.executed(order, qty, value, inferred, seq, ts, replaced=True)


def on_commission(state: State, tx: Tx, ev: ev_.CommissionReported, seq: int, ts: int) -> None:
    """Joined to its execution by execId, whichever comes first; a re-sent report replaces the first;
    a report for an execution a correction replaced is dropped."""
    base = _base(ev.exec_id)
    fill = state.fills.get(base)
    report = Commission(
        exec_id=ev.exec_id,
        commission=exact(ev.commission),
        currency=ev.currency,
        realized_pnl=exact(ev.realized_pnl) if ev.realized_pnl is not None else None,
    )
    if fill is None or fill.exec_id != ev.exec_id:
        if fill is None and history.retired(state.history, "b", base):
            return  # a retired fill's report, repeated after a reconnect
        if fill is None and history.retired(state.history, "n", base):
            raise history.RetiredOrder(
                f"commission for {ev.exec_id}, a fill retired to history without one: not applied"
            )
        if fill is None or _later(ev.exec_id, fill.exec_id):  # its execution has not come yet
            tx.put(state.pending_commissions, ev.exec_id, report)
        return  # otherwise it is for an execution a correction replaced
    new = replace(_with_commission(fill, report), updated_seq=seq)
    if (new.commission, new.broker_realized_pnl) == (fill.commission, fill.broker_realized_pnl):
        return
    tx.put(state.fills, base, new)
    delta = add(new.commission, fill.commission, -1)
    if delta:
        book.commission_changed(state, tx, new, delta, seq)
    broker = add(new.broker_realized_pnl, fill.broker_realized_pnl, -1)
    if broker:
        book.add_to_account(state, tx, fill.account, seq, {}, {}, broker)


def learn(state: State, tx: Tx, order: Order, contract: ev_.Contract, new: bool) -> Order:
    """IB named the instrument of `order`: join the order to its conId (see `book.name_instrument`)."""
    con_id = contract.con_id
    if con_id and con_id == order.contract.con_id and not new:
        return order  # already joined
    if not order.contract.symbol:  # an external order first seen by its status
        order = replace(order, contract=contract)
    if not con_id:
        return order
    book.name_instrument(state, tx, contract, con_id)
    if not order.contract.con_id:
        book.name_instrument(state, tx, order.contract, con_id)
        order = replace(order, contract=replace(order.contract, con_id=con_id))
    return order


def infer(state: State, tx: Tx, order: Order, seq: int, ts: int) -> None:
    """After a reconciliation: what IB reports filled beyond the order's executions becomes one inferred
    fill (deterministic id, flagged), priced so the order's average matches IB's; a real execution
    arriving later shrinks it or removes it, never adds to it."""
    key = INFERRED + order.client_order_id
    current = state.fills.get(key)
    real = order.filled + order.overfill - order.inferred
    want = order.broker_filled - real
    if want <= 0:
        if current is not None:
            tx.pop(state.fills, key)
            _record(state, tx, order, order, key, current, True, seq, ts)
        return
    price = _inferred_price(order, current, want)
    if current is not None and (current.shares, current.price) == (want, price):
        return
    pkey = book.key_of(state, order)
    if pkey is None or not order.side:
        return  # nothing to key it by: IB has not named the instrument or side
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
        seq=current.seq if current is not None else seq,
        ts=current.ts if current is not None else ts,
        updated_seq=seq,
        inferred=True,
    )
    tx.put(state.fills, key, fill)
    _record(state, tx, order, order, key, fill, current is not None, seq, ts)


def _inferred_price(order: Order, current: Fill | None, want: Decimal) -> Decimal:
    """So that the order's average over real and inferred fills is IB's average."""
    broker_avg = order.broker_avg_price
    if not broker_avg:
        return order.avg_fill_price or exact(order.limit_price or 0.0)
    real_value = order.fill_value - (current.shares * current.price if current is not None else ZERO)
    return rounded((broker_avg * order.broker_filled - real_value) / want)
