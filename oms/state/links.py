"""Identifiers: IB's ids joined to our orders, and IB's conIds to the symbols orders were requested by.

An IB callback names an order by permId first (stable across sessions), then by our orderRef, then by
this session's (clientId, orderId); IB's conId is learned per symbol, and one Contract is kept per conId
(docs/state.md, "Identifiers"); a position is keyed by its account and instrument (`position_key`).
This module owns every identifier map (`order_ids`, `perm_ids`, `con_ids`, `instruments`) and writes
them only into the step's plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Literal

from msgspec.structs import replace

from events.schema import Contract, ExecutionReported, symbol_key
from oms.state.model import EXTERNAL_STRATEGY, Order, OrderSide, State
from oms.state.money import ZERO
from oms.state.plan import Link, Plan
from oms.state.positions import rekeyed


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


def instrument_key(c: Contract, con_ids: Mapping[str, int]) -> str:
    """The conId when known (from the contract or learned for its symbol), else the symbol key."""
    if c.con_id:
        return str(c.con_id)
    sym = symbol_key(c)
    con_id = con_ids.get(sym)
    return str(con_id) if con_id else sym


def position_key(account: str, contract: Contract, con_ids: Mapping[str, int]) -> str:
    """The account-wide key of a position: `account|conId`, or `account|symbol key` until IB names it."""
    return f"{account}|{instrument_key(contract, con_ids)}"


def keyed(plan: Plan, account: str, contract: Contract) -> str:
    """`position_key` with the conIds this step has learned."""
    if contract.con_id:
        return f"{account}|{contract.con_id}"
    sym = symbol_key(contract)
    learned = plan.w.get(("con_ids", sym), plan.state.con_ids.get(sym))
    return f"{account}|{learned or sym}"


def key_of(plan: Plan, order: Order) -> str | None:
    """The account-wide position key of `order`; None while its instrument is unknown (an external order
    first seen by its status)."""
    contract = order.contract
    if not (contract.con_id or contract.symbol):
        return None
    return keyed(plan, order.account, contract)


def of_execution(plan: Plan, ev: ExecutionReported) -> Link:
    """Whom `ev` is for, with what it teaches about its order's identity (index writes into the plan).
    An order this state does not know becomes an external one (`old` None); whether it is a retired
    order's is for its fill to tell (`fills.from_execution`)."""
    old = known(plan.state, ev.order_id, ev.perm_id, ev.client_id, ev.order_ref)
    side = ib_side(ev.side)
    if old is None:
        ids = (ev.client_id, ev.order_id, ev.perm_id)
        order = external(ids, ev.account, ev.contract, side, ZERO, plan.seq, plan.ts)
    else:
        order = placed(old, ev.account, side)
    order = bind(plan, order, ev.order_id, ev.perm_id, ev.client_id)
    order, named = learn(plan, order, ev.contract, old is None)
    contract = instrument(plan, ev.contract)
    key = keyed(plan, ev.account, contract)
    same = order.account == ev.account and order.contract.con_id == contract.con_id != 0
    order_key = key if same else key_of(plan, order)
    moved = rekeyed(old, order)
    old_key = key_of(plan, old) if moved and old is not None else None
    return Link(old, order, contract, side, key, order_key, moved, old_key, tuple(named))


def of_change(plan: Plan, old: Order | None, order: Order, moved: bool) -> Link:
    """An order's change from `old` as a link: its keys, before too when it `moved` (`rekeyed`: its
    account or instrument became known, as for an order IB first reported by its status)."""
    order_key = key_of(plan, order)
    old_key = key_of(plan, old) if moved and old is not None else None
    return Link(old, order, order.contract, None, order_key or "", order_key, moved, old_key, ())


def ib_side(side: str) -> Literal["BUY", "SELL"]:
    """Executions say BOT/SLD, orders BUY/SELL (SSHORT is a sell)."""
    return "BUY" if side in ("BUY", "BOT") else "SELL"


def external_id(client_id: int, order_id: int, perm_id: int) -> str:
    """A stable id for an order we did not place: by permId when IB gave one, else by (clientId, orderId).
    Once given, an external order keeps its id even after its permId becomes known."""
    return f"ext:perm:{perm_id}" if perm_id else f"ext:{client_id}:{order_id}"


def external(ids: tuple[int, int, int], account: str, contract: Contract, side: OrderSide, quantity: Decimal,
             seq: int, ts: int) -> Order:  # fmt: skip
    """An order we did not place, first seen by a callback with IB's `ids` (clientId, orderId, permId):
    named by them, working (IB reports it), its quantity what IB said (0 when unknown)."""
    return Order(
        client_order_id=external_id(*ids),
        strategy_id=EXTERNAL_STRATEGY,
        account=account,
        contract=contract,
        side=side,
        quantity=quantity,
        remaining=quantity,
        status="submitted",
        external=True,
        created_seq=seq,
        created_ts=ts,
        updated_seq=seq,
        updated_ts=ts,
    )


def bind(plan: Plan, order: Order, order_id: int, perm_id: int, client_id: int) -> Order:
    """Index IB's ids for `order`; one client order may acquire several permIds."""
    coid = order.client_order_id
    if order_id > 0 and (order_id != order.order_id or client_id != order.client_id):  # else indexed
        key = f"{client_id}:{order_id}"
        if plan.w.get(("order_ids", key), plan.state.order_ids.get(key)) is None:
            plan.w["order_ids", key] = coid
        if not order.order_id:
            order = replace(order, order_id=order_id, client_id=client_id)
    if perm_id and perm_id not in order.perm_ids:
        plan.w["perm_ids", perm_id] = coid
        order = replace(order, perm_ids=(*order.perm_ids, perm_id))
    return order


def sent(plan: Plan, order: Order, order_id: int, client_id: int) -> None:
    """OrderSent: this session's orderId is the order's, whatever it named before (this session wins)."""
    plan.w["order_ids", f"{client_id}:{order_id}"] = order.client_order_id


def placed(order: Order, account: str, side: OrderSide) -> Order:
    """An order without an account (an external one first seen by its status) learns it, and its side,
    from the first openOrder or execution; its positions then move (`positions.left`)."""
    if order.account or not account:
        return order
    return replace(order, account=account, side=order.side or side)


def learn(plan: Plan, order: Order, contract: Contract, new: bool) -> tuple[Order, list[str]]:
    """IB named the instrument of `order`: the order joined to its conId, and the symbol keys newly
    named by it (their positions move to the conId: `positions.renamed`)."""
    con_id = contract.con_id
    if con_id and con_id == order.contract.con_id and not new:
        return order, []  # already joined
    if not order.contract.symbol:  # an external order first seen by its status
        order = replace(order, contract=contract)
    if not con_id:
        return order, []
    syms = [symbol_key(contract)]
    if not order.contract.con_id:
        syms.append(symbol_key(order.contract))
    named = [sym for sym in dict.fromkeys(syms) if _name(plan, sym, con_id)]
    if not order.contract.con_id:
        order = replace(order, contract=replace(order.contract, con_id=con_id))
    return order, named


def name(plan: Plan, contract: Contract) -> str | None:
    """Remember the conId of the symbol `contract` names: the symbol key when it is news, else None."""
    sym = symbol_key(contract)
    return sym if _name(plan, sym, contract.con_id) else None


def _name(plan: Plan, sym: str, con_id: int) -> bool:
    if plan.w.get(("con_ids", sym), plan.state.con_ids.get(sym)) == con_id:
        return False
    plan.w["con_ids", sym] = con_id
    return True


def instrument(plan: Plan, contract: Contract) -> Contract:
    """One shared Contract per conId (the first IB gave): fills hold it instead of one copy each."""
    if not contract.con_id:
        return contract
    con_id = contract.con_id
    known_one = plan.w.get(("instruments", con_id), plan.state.instruments.get(con_id))
    if known_one is None:
        plan.w["instruments", con_id] = contract
        return contract
    return known_one
