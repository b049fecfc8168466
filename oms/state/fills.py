"""Executions and commissions: fills deduped by execId, corrections (a later execId with the same part
before the last ".") replacing what they correct, and commissions joined to executions whichever comes
first. Fills are the only source of filled quantities and positions.
"""

from __future__ import annotations

from collections.abc import Iterable
from sys import intern

from msgspec.structs import replace

from events import schema as ev_
from events.schema import Contract
from oms.state import bookkeeping, orders, positions
from oms.state.bookkeeping import Changes
from oms.state.model import Commission, Fill, State


def _later(exec_id: str, than: str) -> bool:
    """Whether `exec_id` corrects `than` (same part before the last "."; a later part after it)."""
    a, b = exec_id.rpartition(".")[2], than.rpartition(".")[2]
    return (len(a), a) > (len(b), b) if a.isdigit() and b.isdigit() else a > b


def on_execution(state: State, ev: ev_.ExecutionReported, seq: int, ts: int, changes: Changes) -> None:
    """A fill: deduped by execId; a later execId with the same part before the last "." replaces it."""
    coid = bookkeeping.resolve(state, ev.order_id, ev.perm_id, ev.client_id, ev.order_ref)
    if coid is None:
        old = None
        coid = orders.external_id(ev.client_id, ev.order_id, ev.perm_id)
        order = orders.external(coid, ev.account, ev.contract, orders.ib_side(ev.side), 0.0, seq, ts)
    else:
        order = old = state.orders[coid]
        if not order.account:  # first seen by its status
            order = bookkeeping.placed(order, ev.account, orders.ib_side(ev.side))
    order = bookkeeping.bind(state, order, ev.order_id, ev.perm_id, ev.client_id)
    order = bookkeeping.learn(state, order, ev.contract, seq, changes, old is None)
    base = ev.exec_id.rpartition(".")[0] or ev.exec_id
    prev = state.fills.get(base)
    if prev is not None and not _later(ev.exec_id, prev.exec_id):
        bookkeeping.put(state, old, order, seq, changes)  # a duplicate or an already corrected execution
        return
    pkey = f"{ev.account}|{positions.instrument_key(ev.contract, state.con_ids)}"
    pending = state.pending_commissions.pop(ev.exec_id, None)
    fill = Fill(  # at most 15 arguments: CPython 3.11 passes a longer call through a dict, 4x slower
        exec_id=ev.exec_id,
        client_order_id=coid,
        strategy_id=order.strategy_id,
        account=order.account if order.account == ev.account else ev.account,
        position_key=intern(pkey),  # one string per position, not one per fill
        contract=_instrument(state, ev.contract),
        side=orders.ib_side(ev.side),
        shares=ev.shares,
        price=ev.price,
        time_ns=ev.time_ns,
        seq=seq,
        ts=ts,
        corrects=prev.exec_id if prev is not None else "",
    )
    if pending is not None:  # its commission report came first
        fill = replace(
            fill,
            commission=pending.commission,
            commission_currency=pending.currency,
            realized_pnl=pending.realized_pnl,
        )
    state.fills[base] = fill
    done = order.filled + order.overfill
    if prev is None:
        qty = done + ev.shares
        avg = (order.avg_fill_price * done + ev.price * ev.shares) / qty if qty else 0.0
    else:
        qty, avg = _executed_total(state.fills.values(), coid)
    commission = (fill.commission or 0.0) - (prev.commission or 0.0 if prev is not None else 0.0)
    order = orders.executed(order, qty, avg, seq, ts)
    if commission:
        order = replace(order, commission=order.commission + commission)
    realized_before = _realized(state, pkey)
    bookkeeping.put(state, old, order, seq, changes, fill, prev)
    broker_realized = (fill.realized_pnl or 0.0) - ((prev.realized_pnl or 0.0) if prev is not None else 0.0)
    realized = _realized(state, pkey) - realized_before
    bookkeeping.add_amounts(state, ev.account, seq, changes, commission, realized, broker_realized)


def _instrument(state: State, contract: Contract) -> Contract:
    """One shared Contract per conId (the first IB gave): fills hold it instead of one copy each."""
    if not contract.con_id:
        return contract
    return state.instruments.setdefault(contract.con_id, contract)


def _realized(state: State, pkey: str) -> float:
    pos = state.positions.get(pkey)
    return pos.realized_pnl if pos is not None else 0.0


def _executed_total(fills: Iterable[Fill], coid: str) -> tuple[float, float]:
    qty = notional = 0.0
    for f in fills:
        if f.client_order_id == coid:
            qty += f.shares
            notional += f.shares * f.price
    return qty, (notional / qty if qty else 0.0)


def on_commission(state: State, ev: ev_.CommissionReported, seq: int, ts: int, changes: Changes) -> None:
    """Joined to its execution by execId, whichever comes first; a re-sent report replaces the first."""
    base = ev.exec_id.rpartition(".")[0] or ev.exec_id
    fill = state.fills.get(base)
    if fill is None or fill.exec_id != ev.exec_id:
        if fill is None or _later(ev.exec_id, fill.exec_id):  # its execution has not come yet
            state.pending_commissions[ev.exec_id] = Commission(
                exec_id=ev.exec_id,
                commission=ev.commission,
                currency=intern(ev.currency),  # one string per currency, not one per fill
                realized_pnl=ev.realized_pnl,
            )
        return  # otherwise it is for an execution a correction replaced
    if (fill.commission, fill.realized_pnl, fill.commission_currency) == (
        ev.commission,
        ev.realized_pnl,
        ev.currency,
    ):
        return
    delta = ev.commission - (fill.commission or 0.0)
    broker_realized = (ev.realized_pnl or 0.0) - (fill.realized_pnl or 0.0)
    state.fills[base] = replace(
        fill, commission=ev.commission, commission_currency=intern(ev.currency), realized_pnl=ev.realized_pnl
    )
    if delta:
        order = state.orders[fill.client_order_id]
        new = replace(order, commission=order.commission + delta, updated_seq=seq, updated_ts=ts)
        bookkeeping.put(state, order, new, seq, changes)
    bookkeeping.add_amounts(state, fill.account, seq, changes, delta, 0.0, broker_realized)
