"""The fold: one envelope at a time, the state every other part of the service reads.

Ownership rule: pure at the entity level, owned accumulator at the container level. `step` may update
the dicts inside the `State` it is given and returns that same object: the caller hands over the old
state. Every entity (Order, Position, Account, Fill) is a frozen Struct that is replaced, never mutated,
so a reference to one stays valid forever. Callers that need to keep a version call `copy_state`.

A step is all or nothing: every write goes through a `Tx`; an event a handler cannot apply is undone
whole, recorded in `State.fold_errors` (seq, kind, error) and returned as a `FoldError` change, the
same way live and in replay, so the live state still equals the replayed one.

No I/O, no clock (time is `env.ts`), no randomness, no logging. Dispatch is a dict lookup on the event's
type. Joins are in `oms.state.links`, positions and money in `oms.state.book`, fills in
`oms.state.fills`; see docs/state.md for every rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from msgspec.structs import replace

from events import schema as ev_
from events.schema import Contract, Envelope, kind_of, symbol_key
from oms.state import accounts, book, fills, history, links, orders, positions
from oms.state.model import (
    TERMINAL,
    BrokerPosition,
    Changed,
    FoldError,
    Mismatch,
    Order,
    State,
    initial_state,
)
from oms.state.money import ZERO, exact
from oms.state.tx import Tx

_NO_CONTRACT = Contract(symbol="")


def step(state: State, env: Envelope) -> tuple[State, tuple[Changed, ...]]:
    """Apply one event; returns the state (the same object, updated) and the entities it changed."""
    tx = Tx()
    _apply(state, tx, env)
    state.seq = env.seq
    state.ts = env.ts
    return state, tuple(tx.changes.values())


def _apply(state: State, tx: Tx, env: Envelope) -> None:
    try:
        _HANDLERS[type(env.event)](state, tx, env.event, env.seq, env.ts)
        if history.sweep_due(state, env.ts):
            history.sweep(state, tx, env.ts)
    except Exception as exc:  # a fold bug or an event it cannot apply: undone whole, recorded, skipped
        tx.rollback()
        error = FoldError(seq=env.seq, kind=kind_of(env.event), error=f"{type(exc).__name__}: {exc}")
        tx.put(state.fold_errors, env.seq, error)
        tx.changes[("e", str(env.seq))] = error


def fold(envs: Iterable[Envelope], state: State | None = None) -> State:
    """Fold a log (or its tail after a snapshot); `state` is taken over, not copied."""
    if state is None:
        state = initial_state()
    env: Envelope | None = None
    for env in envs:
        _apply(state, Tx(), env)
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
        position_inputs={k: list(v) for k, v in state.position_inputs.items()},
        fold_errors=dict(state.fold_errors),
        history=replace(state.history, recent=dict(state.history.recent), sealed=list(state.history.sealed)),
    )


# ---------------------------------------------------------------------------------------------------
# Intents.


def _on_requested(state: State, tx: Tx, ev: ev_.OrderRequested, seq: int, ts: int) -> None:
    if history.taken(state, ev.client_order_id):  # a duplicate id never makes a second order
        return
    contract = ev.contract
    if contract.con_id:
        book.name_instrument(state, tx, contract, contract.con_id)
    else:
        con_id = state.con_ids.get(symbol_key(contract), 0)
        if con_id:  # IB has already named this symbol
            contract = replace(contract, con_id=con_id)
    book.put(state, tx, None, orders.requested(ev, links.shared_contract(contract), seq, ts))


def _on_cancel(state: State, tx: Tx, ev: ev_.CancelRequested, seq: int, ts: int) -> None:
    order = state.orders.get(ev.client_order_id)
    if order is not None:
        book.put(state, tx, order, orders.triggered(order, "cancel_req", seq, ts))


def _on_modify(state: State, tx: Tx, ev: ev_.ModifyRequested, seq: int, ts: int) -> None:
    """Recorded as pending: quantities and prices change only when IB's openOrder shows them."""
    order = state.orders.get(ev.client_order_id)
    if order is not None and order.status not in TERMINAL:
        new = replace(order, pending_modify=ev, modify_rejected="", updated_seq=seq, updated_ts=ts)
        book.put(state, tx, order, new)


def _on_denied(state: State, tx: Tx, ev: ev_.OrderDenied, seq: int, ts: int) -> None:
    """Refused before reaching IB: rejected with the reason, whether or not the request was logged."""
    order = state.orders.get(ev.client_order_id)
    if order is None:
        if history.retired(state.history, "c", ev.client_order_id):
            return  # the id is a retired order's: it stays as it ended
        req = ev.request or ev_.OrderRequested(
            client_order_id=ev.client_order_id,
            strategy_id=ev.strategy_id,
            account="",
            contract=_NO_CONTRACT,
            side="BUY",
            quantity=ZERO,
        )
        new = orders.requested(req, req.contract, seq, ts)
        book.put(
            state, tx, None, replace(new, status="rejected", reason=ev.reason, last_error_message=ev.code)
        )
        return
    book.put(state, tx, order, orders.triggered(order, "rejected", seq, ts, reason=ev.reason))


def _on_sent(state: State, tx: Tx, ev: ev_.OrderSent, seq: int, ts: int) -> None:
    tx.setattr(state, "client_id", ev.client_id)
    order = state.orders.get(ev.client_order_id)
    if order is None:
        return
    tx.put(state.order_ids, f"{ev.client_id}:{ev.order_id}", order.client_order_id)  # this session wins
    if order.order_id != ev.order_id or order.client_id != ev.client_id:
        new = replace(order, order_id=ev.order_id, client_id=ev.client_id, updated_seq=seq, updated_ts=ts)
        book.put(state, tx, order, new)


# ---------------------------------------------------------------------------------------------------
# Broker facts.


def _on_status(state: State, tx: Tx, ev: ev_.OrderStatusReported, seq: int, ts: int) -> None:
    old = links.known(state, ev.order_id, ev.perm_id, ev.client_id, "")
    if old is None and history.retired_ids(state, ev.order_id, ev.perm_id, ev.client_id, ""):
        return  # IB repeating a retired order's status (after a reconnect): it ended as it was
    ids = (ev.client_id, ev.order_id, ev.perm_id)
    order = old or orders.external(ids, "", _NO_CONTRACT, "", ZERO, seq, ts)
    order = links.bind(state, tx, order, ev.order_id, ev.perm_id, ev.client_id)
    trigger = orders.status_trigger(ev.status, ev.why_held)
    if trigger:
        order = orders.triggered(order, trigger, seq, ts)
    order = _broker_fill(state, order, ev.filled, ev.avg_fill_price, ev.status, seq, ts)
    book.put(state, tx, old, order)


def _broker_fill(state: State, order: Order, filled: Decimal, avg: float, status: str, seq: int, ts: int
                 ) -> Order:  # fmt: skip
    """IB's own filled quantity and average: kept beside the executions. Reported during a
    reconciliation, they are IB's current word, from which a fill may be inferred (`fills.infer`)."""
    broker_avg = exact(avg) if avg else order.broker_avg_price
    same = (order.broker_filled, order.broker_avg_price, order.broker_status) == (filled, broker_avg, status)
    if same and not (state.reconciling and order.broker_seq <= state.reconciliation_seq):
        return order
    return replace(
        order, broker_filled=filled, broker_avg_price=broker_avg, broker_status=status, broker_seq=seq,
        updated_seq=seq, updated_ts=ts,
    )  # fmt: skip


def _on_open_order(state: State, tx: Tx, ev: ev_.OpenOrderReported, seq: int, ts: int) -> None:
    """IB's view of the order; its quantity and prices are what is working, so they acknowledge a modify."""
    old = links.known(state, ev.order_id, ev.perm_id, ev.client_id, ev.order_ref)
    if old is None and history.retired_ids(state, ev.order_id, ev.perm_id, ev.client_id, ev.order_ref):
        return  # a retired order, reported again as a completed order
    side = orders.ib_side(ev.side)
    if old is None:
        order = replace(
            orders.external(
                (ev.client_id, ev.order_id, ev.perm_id), ev.account, ev.contract, side, ev.quantity, seq, ts
            ),
            order_type=ev.order_type,
            limit_price=ev.limit_price,
            stop_price=ev.stop_price,
            tif=ev.tif,
            outside_rth=ev.outside_rth,
        )
    else:
        order = old
        if not order.account:
            order = links.placed(order, ev.account, side)
            if order.external:
                order = replace(order, order_type=ev.order_type)
    order = links.bind(state, tx, order, ev.order_id, ev.perm_id, ev.client_id)
    order = fills.learn(state, tx, order, ev.contract, old is None)
    if ev.filled is not None:  # a completed order: IB's filled quantity (no average price comes with it)
        order = _broker_fill(state, order, ev.filled, 0.0, ev.status, seq, ts)
    unknown_quantity = order.external and order.quantity == 0 and ev.quantity > 0
    if order.status in TERMINAL and not unknown_quantity:  # a terminal order changes only by executions
        book.put(state, tx, old, order)
        return
    if order.quantity != ev.quantity:
        base = replace(order, quantity=ev.quantity, status="submitted") if unknown_quantity else order
        base = replace(base, quantity=ev.quantity)
        order = orders.executed(
            base, order.filled + order.overfill, order.fill_value, order.inferred, seq, ts
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
    book.put(state, tx, old, order)


def _on_position(state: State, tx: Tx, ev: ev_.PositionReported, seq: int, ts: int) -> None:
    """Kept beside the folded position as a cross-check; never changes the folded quantity."""
    if ev.contract.con_id:
        book.name_instrument(state, tx, ev.contract, ev.contract.con_id)
    key = positions.position_key(ev.account, ev.contract, state.con_ids)
    report = BrokerPosition(
        account=ev.account, contract=ev.contract, position=ev.position, avg_cost=ev.avg_cost, seq=seq
    )
    tx.put(state.broker_positions, key, report)


def _on_mismatch(state: State, tx: Tx, ev: ev_.PositionMismatch, seq: int, ts: int) -> None:
    key = positions.position_key(ev.account, ev.contract, state.con_ids)
    mismatch = Mismatch(
        position_key=key,
        broker_position=ev.broker_position,
        folded_position=ev.folded_position,
        broker_avg_cost=ev.broker_avg_cost,
        seq=seq,
        ts=ts,
    )
    tx.put(state.mismatches, key, mismatch)


def _on_account_value(state: State, tx: Tx, ev: ev_.AccountValueReported, seq: int, ts: int) -> None:
    old = state.accounts.get(ev.account)
    new = accounts.with_value(old, ev, seq)
    if new is not old:
        tx.put(state.accounts, ev.account, new)
        tx.changes[("a", ev.account)] = new


def _on_error(state: State, tx: Tx, ev: ev_.BrokerError, seq: int, ts: int) -> None:
    """An order error (req_id is this session's orderId): see `orders.error_outcome` for what it means."""
    if ev.req_id <= 0:
        return
    coid = state.order_ids.get(f"{state.client_id}:{ev.req_id}")
    if coid is None:
        return
    order = state.orders[coid]
    outcome = orders.error_outcome(order, ev.code, ev.error_class)
    if outcome == "ignore":
        return
    new = replace(
        order, last_error_code=ev.code, last_error_message=ev.message, updated_seq=seq, updated_ts=ts
    )
    if outcome == "modify_refused":  # the order keeps working with its previous parameters
        new = replace(new, pending_modify=None, modify_rejected=ev.message)
    elif outcome != "record":
        new = orders.triggered(new, outcome, seq, ts, ev.message)
    book.put(state, tx, order, new)


def _on_connection(state: State, tx: Tx, ev: ev_.ConnectionChanged, seq: int, ts: int) -> None:
    tx.setattr(state, "connection", ev.state)
    if ev.client_id:
        tx.setattr(state, "client_id", ev.client_id)


def _on_kill_switch(state: State, tx: Tx, ev: ev_.KillSwitchChanged, seq: int, ts: int) -> None:
    tx.setattr(state, "kill_switch", ev.engaged)
    tx.setattr(state, "kill_reason", ev.reason)


def _on_reconciliation_started(
    state: State, tx: Tx, ev: ev_.ReconciliationStarted, seq: int, ts: int
) -> None:
    tx.setattr(state, "reconciling", True)
    tx.setattr(state, "reconciliation_seq", seq)


def _on_reconciliation_finished(
    state: State, tx: Tx, ev: ev_.ReconciliationFinished, seq: int, ts: int
) -> None:
    """IB has now said all it will about fills: what it reported filled during this reconciliation beyond
    the executions becomes an inferred fill (see `fills.infer`). Figures reported before it may predate
    a correction, so they are never used."""
    tx.setattr(state, "reconciling", False)
    if not ev.ok:
        return
    since = state.reconciliation_seq
    for order in [o for o in state.orders.values() if o.broker_seq > since and o.broker_filled != o.filled]:
        fills.infer(state, tx, order, seq, ts)


def _nothing(state: State, tx: Tx, ev: ev_.Event, seq: int, ts: int) -> None:
    """Session markers and kinds this version does not know change no state."""


_HANDLERS: dict[type, Callable[[State, Tx, Any, int, int], None]] = {
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
    ev_.ReconciliationStarted: _on_reconciliation_started,
    ev_.ReconciliationFinished: _on_reconciliation_finished,
    ev_.SessionStarted: _nothing,
    ev_.UnknownEvent: _nothing,
}
