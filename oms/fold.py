"""The fold: one envelope at a time, the state every other part of the service reads.

Ownership rule: pure at the entity level, owned accumulator at the container level. `step` may update
the dicts inside the `State` it is given and returns that same object: the caller hands over the old
state. Every entity (Order, Position, Account, Fill) is a frozen Struct that is replaced, never mutated,
so a reference to one stays valid forever. Callers that need to keep a version call `copy_state`
(copies the containers, shares the entities). Why: copying every dict per event would cost far more
than the fold itself, and the service, the replay tool and the tests each hold a state in one place.

No I/O, no clock (time is `env.ts`), no randomness, no logging. Dispatch is a dict lookup on the event's
type. Joins of IB's identifiers to ours are in `_resolve`; see docs/state.md for every rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from msgspec.structs import replace

from events import schema as ev_
from events.schema import Contract, Envelope
from oms import accounts, orders, positions
from oms.orders import EPS
from oms.state import (
    TERMINAL,
    WORKING,
    BrokerPosition,
    Changed,
    Commission,
    Fill,
    Mismatch,
    Order,
    Position,
    Removed,
    State,
    initial_state,
)

Changes = dict[tuple[str, str], Changed]
_NO_CONTRACT = Contract(symbol="")


def step(state: State, env: Envelope) -> tuple[State, tuple[Changed, ...]]:
    """Apply one event; returns the state (the same object, updated) and the entities it changed."""
    changes: Changes = {}
    _HANDLERS[type(env.event)](state, env.event, env.seq, env.ts, changes)
    state.seq = env.seq
    state.ts = env.ts
    return state, tuple(changes.values())


def apply(state: State, env: Envelope) -> State:
    return step(state, env)[0]


def fold(envs: Iterable[Envelope], state: State | None = None) -> State:
    """Fold a log (or its tail after a snapshot); `state` is taken over, not copied."""
    if state is None:
        state = initial_state()
    handlers = _HANDLERS
    changes: Changes = {}  # nobody reads them here: one dict, cleared
    for env in envs:
        handlers[type(env.event)](state, env.event, env.seq, env.ts, changes)
        changes.clear()
        state.seq = env.seq
        state.ts = env.ts
    return state


def copy_state(state: State) -> State:
    """A version the caller may keep: new containers, shared (frozen) entities."""
    return replace(
        state,
        orders=dict(state.orders),
        positions=dict(state.positions),
        strategy_positions=dict(state.strategy_positions),
        accounts=dict(state.accounts),
        fills=dict(state.fills),
        pending_commissions=dict(state.pending_commissions),
        order_ids=dict(state.order_ids),
        perm_ids=dict(state.perm_ids),
        con_ids=dict(state.con_ids),
        broker_positions=dict(state.broker_positions),
        mismatches=dict(state.mismatches),
    )


# ---------------------------------------------------------------------------------------------------
# Joins: IB's identifiers to our orders, and IB's conIds to the symbols we asked for.


def _resolve(state: State, order_id: int, perm_id: int, client_id: int, order_ref: str) -> str | None:
    """permId first (stable across sessions), then our orderRef, then this session's (clientId, orderId)."""
    if perm_id:
        coid = state.perm_ids.get(perm_id)
        if coid is not None:
            return coid
    if order_ref and order_ref in state.orders:
        return order_ref
    if order_id > 0:
        return state.order_ids.get(f"{client_id}:{order_id}")
    return None


def _bind(state: State, order: Order, order_id: int, perm_id: int, client_id: int) -> Order:
    """Index IB's ids for `order`; one client order may acquire several permIds."""
    coid = order.client_order_id
    if order_id > 0:
        state.order_ids.setdefault(f"{client_id}:{order_id}", coid)
        if not order.order_id:
            order = replace(order, order_id=order_id, client_id=client_id)
    if perm_id and perm_id not in order.perm_ids:
        state.perm_ids[perm_id] = coid
        order = replace(order, perm_ids=(*order.perm_ids, perm_id))
    return order


def _learn(state: State, order: Order, contract: Contract, seq: int, changes: Changes, new: bool) -> Order:
    """IB named the instrument of `order`: join the order to its conId (see `_name`)."""
    con_id = contract.con_id
    if con_id and con_id == order.contract.con_id and not new:
        return order  # already joined
    if not order.contract.symbol:  # an external order first seen by its status
        order = replace(order, contract=contract)
    if not con_id:
        return order
    _name(state, contract, con_id, seq, changes)
    if not order.contract.con_id:
        _name(state, order.contract, con_id, seq, changes)
        order = replace(order, contract=replace(order.contract, con_id=con_id))
    return order


def _name(state: State, contract: Contract, con_id: int, seq: int, changes: Changes) -> None:
    """Remember the conId of the symbol `contract` names, moving positions keyed by that symbol to it."""
    sym = positions.symbol_key(contract)
    if state.con_ids.get(sym) != con_id:
        state.con_ids[sym] = con_id
        _moved(positions.migrate(state, sym, con_id, seq), changes)


def _moved(moved: list[Position | Removed], changes: Changes) -> None:
    for change in moved:
        if isinstance(change, Position):
            changes[("s" if change.strategy_id else "p", change.key)] = change
        else:
            changes[("r", change.key)] = change


def _put(
    state: State,
    old: Order | None,
    order: Order,
    seq: int,
    changes: Changes,
    fill: Fill | None = None,
    prev: Fill | None = None,
) -> None:
    """Store `order` and bring its positions (account-wide and its strategy's) up to date: its place
    among the working orders, the fill's quantities (recomputed from all fills after a correction, when
    `prev` is the replaced fill), and the status these give."""
    if order is old and fill is None:
        return
    coid = order.client_order_id
    state.orders[coid] = order
    changes[("o", coid)] = order
    contract = order.contract
    if fill is None and old is not None and old.status == order.status and old.contract is contract:
        return  # nothing a position depends on has changed
    order_key = None
    if contract.con_id:
        order_key = f"{order.account}|{contract.con_id}"
    elif contract.symbol:
        order_key = f"{order.account}|{positions.instrument_key(contract, state.con_ids)}"
    if fill is not None and fill.position_key != order_key:
        _touch(state, fill.position_key, fill.account, fill.contract, order, seq, changes, False, fill, prev)
        fill = None
    if order_key is not None:
        _touch(state, order_key, order.account, contract, order, seq, changes, True, fill, prev)


def _touch(
    state: State,
    key: str,
    account: str,
    contract: Contract,
    order: Order,
    seq: int,
    changes: Changes,
    member: bool,
    fill: Fill | None,
    prev: Fill | None,
) -> None:
    """One position key, account-wide and for the order's strategy: the fill, the order's membership
    among the working orders (when `member`), then the status."""
    working = order.status in WORKING
    reason = "" if working else order.status
    strategy = order.strategy_id
    for table, pkey, strat in (
        (state.positions, key, ""),
        (state.strategy_positions, f"{strategy}|{key}", strategy),
    ):
        pos = before = table.get(pkey)
        if pos is None:
            if fill is None and not working:
                continue
            pos = positions.opened(pkey, account, contract, strat)
        if fill is not None:
            pos = _with_fill(state, pos, fill, prev, strat, seq)
        if member:
            pos = positions.with_order(pos, order.client_order_id, working)
        pos = positions.derive(pos, state.orders, seq, reason)
        if pos is not before:
            table[pkey] = pos
            changes[("s" if strat else "p", pkey)] = pos


def _with_fill(
    state: State, pos: Position, fill: Fill, prev: Fill | None, strategy: str, seq: int
) -> Position:
    if prev is None:
        signed = fill.shares if fill.side == "BUY" else -fill.shares
        return positions.apply_fill(pos, signed, fill.price, positions.multiplier(fill.contract), seq)
    key = fill.position_key
    return positions.rebuilt(
        pos,
        (
            f
            for f in state.fills.values()
            if f.position_key == key and (not strategy or f.strategy_id == strategy)
        ),
        seq,
    )


def _account(state: State, account: str, seq: int, changes: Changes, **amounts: float) -> None:
    old = state.accounts.get(account)
    new = accounts.with_amounts(old, account, seq, **amounts)
    if new is not old:
        state.accounts[account] = new
        changes[("a", account)] = new


# ---------------------------------------------------------------------------------------------------
# Intents.


def _on_requested(state: State, ev: ev_.OrderRequested, seq: int, ts: int, changes: Changes) -> None:
    if ev.client_order_id in state.orders:  # a duplicate id never makes a second order
        return
    order = orders.requested(ev, seq, ts)
    con_id = ev.contract.con_id
    if con_id:
        _name(state, ev.contract, con_id, seq, changes)
    else:
        con_id = state.con_ids.get(positions.symbol_key(ev.contract), 0)
        if con_id:  # IB has already named this symbol
            order = replace(order, contract=replace(ev.contract, con_id=con_id))
    _put(state, None, order, seq, changes)


def _on_cancel(state: State, ev: ev_.CancelRequested, seq: int, ts: int, changes: Changes) -> None:
    order = state.orders.get(ev.client_order_id)
    if order is not None:
        _put(state, order, orders.triggered(order, "cancel_req", seq, ts), seq, changes)


def _on_modify(state: State, ev: ev_.ModifyRequested, seq: int, ts: int, changes: Changes) -> None:
    """Recorded as pending: quantities and prices change only when IB's openOrder shows them."""
    order = state.orders.get(ev.client_order_id)
    if order is not None and order.status not in TERMINAL:
        _put(state, order, replace(order, pending_modify=ev, updated_seq=seq, updated_ts=ts), seq, changes)


def _on_denied(state: State, ev: ev_.OrderDenied, seq: int, ts: int, changes: Changes) -> None:
    """Refused before reaching IB: rejected with the reason, whether or not the request was logged."""
    order = state.orders.get(ev.client_order_id)
    if order is None:
        req = ev.request or ev_.OrderRequested(
            client_order_id=ev.client_order_id,
            strategy_id=ev.strategy_id,
            account="",
            contract=_NO_CONTRACT,
            side="BUY",
            quantity=0.0,
        )
        order = orders.requested(req, seq, ts)
        _put(
            state,
            None,
            replace(order, status="rejected", reason=ev.reason, last_error_message=ev.code),
            seq,
            changes,
        )
        return
    new = orders.triggered(order, "rejected", seq, ts, reason=ev.reason)
    _put(state, order, new, seq, changes)


def _on_sent(state: State, ev: ev_.OrderSent, seq: int, ts: int, changes: Changes) -> None:
    state.client_id = ev.client_id
    order = state.orders.get(ev.client_order_id)
    if order is None:
        return
    state.order_ids[f"{ev.client_id}:{ev.order_id}"] = ev.client_order_id  # this session's binding wins
    if (order.order_id, order.client_id) != (ev.order_id, ev.client_id):
        new = replace(order, order_id=ev.order_id, client_id=ev.client_id, updated_seq=seq, updated_ts=ts)
        _put(state, order, new, seq, changes)


# ---------------------------------------------------------------------------------------------------
# Broker facts.


def _on_status(state: State, ev: ev_.OrderStatusReported, seq: int, ts: int, changes: Changes) -> None:
    coid = _resolve(state, ev.order_id, ev.perm_id, ev.client_id, "")
    if coid is None:
        old = None
        coid = orders.external_id(ev.client_id, ev.order_id, ev.perm_id)
        order = orders.external(coid, "", _NO_CONTRACT, "", 0.0, seq, ts)
    else:
        order = old = state.orders[coid]
    order = _bind(state, order, ev.order_id, ev.perm_id, ev.client_id)
    trigger = orders.status_trigger(ev.status, ev.why_held)
    if trigger:
        order = orders.triggered(order, trigger, seq, ts)
    if order.broker_filled != ev.filled or order.broker_status != ev.status:
        order = replace(
            order, broker_filled=ev.filled, broker_status=ev.status, updated_seq=seq, updated_ts=ts
        )
    _put(state, old, order, seq, changes)


def _on_open_order(state: State, ev: ev_.OpenOrderReported, seq: int, ts: int, changes: Changes) -> None:
    """IB's view of the order; its quantity and prices are what is working, so they acknowledge a modify."""
    coid = _resolve(state, ev.order_id, ev.perm_id, ev.client_id, ev.order_ref)
    side = orders.ib_side(ev.side)
    if coid is None:
        old = None
        coid = orders.external_id(ev.client_id, ev.order_id, ev.perm_id)
        order = orders.external(coid, ev.account, ev.contract, side, ev.quantity, seq, ts)
        order = replace(
            order,
            order_type=ev.order_type,
            limit_price=ev.limit_price,
            stop_price=ev.stop_price,
            tif=ev.tif,
            outside_rth=ev.outside_rth,
        )
    else:
        order = old = state.orders[coid]
        if order.external and not order.account:
            order = replace(order, account=ev.account, side=side, order_type=ev.order_type)
    order = _bind(state, order, ev.order_id, ev.perm_id, ev.client_id)
    order = _learn(state, order, ev.contract, seq, changes, old is None)
    if order.status in TERMINAL:  # a terminal order changes only by executions
        _put(state, old, order, seq, changes)
        return
    if abs(order.quantity - ev.quantity) > EPS:
        order = orders.executed(
            replace(order, quantity=ev.quantity), order.filled + order.overfill, order.avg_fill_price, seq, ts
        )
    if order.limit_price != ev.limit_price or order.stop_price != ev.stop_price:
        order = replace(
            order, limit_price=ev.limit_price, stop_price=ev.stop_price, updated_seq=seq, updated_ts=ts
        )
    want = order.pending_modify
    if want is not None and orders.modify_matches(want, ev.quantity, ev.limit_price, ev.stop_price):
        order = replace(order, pending_modify=None, updated_seq=seq, updated_ts=ts)
    trigger = orders.status_trigger(ev.status)
    if trigger:
        order = orders.triggered(order, trigger, seq, ts)
    _put(state, old, order, seq, changes)


def _later(exec_id: str, than: str) -> bool:
    """Whether `exec_id` corrects `than` (same part before the last "."; a later part after it)."""
    a, b = exec_id.rpartition(".")[2], than.rpartition(".")[2]
    return (len(a), a) > (len(b), b) if a.isdigit() and b.isdigit() else a > b


def _on_execution(state: State, ev: ev_.ExecutionReported, seq: int, ts: int, changes: Changes) -> None:
    """A fill: deduped by execId; a later execId with the same part before the last "." replaces it."""
    coid = _resolve(state, ev.order_id, ev.perm_id, ev.client_id, ev.order_ref)
    if coid is None:
        old = None
        coid = orders.external_id(ev.client_id, ev.order_id, ev.perm_id)
        order = orders.external(coid, ev.account, ev.contract, orders.ib_side(ev.side), 0.0, seq, ts)
    else:
        order = old = state.orders[coid]
    order = _bind(state, order, ev.order_id, ev.perm_id, ev.client_id)
    order = _learn(state, order, ev.contract, seq, changes, old is None)
    base = ev.exec_id.rpartition(".")[0] or ev.exec_id
    prev = state.fills.get(base)
    if prev is not None and not _later(ev.exec_id, prev.exec_id):
        _put(state, old, order, seq, changes)  # a duplicate or an already corrected execution
        return
    pkey = f"{ev.account}|{positions.instrument_key(ev.contract, state.con_ids)}"
    pending = state.pending_commissions.pop(ev.exec_id, None)
    fill = Fill(
        exec_id=ev.exec_id,
        client_order_id=coid,
        strategy_id=order.strategy_id,
        account=ev.account,
        position_key=pkey,
        contract=ev.contract,
        side=orders.ib_side(ev.side),
        shares=ev.shares,
        price=ev.price,
        time_ns=ev.time_ns,
        seq=seq,
        ts=ts,
        corrects=prev.exec_id if prev is not None else "",
        commission=pending.commission if pending is not None else None,
        commission_currency=pending.currency if pending is not None else "",
        realized_pnl=pending.realized_pnl if pending is not None else None,
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
    _put(state, old, order, seq, changes, fill, prev)
    broker_realized = (fill.realized_pnl or 0.0) - ((prev.realized_pnl or 0.0) if prev is not None else 0.0)
    realized = _realized(state, pkey) - realized_before
    _account(
        state,
        ev.account,
        seq,
        changes,
        commission=commission,
        realized=realized,
        broker_realized=broker_realized,
    )


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


def _on_commission(state: State, ev: ev_.CommissionReported, seq: int, ts: int, changes: Changes) -> None:
    """Joined to its execution by execId, whichever comes first; a re-sent report replaces the first."""
    base = ev.exec_id.rpartition(".")[0] or ev.exec_id
    fill = state.fills.get(base)
    if fill is None or fill.exec_id != ev.exec_id:
        if fill is None or _later(ev.exec_id, fill.exec_id):  # its execution has not come yet
            state.pending_commissions[ev.exec_id] = Commission(
                exec_id=ev.exec_id,
                commission=ev.commission,
                currency=ev.currency,
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
        fill, commission=ev.commission, commission_currency=ev.currency, realized_pnl=ev.realized_pnl
    )
    if delta:
        order = state.orders[fill.client_order_id]
        new = replace(order, commission=order.commission + delta, updated_seq=seq, updated_ts=ts)
        _put(state, order, new, seq, changes)
    _account(state, fill.account, seq, changes, commission=delta, broker_realized=broker_realized)


def _on_position(state: State, ev: ev_.PositionReported, seq: int, ts: int, changes: Changes) -> None:
    """Kept beside the folded position as a cross-check; never changes the folded quantity."""
    if ev.contract.con_id:
        _name(state, ev.contract, ev.contract.con_id, seq, changes)
    key = f"{ev.account}|{positions.instrument_key(ev.contract, state.con_ids)}"
    state.broker_positions[key] = BrokerPosition(
        account=ev.account, contract=ev.contract, position=ev.position, avg_cost=ev.avg_cost, seq=seq
    )


def _on_mismatch(state: State, ev: ev_.PositionMismatch, seq: int, ts: int, changes: Changes) -> None:
    key = f"{ev.account}|{positions.instrument_key(ev.contract, state.con_ids)}"
    state.mismatches[key] = Mismatch(
        position_key=key,
        broker_position=ev.broker_position,
        folded_position=ev.folded_position,
        broker_avg_cost=ev.broker_avg_cost,
        seq=seq,
        ts=ts,
    )


def _on_account_value(
    state: State, ev: ev_.AccountValueReported, seq: int, ts: int, changes: Changes
) -> None:
    old = state.accounts.get(ev.account)
    new = accounts.with_value(old, ev, seq)
    if new is not old:
        state.accounts[ev.account] = new
        changes[("a", ev.account)] = new


def _on_error(state: State, ev: ev_.BrokerError, seq: int, ts: int, changes: Changes) -> None:
    """An order error (req_id is this session's orderId) ends an order only for rejection and 202; a
    failed cancel returns it to its state before the cancel; informational codes change nothing."""
    trigger = orders.error_trigger(ev.code, ev.error_class)
    if trigger is None or ev.req_id <= 0:
        return
    coid = state.order_ids.get(f"{state.client_id}:{ev.req_id}")
    if coid is None:
        return
    order = state.orders[coid]
    new = orders.triggered(order, trigger, seq, ts, ev.message) if trigger else order
    new = replace(new, last_error_code=ev.code, last_error_message=ev.message, updated_seq=seq, updated_ts=ts)
    _put(state, order, new, seq, changes)


def _on_connection(state: State, ev: ev_.ConnectionChanged, seq: int, ts: int, changes: Changes) -> None:
    state.connection = ev.state
    if ev.client_id:
        state.client_id = ev.client_id


def _on_kill_switch(state: State, ev: ev_.KillSwitchChanged, seq: int, ts: int, changes: Changes) -> None:
    state.kill_switch = ev.engaged
    state.kill_reason = ev.reason


def _on_reconciliation(state: State, ev: ev_.Event, seq: int, ts: int, changes: Changes) -> None:
    state.reconciling = isinstance(ev, ev_.ReconciliationStarted)


def _nothing(state: State, ev: ev_.Event, seq: int, ts: int, changes: Changes) -> None:
    """Session markers and kinds this version does not know change no state."""


_HANDLERS: dict[type, Callable[[State, Any, int, int, Changes], None]] = {
    ev_.OrderRequested: _on_requested,
    ev_.CancelRequested: _on_cancel,
    ev_.ModifyRequested: _on_modify,
    ev_.OrderDenied: _on_denied,
    ev_.OrderSent: _on_sent,
    ev_.OrderStatusReported: _on_status,
    ev_.OpenOrderReported: _on_open_order,
    ev_.ExecutionReported: _on_execution,
    ev_.CommissionReported: _on_commission,
    ev_.PositionReported: _on_position,
    ev_.PositionMismatch: _on_mismatch,
    ev_.AccountValueReported: _on_account_value,
    ev_.BrokerError: _on_error,
    ev_.ConnectionChanged: _on_connection,
    ev_.KillSwitchChanged: _on_kill_switch,
    ev_.ReconciliationStarted: _on_reconciliation,
    ev_.ReconciliationFinished: _on_reconciliation,
    ev_.SessionStarted: _nothing,
    ev_.UnknownEvent: _nothing,
}
