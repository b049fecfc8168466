"""Joins: IB's identifiers to our orders, and IB's conIds to the symbols orders were requested by.

An IB callback names an order by permId first (stable across sessions), then by our orderRef, then by
this session's (clientId, orderId); IB's conId is learned per symbol (docs/state.md, "Identifiers").
"""

from __future__ import annotations

from functools import lru_cache

from msgspec.structs import replace

from events.schema import Contract
from oms.state.model import Order, OrderSide, State
from oms.state.tx import Tx


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


def known(state: State, order_id: int, perm_id: int, client_id: int, order_ref: str) -> Order | None:
    """The order an IB callback names (see `resolve`), or None: one this service has not seen."""
    coid = resolve(state, order_id, perm_id, client_id, order_ref)
    return state.orders[coid] if coid is not None else None


def bind(state: State, tx: Tx, order: Order, order_id: int, perm_id: int, client_id: int) -> Order:
    """Index IB's ids for `order`; one client order may acquire several permIds."""
    coid = order.client_order_id
    if order_id > 0 and (order_id != order.order_id or client_id != order.client_id):  # else indexed
        key = f"{client_id}:{order_id}"
        if key not in state.order_ids:
            tx.put(state.order_ids, key, coid)
        if not order.order_id:
            order = replace(order, order_id=order_id, client_id=client_id)
    if perm_id and perm_id not in order.perm_ids:
        tx.put(state.perm_ids, perm_id, coid)
        order = replace(order, perm_ids=(*order.perm_ids, perm_id))
    return order


def placed(order: Order, account: str, side: OrderSide) -> Order:
    """An order without an account (an external one first seen by its status) learns it, and its side,
    from the first openOrder or execution; `book.put` then moves what it had under the empty account."""
    if order.account or not account:
        return order
    return replace(order, account=account, side=order.side or side)


@lru_cache(maxsize=4096)
def shared_contract(contract: Contract) -> Contract:
    """The first contract seen equal to `contract`, like `sys.intern` for strings: the orders of an
    instrument share one object instead of holding a decoded copy each (memory). Contracts are frozen
    and compared by value, so sharing is invisible; the cache is bounded by instruments, not orders."""
    return contract


def instrument(state: State, tx: Tx, contract: Contract) -> Contract:
    """One shared Contract per conId (the first IB gave): fills hold it instead of one copy each."""
    if not contract.con_id:
        return contract
    known = state.instruments.get(contract.con_id)
    if known is None:
        tx.put(state.instruments, contract.con_id, contract)
        return contract
    return known
