"""The fold: one envelope at a time, the state every other part of the service reads.

Each event is one step, compute then commit: `step` builds a `Plan` (oms.state.plan) by handing the
event to its decider below, which asks each owner for the new values of its own tables, in one pass:
an execution goes links -> fills -> orders -> positions (both views) -> accounts. `commit` then only
assigns. A decider that raises has written nothing. `tombstones.Repeated` (IB repeating a retired
order's execution, recognised by its fill) then leaves the state as it was; any other exception is
recorded in `State.fold_errors` (seq, kind, error) by a plan of its own and returned as a `FoldError`
change, the same way live and in replay, so the live state still equals the replayed one.
Retirement (`history.sweep`) runs as its own plan after the event's.

Ownership: `step` updates the dicts inside the `State` it is given and returns that same object: the
caller hands over the old state. Every entity (Order, Position, Account, Fill) is a frozen Struct,
replaced, never mutated, so a reference to one stays valid forever; `copy_state` gives a version to
keep. No I/O, no clock (time is `env.ts`), no randomness, no logging. Every rule is in its owner:
`orders` (the transition table and IB's error rules), `fills` (execution, correction and commission
identity), `positions` (the reducer and both views), `accounts` (money per currency), `links` (every
identifier map), `history` (retirement); this module only dispatches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from msgspec.structs import replace

from events import schema as ev_
from events.schema import Contract, Envelope, kind_of, symbol_key
from oms.state import accounts, fills, history, interning, links, orders, positions, tombstones
from oms.state.model import BrokerPosition, Changed, FoldError, Mismatch, Order, State, initial_state
from oms.state.money import ZERO, Money
from oms.state.plan import Link, Plan, changed, commit

_NONE: Money = {}


def step(state: State, env: Envelope) -> tuple[State, tuple[Changed, ...]]:
    """Apply one event; returns the state (the same object, updated) and the entities it changed."""
    plan, sweep = _step(state, env)
    state.seq = env.seq
    state.ts = env.ts
    return state, changed(plan) if sweep is None else changed(plan) + changed(sweep)


def _step(state: State, env: Envelope) -> tuple[Plan, Plan | None]:
    """Decide and commit one event, then a sweep when one is due: the plans committed."""
    event = env.event
    plan = Plan(state, env.seq, env.ts)
    try:
        _DECIDE[type(event)](plan, event)
    except tombstones.Repeated:  # IB repeating a retired order's report: nothing changes
        plan = Plan(state, env.seq, env.ts)
    except Exception as exc:  # a fold bug or an event it cannot apply: nothing written, recorded, skipped
        error = FoldError(seq=env.seq, kind=kind_of(event), error=f"{type(exc).__name__}: {exc}")
        plan = Plan(state, env.seq, env.ts)
        plan.w["fold_errors", env.seq] = error
    commit(plan)
    if env.ts - state.history.swept_ts < history.SWEEP_EVERY_NS or not history.sweep_due(state, env.ts):
        return plan, None
    sweep = Plan(state, env.seq, env.ts)
    try:
        history.sweep(sweep)
    except Exception as exc:  # a sweep bug: this sweep is skipped, the event stands
        error = FoldError(seq=env.seq, kind="Sweep", error=f"{type(exc).__name__}: {exc}")
        sweep = Plan(state, env.seq, env.ts)
        sweep.w["fold_errors", env.seq] = error
    commit(sweep)
    return plan, sweep


def fold(envs: Iterable[Envelope], state: State | None = None) -> State:
    """Fold a log (or its tail after a snapshot); `state` is taken over, not copied."""
    if state is None:
        state = initial_state()
    env: Envelope | None = None
    for env in envs:
        _step(state, env)
    if env is not None:  # no decider reads them: set once, for the last event
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
# The two paths every order change takes: the order alone, or fills with it: the order, then its
# positions (both views), then the money.


def _order(plan: Plan, old: Order | None, order: Order) -> None:
    """Store `order` (changed from `old`) and move it among the working orders of its positions."""
    if order is old:
        return
    plan.w["orders", order.client_order_id] = order
    moved = positions.rekeyed(old, order)
    if positions.changes_place(old, order, moved):
        positions.advanced(plan, links.of_change(plan, old, order, moved))


def _filled(plan: Plan, link: Link, done: fills.Executed) -> None:
    """Fills changed (`done`): the order after them, both views of their positions, and the money
    that moved, into each account (IB's realized P&L into the execution's)."""
    steps = orders.after_fills(link.order, done, plan.seq, plan.ts)
    plan.w["orders", link.order.client_order_id] = steps[-1]
    moves = positions.advanced(plan, link, steps, done.changes)
    accounts.credited(plan, moves, done.account, done.broker)


def _learn(plan: Plan, order: Order, contract: Contract, new: bool) -> Order:
    """IB named the order's instrument: join it, and move what was keyed by the symbol."""
    order, named = links.learn(plan, order, contract, new)
    for sym in named:
        positions.renamed(plan, sym, contract.con_id)
    return order


def _name(plan: Plan, contract: Contract) -> None:
    sym = links.name(plan, contract) if contract.con_id else None
    if sym is not None:
        positions.renamed(plan, sym, contract.con_id)


# ---------------------------------------------------------------------------------------------------
# Intents.


def _on_requested(plan: Plan, ev: ev_.OrderRequested) -> None:
    state = plan.state
    if tombstones.taken(state, ev.client_order_id):  # a duplicate id never makes a second order
        return
    contract = ev.contract
    if contract.con_id:
        _name(plan, contract)
    else:
        con_id = state.con_ids.get(symbol_key(contract), 0)
        if con_id:  # IB has already named this symbol
            contract = replace(contract, con_id=con_id)
    order = orders.requested(
        ev,
        interning.contract(contract),
        plan.seq,
        plan.ts,
        interning.name(ev.strategy_id),
        interning.name(ev.account),
    )
    _order(plan, None, order)


def _on_cancel(plan: Plan, ev: ev_.CancelRequested) -> None:
    order = plan.state.orders.get(ev.client_order_id)
    if order is not None:
        _order(plan, order, orders.triggered(order, "cancel_req", plan.seq, plan.ts))


def _on_modify(plan: Plan, ev: ev_.ModifyRequested) -> None:
    order = plan.state.orders.get(ev.client_order_id)
    if order is not None:
        _order(plan, order, orders.modify_requested(order, ev, plan.seq, plan.ts))


def _on_denied(plan: Plan, ev: ev_.OrderDenied) -> None:
    """Refused before reaching IB: rejected with the reason, whether or not the request was logged."""
    state = plan.state
    order = state.orders.get(ev.client_order_id)
    if order is not None:
        _order(plan, order, orders.triggered(order, "rejected", plan.seq, plan.ts, reason=ev.reason))
    elif not tombstones.retired(state.history, "c", ev.client_order_id):  # a retired id stays as it ended
        _order(plan, None, orders.denied(ev, plan.seq, plan.ts))


def _on_sent(plan: Plan, ev: ev_.OrderSent) -> None:
    plan.fields["client_id"] = ev.client_id
    order = plan.state.orders.get(ev.client_order_id)
    if order is None:
        return
    links.sent(plan, order, ev.order_id, ev.client_id)
    if order.order_id != ev.order_id or order.client_id != ev.client_id:
        new = replace(
            order, order_id=ev.order_id, client_id=ev.client_id, updated_seq=plan.seq, updated_ts=plan.ts
        )
        _order(plan, order, new)


# ---------------------------------------------------------------------------------------------------
# Broker facts.


def _restated(state: State, order: Order) -> bool:
    """IB's figures for `order` reported for the first time in the reconciliation under way."""
    return state.reconciling and order.broker_seq <= state.reconciliation_seq


def _on_status(plan: Plan, ev: ev_.OrderStatusReported) -> None:
    state, seq, ts = plan.state, plan.seq, plan.ts
    old = links.known(state, ev.order_id, ev.perm_id, ev.client_id, "")
    if old is None and tombstones.retired_ids(state, ev.order_id, ev.perm_id, ev.client_id, ""):
        return  # IB repeating a retired order's status (after a reconnect): it ended as it was
    if old is None:
        ids = (ev.client_id, ev.order_id, ev.perm_id)
        order = links.external(ids, "", orders.NO_CONTRACT, "", ZERO, seq, ts)
    else:
        order = old
    order = links.bind(plan, order, ev.order_id, ev.perm_id, ev.client_id)
    trigger = orders.status_trigger(ev.status, ev.why_held)
    if trigger:
        order = orders.triggered(order, trigger, seq, ts)
    restated = _restated(state, order)
    order = orders.broker_reported(order, ev.filled, ev.avg_fill_price, ev.status, restated, seq, ts)
    _order(plan, old, order)


def _on_open_order(plan: Plan, ev: ev_.OpenOrderReported) -> None:
    """IB's view of the order; its quantity and prices are what is working, so they acknowledge a modify."""
    state, seq, ts = plan.state, plan.seq, plan.ts
    old = links.known(state, ev.order_id, ev.perm_id, ev.client_id, ev.order_ref)
    if old is None and tombstones.retired_ids(state, ev.order_id, ev.perm_id, ev.client_id, ev.order_ref):
        return  # a retired order, reported again as a completed order
    side = links.ib_side(ev.side)
    if old is None:
        ids = (ev.client_id, ev.order_id, ev.perm_id)
        order = links.external(ids, ev.account, ev.contract, side, ev.quantity, seq, ts)
    else:
        order = old
        if not order.account:
            order = links.placed(order, ev.account, side)
            if order.external:
                order = replace(order, order_type=ev.order_type)
    order = links.bind(plan, order, ev.order_id, ev.perm_id, ev.client_id)
    order = _learn(plan, order, ev.contract, old is None)
    if ev.filled is not None:  # a completed order: IB's filled quantity (no average price comes with it)
        order = orders.broker_reported(order, ev.filled, 0.0, ev.status, _restated(state, order), seq, ts)
    _order(plan, old, orders.open_order_reported(order, ev, old is None, seq, ts))


def _on_execution(plan: Plan, ev: ev_.ExecutionReported) -> None:
    """A fill: whom it is for, the fill (deduped by execId; a later execId with the same part before the
    last "." replaces it), the order, both views of its position, the account: each owner once."""
    link = links.of_execution(plan, ev)
    done = fills.from_execution(plan, ev, link)
    if done is None:  # seen before, or superseded: only what it taught about the order
        _order(plan, link.old, link.order)
        return
    _filled(plan, link, done)


def _on_commission(plan: Plan, ev: ev_.CommissionReported) -> None:
    joined = fills.commission(plan, ev)
    if joined is None:
        return
    fill, moved, broker = joined
    order = plan.state.orders.get(fill.client_order_id)
    if moved and order is not None:
        plan.w["orders", order.client_order_id] = orders.commissioned(order, moved, plan.seq)
    moves = positions.commissioned(plan, fill, moved) if moved else []
    accounts.credited(plan, moves, fill.account, broker)


def _on_position(plan: Plan, ev: ev_.PositionReported) -> None:
    """Kept beside the folded position as a cross-check; never changes the folded quantity."""
    _name(plan, ev.contract)
    key = links.keyed(plan, ev.account, ev.contract)
    report = BrokerPosition(
        account=ev.account, contract=ev.contract, position=ev.position, avg_cost=ev.avg_cost, seq=plan.seq
    )
    plan.w["broker_positions", key] = report


def _on_mismatch(plan: Plan, ev: ev_.PositionMismatch) -> None:
    key = links.position_key(ev.account, ev.contract, plan.state.con_ids)
    mismatch = Mismatch(
        position_key=key,
        broker_position=ev.broker_position,
        folded_position=ev.folded_position,
        broker_avg_cost=ev.broker_avg_cost,
        seq=plan.seq,
        ts=plan.ts,
    )
    plan.w["mismatches", key] = mismatch


def _on_account_value(plan: Plan, ev: ev_.AccountValueReported) -> None:
    old = plan.state.accounts.get(ev.account)
    new = accounts.with_value(old, ev, plan.seq)
    if new is not old:
        plan.w["accounts", ev.account] = new


def _on_error(plan: Plan, ev: ev_.BrokerError) -> None:
    """An order error (req_id is this session's orderId): see `orders.error_outcome` for what it means."""
    if ev.req_id <= 0:
        return
    state = plan.state
    coid = state.order_ids.get(f"{state.client_id}:{ev.req_id}")
    if coid is not None:
        order = state.orders[coid]
        _order(plan, order, orders.errored(order, ev, plan.seq, plan.ts))


def _on_connection(plan: Plan, ev: ev_.ConnectionChanged) -> None:
    plan.fields["connection"] = ev.state
    if ev.client_id:
        plan.fields["client_id"] = ev.client_id


def _on_kill_switch(plan: Plan, ev: ev_.KillSwitchChanged) -> None:
    """No scope: the switch for everything. A strategy or account: that scope's entry, replaced (never
    changed in place, so a kept state stays as it was)."""
    scope = ev.scope
    if not scope:
        plan.fields["kill_switch"] = ev.engaged
        plan.fields["kill_reason"] = ev.reason
        return
    scopes = dict(plan.state.kill_scopes)
    if ev.engaged:
        scopes[scope] = (ev.code, ev.reason)
    else:
        scopes.pop(scope, None)
    plan.fields["kill_scopes"] = scopes


def _on_reconciliation_started(plan: Plan, ev: ev_.ReconciliationStarted) -> None:
    plan.fields["reconciling"] = True
    plan.fields["reconciliation_seq"] = plan.seq


def _on_reconciliation_finished(plan: Plan, ev: ev_.ReconciliationFinished) -> None:
    """IB has now said all it will about fills: what it reported filled during this reconciliation beyond
    the executions becomes an inferred fill (`fills.inferred`). Figures reported before it may predate
    a correction, so they are never used."""
    state = plan.state
    plan.fields["reconciling"] = False
    if not ev.ok:
        return
    since = state.reconciliation_seq
    for order in [o for o in state.orders.values() if o.broker_seq > since and o.broker_filled != o.filled]:
        link = links.of_change(plan, order, order, False)
        qty = order.filled + order.overfill
        change = fills.inferred(plan, order, link.order_key, qty, order.fill_value, order.inferred)
        if change is not None:
            _filled(plan, link, fills.Executed((change,), _NONE, _NONE, order.account))


def _nothing(plan: Plan, ev: ev_.Event) -> None:
    """Session markers and kinds this version does not know change no state."""


_DECIDE: dict[type, Callable[[Plan, Any], None]] = {
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
    ev_.ReconciliationStarted: _on_reconciliation_started,
    ev_.ReconciliationFinished: _on_reconciliation_finished,
    ev_.SessionStarted: _nothing,
    ev_.UnknownEvent: _nothing,
}
