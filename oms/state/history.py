"""History: finished orders leave the live state, so what the service holds, snapshots and loads at
start-up is what is live, not everything ever traded.

An order retires when it is final and quiet: terminal, IB's filled quantity explained by its fills,
every execution's commission in (or a day has passed), no reconciliation under way, and no event has
touched it for `RETIRE_AFTER_NS` of event time. Its fills go with it; the positions they built keep a
checkpoint (`Position`) at the head of their history instead, so a later correction of a live fill still
recomputes exactly. The journal keeps every retired order's events (an order query answers from it).

What stays is small: how many orders and fills retired, and tombstones, the 64-bit hashes of every
identifier a retired order had (client order id, IB orderId with its clientId, permIds, execIds, and
whether each fill had its commission), kept for `TOMBSTONE_NS` because IB repeats a day's executions,
commissions and completed orders after every reconnect. A repeat of a retired order's report is then
recognised and changes nothing; a correction of a retired fill, or the first commission of a fill
retired without one, is refused with `RetiredOrder` (recorded as a fold error, never silently applied to
a position or account without its order). Retirement runs at most once per `SWEEP_EVERY_NS` of event
time, from the event clock only, so live, replay and a snapshot plus its tail retire the same orders at
the same seq.
"""

from __future__ import annotations

from collections.abc import Iterable

from oms.state.model import TERMINAL, Fill, History, Order, Position, Sealed, State
from oms.state.plan import Plan
from oms.state.positions import replayed, set_history
from oms.state.tombstones import TOMBSTONE_NS, commission_ident, ident

MINUTE_NS = 60 * 10**9
RETIRE_AFTER_NS = 15 * MINUTE_NS
SWEEP_EVERY_NS = MINUTE_NS
SEAL_AT = 1 << 16  # recent tombstones become one sorted, immutable block at this many


def sweep_due(state: State, ts: int) -> bool:
    """A minute of event time since the last sweep, and no reconciliation under way."""
    return ts - state.history.swept_ts >= SWEEP_EVERY_NS and not state.reconciling


def sweep(plan: Plan) -> None:
    """Retire what is final and quiet, and forget tombstones past their horizon: a plan of its own,
    committed after the event's (a sweep that fails skips only the sweep, live and in replay alike)."""
    state, ts = plan.state, plan.ts
    old = state.history
    horizon = ts - TOMBSTONE_NS
    sealed = old.sealed
    if sealed and sealed[0].until_ts < horizon:  # tombstones past the horizon: a block when its newest is
        sealed = [b for b in sealed if b.until_ts >= horizon]
    recent = old.recent
    if any(when < horizon for when in recent.values()):
        recent = {k: w for k, w in recent.items() if w >= horizon}
    going, bases, cuts = _going(state, ts)
    new = History(orders=old.orders, fills=old.fills, swept_ts=ts, recent=recent, sealed=sealed)
    plan.fields["history"] = new
    if not going:
        return
    buried = dict(recent)
    for pkey, table in _touched(state, bases):
        _checkpoint(state, plan, table, pkey, cuts[pkey])
    names = set(going)
    for key in [k for k, coid in state.order_ids.items() if coid in names]:
        buried[ident("o", key)] = ts
        plan.w["order_ids", key] = None
    for order in going.values():
        buried[ident("c", order.client_order_id)] = ts
        for perm_id in order.perm_ids:
            buried[ident("p", perm_id)] = ts
            if state.perm_ids.get(perm_id) == order.client_order_id:
                plan.w["perm_ids", perm_id] = None
        plan.w["orders", order.client_order_id] = None
    for base in bases:
        fill = state.fills[base]
        plan.w["fills", base] = None
        buried[ident("b" if fill.commission or fill.inferred else "n", base)] = ts
        buried[ident("e", fill.exec_id)] = ts
        if fill.commission or fill.broker_realized_pnl:
            buried[ident("m", commission_ident(fill.exec_id, fill.commission, fill.broker_realized_pnl))] = ts
    new.orders += len(going)
    new.fills += len(bases)
    new.recent = buried
    if len(buried) >= SEAL_AT:
        hashes = sorted(buried)
        new.sealed = [*sealed, Sealed(until_ts=ts, hashes=b"".join(h.to_bytes(8, "little") for h in hashes))]
        new.recent = {}


def _going(state: State, ts: int) -> tuple[dict[str, Order], set[str], dict[str, int]]:
    """The orders that retire now, their fills, and how much of each touched history they end. Only
    terminal orders quiet for `RETIRE_AFTER_NS` are candidates: without any, the fills are not read."""
    quiet = ts - RETIRE_AFTER_NS
    candidates = [o for o in state.orders.values() if o.status in TERMINAL and o.updated_ts <= quiet]
    if not candidates:
        return {}, set(), {}
    fills_of: dict[str, list[str]] = {}
    for base, fill in state.fills.items():
        fills_of.setdefault(fill.client_order_id, []).append(base)
    going = {
        order.client_order_id: order
        for order in candidates
        if _explained(order, [state.fills[b] for b in fills_of.get(order.client_order_id, ())], ts)
    }
    while True:  # an order whose fill is held behind a live fill in some position's history stays
        bases = {b for coid in going for b in fills_of.get(coid, ())}
        cuts = {pkey: _cut(state, pkey, bases) for pkey, _ in _touched(state, bases)}
        held = {
            state.fills[entry].client_order_id
            for pkey, cut in cuts.items()
            for entry in state.position_inputs.get(pkey, [])[cut:]
            if isinstance(entry, str) and entry in bases
        }
        if not held:
            return going, bases, cuts
        going = {coid: order for coid, order in going.items() if coid not in held}


def _explained(order: Order, fills: list[Fill], now: int) -> bool:
    """A terminal, quiet order is final when explained: IB's filled quantity is in its fills (else the
    next reconciliation infers the rest), and every commission is in, or has been missing for a day. An
    external order whose quantity IB has not told (taken as filled by its executions) waits a day: its
    openOrder may still show it working."""
    if order.broker_filled > order.filled + order.overfill:
        return False
    day_old = order.updated_ts <= now - TOMBSTONE_NS
    if order.external and not order.quantity:  # known only by its executions: IB may yet say it works
        return day_old
    return day_old or all(f.commission or f.inferred for f in fills)


def _touched(state: State, bases: set[str]) -> Iterable[tuple[str, dict[str, Position]]]:
    """The position keys whose histories hold retiring fills: account-wide and the strategy's."""
    seen: set[str] = set()
    for base in bases:
        fill = state.fills[base]
        for pkey, table in (
            (fill.position_key, state.positions),
            (f"{fill.strategy_id}|{fill.position_key}", state.strategy_positions),
        ):
            if pkey not in seen:
                seen.add(pkey)
                yield pkey, table


def _cut(state: State, pkey: str, bases: set[str]) -> int:
    """How long the head of a position's history is that holds only retiring fills, fills already
    gone (a replaced inferred fill) and working entries."""
    cut = 0
    for i, entry in enumerate(state.position_inputs.get(pkey, ())):
        if isinstance(entry, str) and entry in state.fills and entry not in bases:
            break
        cut = i + 1
    return cut


def _checkpoint(state: State, plan: Plan, table: dict[str, Position], pkey: str, cut: int) -> None:
    """Replace the head of a position's history that `_cut` found by the position it leads to:
    recomputing from the checkpoint gives what recomputing from the whole history gave, without the
    retired fills."""
    inputs = state.position_inputs.get(pkey)
    pos = table.get(pkey)
    if not inputs or pos is None or cut == 0 or (cut == 1 and isinstance(inputs[0], Position)):
        return
    base = replayed(pos, inputs[:cut], state.fills.get)
    set_history(plan, pkey, [base, *inputs[cut:]])
