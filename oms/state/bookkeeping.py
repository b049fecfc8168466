"""Bookkeeping every fold handler shares: joining IB's identifiers to our orders and instruments, and
storing a changed order with everything that depends on it (its positions, account-wide and for its
strategy) while recording each changed entity for `oms.state.fold.step` to return.

Joins: an IB callback names an order by permId first (stable across sessions), then by our orderRef,
then by this session's (clientId, orderId); IB's conId is learned per symbol (docs/state.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from msgspec.structs import replace

from events.schema import Contract
from oms.state import accounts, positions
from oms.state.model import WORKING, Changed, Fill, Order, Position, Removed, State

Changes = dict[tuple[str, str], Changed]  # ("o" | "p" | "s" | "a" | "r", key) -> the new value


def resolve(state: State, order_id: int, perm_id: int, client_id: int, order_ref: str) -> str | None:
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


def bind(state: State, order: Order, order_id: int, perm_id: int, client_id: int) -> Order:
    """Index IB's ids for `order`; one client order may acquire several permIds."""
    coid = order.client_order_id
    if order_id > 0 and (order_id != order.order_id or client_id != order.client_id):  # else indexed
        state.order_ids.setdefault(f"{client_id}:{order_id}", coid)
        if not order.order_id:
            order = replace(order, order_id=order_id, client_id=client_id)
    if perm_id and perm_id not in order.perm_ids:
        state.perm_ids[perm_id] = coid
        order = replace(order, perm_ids=(*order.perm_ids, perm_id))
    return order


def placed(order: Order, account: str, side: str) -> Order:
    """An order without an account (an external one first seen by its status) learns it, and its side,
    from the first openOrder or execution; `put` then moves what it had under the empty account."""
    if order.account or not account:
        return order
    return replace(order, account=account, side=order.side or side)


def learn(state: State, order: Order, contract: Contract, seq: int, changes: Changes, new: bool) -> Order:
    """IB named the instrument of `order`: join the order to its conId (see `name_instrument`)."""
    con_id = contract.con_id
    if con_id and con_id == order.contract.con_id and not new:
        return order  # already joined
    if not order.contract.symbol:  # an external order first seen by its status
        order = replace(order, contract=contract)
    if not con_id:
        return order
    name_instrument(state, contract, con_id, seq, changes)
    if not order.contract.con_id:
        name_instrument(state, order.contract, con_id, seq, changes)
        order = replace(order, contract=replace(order.contract, con_id=con_id))
    return order


@lru_cache(maxsize=4096)
def shared_contract(contract: Contract) -> Contract:
    """The first contract seen equal to `contract`, like `sys.intern` for strings: the orders of an
    instrument share one object instead of holding a decoded copy each (memory). Contracts are frozen
    and compared by value, so sharing is invisible; the cache is bounded by instruments, not orders."""
    return contract


def name_instrument(state: State, contract: Contract, con_id: int, seq: int, changes: Changes) -> None:
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


def put(
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
    # its instrument or account became known, so its key may change (identity: fast, and enough here)
    moved = old is not None and (old.contract is not order.contract or old.account is not order.account)
    if not moved and fill is None and old is not None and old.status == order.status:
        return  # nothing a position depends on has changed
    order_key = _key(state, order)
    if moved and old is not None and order_key is not None:
        old_key = _key(state, old)
        if old_key is not None and old_key != order_key:
            _leave(state, old_key, order_key, order, seq, changes)
    if fill is not None and fill.position_key != order_key:
        _touch(state, fill.position_key, order, seq, changes, False, fill, prev)
        fill = prev = None
    if order_key is not None:
        _touch(state, order_key, order, seq, changes, True, fill, prev)


def _key(state: State, order: Order) -> str | None:
    """The account-wide position key of `order`; None while its instrument is unknown (first seen by
    its status)."""
    contract = order.contract
    if contract.con_id:
        return f"{order.account}|{contract.con_id}"
    if contract.symbol:
        return f"{order.account}|{positions.instrument_key(contract, state.con_ids)}"
    return None


def _leave(state: State, old_key: str, new_key: str, order: Order, seq: int, changes: Changes) -> None:
    """`order`'s key changed (its account became known; a conId is handled by `name_instrument`, which
    first moves every position of the symbol): what it contributed leaves the old key. A position left
    with nothing else (no quantity, no other working order) moves whole to the new key, reported as
    `Removed` and the new Position, like the symbol -> conId move; one still shared with other orders
    only loses this one from its working orders. Fills never move: executions always carry IB's account
    and conId, so they are keyed right from the start."""
    coid = order.client_order_id
    strategy = order.strategy_id
    for table, old_pkey, new_pkey, kind in (
        (state.positions, old_key, new_key, "p"),
        (state.strategy_positions, f"{strategy}|{old_key}", f"{strategy}|{new_key}", "s"),
    ):
        pos = table.get(old_pkey)
        if pos is None:
            continue
        if pos.quantity or any(c != coid for c in pos.orders):
            left = positions.update(pos, state.orders, seq, coid=coid, working=False)
            if left is not pos:
                table[old_pkey] = left
                changes[(kind, old_pkey)] = left
            continue
        del table[old_pkey]
        changes.pop((kind, old_pkey), None)
        for rkey, change in list(changes.items()):  # moved here by symbol in this event: follow on
            if isinstance(change, Removed) and change.moved_to == old_pkey:
                changes[rkey] = Removed(change.key, new_pkey)
        changes[("r", old_pkey)] = Removed(old_pkey, new_pkey)
        if new_pkey not in table:  # else the target keeps its own history; `_touch` adds the order
            contract = pos.contract if pos.contract.con_id == order.contract.con_id else order.contract
            target = replace(pos, key=new_pkey, account=order.account, contract=contract, updated_seq=seq)
            table[new_pkey] = target
            changes[(kind, new_pkey)] = target


def _touch(state: State, key: str, order: Order, seq: int, changes: Changes, member: bool, fill: Fill | None,
           prev: Fill | None) -> None:  # fmt: skip
    """One position key, account-wide and for the order's strategy: the fill, the order's membership
    among the working orders (when `member`), then the status. A new position is named after the order
    when it is a member, else after the fill."""
    status = order.status
    working = status in WORKING
    reason = "" if working else status
    coid = order.client_order_id if member else ""
    strategy = order.strategy_id
    signed = price = 0.0
    mult = 1.0
    if fill is not None and prev is None:
        signed = fill.shares if fill.side == "BUY" else -fill.shares
        price, mult = fill.price, positions.multiplier(fill.contract)
    orders = state.orders
    key_fills: Sequence[Fill] = _fills_of(state, key) if prev is not None else ()  # a correction: from these
    for table, pkey, strat in (
        (state.positions, key, ""),
        (state.strategy_positions, f"{strategy}|{key}", strategy),
    ):
        pos = before = table.get(pkey)
        if pos is None:
            if fill is None and not working:
                continue
            named = order if member else fill
            pos = positions.opened(pkey, named.account, named.contract, strat)  # type: ignore[union-attr]
        if prev is not None:
            fills = [f for f in key_fills if f.strategy_id == strat] if strat else key_fills
            pos = positions.rebuilt(pos, fills, seq)
        pos = positions.update(pos, orders, seq, reason, coid, working, signed, price, mult)
        if pos is not before:
            table[pkey] = pos
            changes[("s" if strat else "p", pkey)] = pos


def _fills_of(state: State, key: str) -> list[Fill]:
    """The fills of a position key, in the order they came (one scan of all fills, for a rare correction)."""
    return [f for f in state.fills.values() if f.position_key == key]


def add_amounts(
    state: State,
    account: str,
    seq: int,
    changes: Changes,
    commission: float,
    realized: float,
    broker_realized: float,
) -> None:
    """Commissions and realized P&L (deltas) into the account, recorded as a change when any."""
    old = state.accounts.get(account)
    new = accounts.with_amounts(old, account, seq, commission, realized, broker_realized)
    if new is not old:
        state.accounts[account] = new
        changes[("a", account)] = new
