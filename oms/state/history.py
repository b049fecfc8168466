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

import bisect
import hashlib
from collections.abc import Iterable

from oms.state.model import TERMINAL, Fill, History, Order, Position, Sealed, State
from oms.state.tx import Tx

MINUTE_NS = 60 * 10**9
RETIRE_AFTER_NS = 15 * MINUTE_NS
SWEEP_EVERY_NS = MINUTE_NS
TOMBSTONE_NS = 24 * 60 * MINUTE_NS
SEAL_AT = 1 << 16  # recent tombstones become one sorted, immutable block at this many


class RetiredOrder(Exception):
    """An event that would change a retired order (a late correction): refused, recorded, visible."""


def ident(kind: str, value: object) -> int:
    """A stable 64-bit hash of one identifier (Python's `hash` of a str changes between runs)."""
    digest = hashlib.blake2b(f"{kind}{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def retired(history: History, kind: str, value: object) -> bool:
    """Whether an identifier belonged to a retired order (within the tombstone horizon)."""
    if not history.recent and not history.sealed:
        return False
    key = ident(kind, value)
    if key in history.recent:
        return True
    for block in history.sealed:
        hashes = memoryview(block.hashes).cast("Q")
        at = bisect.bisect_left(hashes, key)
        if at < len(hashes) and hashes[at] == key:
            return True
    return False


def retired_ids(state: State, order_id: int, perm_id: int, client_id: int, order_ref: str) -> bool:
    """Whether an IB callback names a retired order (by permId, orderRef or this session's orderId)."""
    history = state.history
    return (
        (perm_id > 0 and retired(history, "p", perm_id))
        or (bool(order_ref) and retired(history, "c", order_ref))
        or (order_id > 0 and retired(history, "o", f"{client_id}:{order_id}"))
    )


def taken(state: State, client_order_id: str) -> bool:
    """Whether a client order id is in use: by a live order, or a retired one within the horizon."""
    return client_order_id in state.orders or retired(state.history, "c", client_order_id)


def sweep_due(state: State, ts: int) -> bool:
    """A minute of event time since the last sweep, and no reconciliation under way."""
    return ts - state.history.swept_ts >= SWEEP_EVERY_NS and not state.reconciling


def sweep(state: State, tx: Tx, ts: int) -> None:
    """Retire what is final and quiet, and forget tombstones past their horizon."""
    history = state.history
    tx.setattr(history, "swept_ts", ts)
    _expire(history, tx, ts)
    fills_of: dict[str, list[str]] = {}
    for base, fill in state.fills.items():
        fills_of.setdefault(fill.client_order_id, []).append(base)
    going = {
        order.client_order_id: order
        for order in state.orders.values()
        if _final(order, [state.fills[b] for b in fills_of.get(order.client_order_id, ())], ts)
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
            break
        going = {coid: order for coid, order in going.items() if coid not in held}
    if not going:
        return
    for pkey, table in _touched(state, bases):
        _checkpoint(state, tx, table, pkey, cuts[pkey])
    names = set(going)
    for key in [k for k, coid in state.order_ids.items() if coid in names]:
        _bury(history, tx, "o", key, ts)
        tx.pop(state.order_ids, key)
    for order in going.values():
        _bury(history, tx, "c", order.client_order_id, ts)
        for perm_id in order.perm_ids:
            _bury(history, tx, "p", perm_id, ts)
            if state.perm_ids.get(perm_id) == order.client_order_id:
                tx.pop(state.perm_ids, perm_id)
        tx.pop(state.orders, order.client_order_id)
    for base in bases:
        fill = tx.pop(state.fills, base)
        _bury(history, tx, "b" if fill.commission or fill.inferred else "n", base, ts)
        _bury(history, tx, "e", fill.exec_id, ts)
    tx.setattr(history, "orders", history.orders + len(going))
    tx.setattr(history, "fills", history.fills + len(bases))
    if len(history.recent) >= SEAL_AT:
        _seal(history, tx, ts)


def _final(order: Order, fills: list[Fill], now: int) -> bool:
    """Terminal, quiet, and explained: IB's filled quantity is in its fills (else the next
    reconciliation infers the rest), and every commission is in, or has been missing for a day. An
    external order whose quantity IB has not told (taken as filled by its executions) waits a day: its
    openOrder may still show it working."""
    if order.status not in TERMINAL or order.updated_ts > now - RETIRE_AFTER_NS:
        return False
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


def _checkpoint(state: State, tx: Tx, table: dict[str, Position], pkey: str, cut: int) -> None:
    """Replace the head of a position's history that `_cut` found by the position it leads to:
    recomputing from the checkpoint gives what recomputing from the whole history gave, without the
    retired fills."""
    from oms.state.positions import replayed

    inputs = state.position_inputs.get(pkey)
    pos = table.get(pkey)
    if not inputs or pos is None or cut == 0 or (cut == 1 and isinstance(inputs[0], Position)):
        return
    base = replayed(pos, inputs[:cut], state.fills)
    tx.put(state.position_inputs, pkey, [base, *inputs[cut:]])


def _bury(history: History, tx: Tx, kind: str, value: object, ts: int) -> None:
    tx.put(history.recent, ident(kind, value), ts)


def _seal(history: History, tx: Tx, ts: int) -> None:
    hashes = sorted(history.recent)
    block = Sealed(until_ts=ts, hashes=b"".join(h.to_bytes(8, "little") for h in hashes))
    tx.setattr(history, "sealed", [*history.sealed, block])
    tx.setattr(history, "recent", {})


def _expire(history: History, tx: Tx, now: int) -> None:
    """Tombstones older than the horizon go: a block when its newest is, recent ones one by one."""
    horizon = now - TOMBSTONE_NS
    if history.sealed and history.sealed[0].until_ts < horizon:
        tx.setattr(history, "sealed", [b for b in history.sealed if b.until_ts >= horizon])
    old = [k for k, when in history.recent.items() if when < horizon]
    if old:
        tx.setattr(history, "recent", {k: w for k, w in history.recent.items() if w >= horizon})
