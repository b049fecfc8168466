"""The fold: one envelope at a time, the state every other part of the service reads.

Ownership rule: pure at the entity level, owned accumulator at the container level. `step` may update
the dicts inside the `State` it is given and returns that same object: the caller hands over the old
state. Every entity (Order, Position, Account, Fill) is a frozen Struct that is replaced, never mutated,
so a reference to one stays valid forever. Callers that need to keep a version call `copy_state`
(copies the containers, shares the entities). Why: copying every dict per event would cost far more
than the fold itself, and the service, the replay tool and the tests each hold a state in one place.

No I/O, no clock (time is `env.ts`), no randomness, no logging. Dispatch is a dict lookup on the event's
type. Joins and the shared bookkeeping are in `oms.state.bookkeeping`, fills and commissions in
`oms.state.fills`; see docs/state.md for every rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from sys import intern
from typing import Any

from msgspec.structs import replace

from events import schema as ev_
from events.schema import Contract, Envelope
from oms.state import accounts, bookkeeping, fills, orders, positions
from oms.state.bookkeeping import Changes
from oms.state.model import TERMINAL, BrokerPosition, Changed, Mismatch, State, initial_state
from oms.state.orders import EPS

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
    env: Envelope | None = None
    for env in envs:
        event = env.event
        handlers[type(event)](state, event, env.seq, env.ts, changes)
        changes.clear()
    if env is not None:  # no handler reads them: set once, for the last event
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
        instruments=dict(state.instruments),
        broker_positions=dict(state.broker_positions),
        mismatches=dict(state.mismatches),
    )


# ---------------------------------------------------------------------------------------------------
# Intents.


def _on_requested(state: State, ev: ev_.OrderRequested, seq: int, ts: int, changes: Changes) -> None:
    if ev.client_order_id in state.orders:  # a duplicate id never makes a second order
        return
    contract = ev.contract
    if contract.con_id:
        bookkeeping.name_instrument(state, contract, contract.con_id, seq, changes)
    else:
        con_id = state.con_ids.get(positions.symbol_key(contract), 0)
        if con_id:  # IB has already named this symbol
            contract = replace(contract, con_id=con_id)
    order = orders.requested(ev, bookkeeping.shared_contract(contract), seq, ts)
    bookkeeping.put(state, None, order, seq, changes)


def _on_cancel(state: State, ev: ev_.CancelRequested, seq: int, ts: int, changes: Changes) -> None:
    order = state.orders.get(ev.client_order_id)
    if order is not None:
        bookkeeping.put(state, order, orders.triggered(order, "cancel_req", seq, ts), seq, changes)


def _on_modify(state: State, ev: ev_.ModifyRequested, seq: int, ts: int, changes: Changes) -> None:
    """Recorded as pending: quantities and prices change only when IB's openOrder shows them."""
    order = state.orders.get(ev.client_order_id)
    if order is not None and order.status not in TERMINAL:
        bookkeeping.put(
            state, order, replace(order, pending_modify=ev, updated_seq=seq, updated_ts=ts), seq, changes
        )


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
        order = orders.requested(req, req.contract, seq, ts)
        bookkeeping.put(
            state,
            None,
            replace(order, status="rejected", reason=ev.reason, last_error_message=ev.code),
            seq,
            changes,
        )
        return
    new = orders.triggered(order, "rejected", seq, ts, reason=ev.reason)
    bookkeeping.put(state, order, new, seq, changes)


def _on_sent(state: State, ev: ev_.OrderSent, seq: int, ts: int, changes: Changes) -> None:
    state.client_id = ev.client_id
    order = state.orders.get(ev.client_order_id)
    if order is None:
        return
    state.order_ids[f"{ev.client_id}:{ev.order_id}"] = order.client_order_id  # this session's binding wins
    if order.order_id != ev.order_id or order.client_id != ev.client_id:
        new = replace(order, order_id=ev.order_id, client_id=ev.client_id, updated_seq=seq, updated_ts=ts)
        bookkeeping.put(state, order, new, seq, changes)


# ---------------------------------------------------------------------------------------------------
# Broker facts.


def _on_status(state: State, ev: ev_.OrderStatusReported, seq: int, ts: int, changes: Changes) -> None:
    coid = bookkeeping.resolve(state, ev.order_id, ev.perm_id, ev.client_id, "")
    if coid is None:
        old = None
        coid = orders.external_id(ev.client_id, ev.order_id, ev.perm_id)
        order = orders.external(coid, "", _NO_CONTRACT, "", 0.0, seq, ts)
    else:
        order = old = state.orders[coid]
    order = bookkeeping.bind(state, order, ev.order_id, ev.perm_id, ev.client_id)
    trigger = orders.status_trigger(ev.status, ev.why_held)
    if trigger:
        order = orders.triggered(order, trigger, seq, ts)
    if order.broker_filled != ev.filled or order.broker_status != ev.status:
        order = replace(
            order, broker_filled=ev.filled, broker_status=intern(ev.status), updated_seq=seq, updated_ts=ts
        )
    bookkeeping.put(state, old, order, seq, changes)


def _on_open_order(state: State, ev: ev_.OpenOrderReported, seq: int, ts: int, changes: Changes) -> None:
    """IB's view of the order; its quantity and prices are what is working, so they acknowledge a modify."""
    coid = bookkeeping.resolve(state, ev.order_id, ev.perm_id, ev.client_id, ev.order_ref)
    if coid is None:
        old = None
        coid = orders.external_id(ev.client_id, ev.order_id, ev.perm_id)
        order = orders.external(coid, ev.account, ev.contract, orders.ib_side(ev.side), ev.quantity, seq, ts)
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
        if not order.account:
            order = bookkeeping.placed(order, ev.account, orders.ib_side(ev.side))
            if order.external:
                order = replace(order, order_type=ev.order_type)
    order = bookkeeping.bind(state, order, ev.order_id, ev.perm_id, ev.client_id)
    order = bookkeeping.learn(state, order, ev.contract, seq, changes, old is None)
    if order.status in TERMINAL:  # a terminal order changes only by executions
        bookkeeping.put(state, old, order, seq, changes)
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
    bookkeeping.put(state, old, order, seq, changes)


def _on_position(state: State, ev: ev_.PositionReported, seq: int, ts: int, changes: Changes) -> None:
    """Kept beside the folded position as a cross-check; never changes the folded quantity."""
    if ev.contract.con_id:
        bookkeeping.name_instrument(state, ev.contract, ev.contract.con_id, seq, changes)
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
    bookkeeping.put(state, order, new, seq, changes)


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
    ev_.ExecutionReported: fills.on_execution,
    ev_.CommissionReported: fills.on_commission,
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
