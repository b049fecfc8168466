"""Order entry: how TWS answers placeOrder and cancelOrder.

- a contract the catalog does not know (or names ambiguously): error 200, and no order;
- a size off the instrument's increment: 10243 (a fractional stock quantity through the API) or 10250;
  a price off the tick: 110; the order is not accepted (a modify so refused leaves the order as it was);
- any other refusal: 201, then openOrder / orderStatus `Inactive` (ib_insync#554); on a modify, 201
  alone and the order works on with its previous parameters;
- what-if: openOrder with the margin in its order state; never stored, never executed;
- MKT and stop orders `PreSubmitted` (stops until the price elects them); an order whose session is
  closed for it (RTH only, or fully closed) `PreSubmitted` with warning 399 until the session opens.
"""

from __future__ import annotations

import msgspec

from adapters.tws_sim import hours
from adapters.tws_sim import messages as m
from adapters.tws_sim.account import commission_for, margin_change
from adapters.tws_sim.catalog import BY_CON_ID, CONTRACTS, Instrument, resolve
from adapters.tws_sim.delivery import apply_faults
from adapters.tws_sim.engine import Engine
from adapters.tws_sim.matching import DONE, WORKING, SimOrder, validate
from adapters.tws_sim.requests import PlaceOrder

NO_SECURITY = "No security definition has been found for the request"
OFF_TICK = "The price does not conform to the minimum price variation for this contract."
FRACTIONAL = (
    "Fractional-sized order cannot be placed via API. Please use desktop version to place this order."
)
FRACTIONAL_MODIFY = (
    "Fractional-sized order cannot be modified via API. Please use desktop version to revise this order."
)
OFF_SIZE = "The size does not conform to the minimum variation of for this contract"


def place(engine: Engine, client_id: int, req: PlaceOrder) -> None:
    existing = engine.book.get(client_id, req.order_id)
    if existing is not None and existing.status in DONE:
        engine.peers.error(client_id, req.order_id, 103, f"Duplicate order id {req.order_id}")
        return
    modify = existing is not None and existing.status in WORKING
    inst = resolve(req.contract)
    if inst is None:
        engine.peers.error(client_id, req.order_id, 200, NO_SECURITY)
        return
    refusal = _refusal(req, inst, modify)
    if refusal is not None:
        engine.peers.error(client_id, req.order_id, *refusal)
        return
    if req.what_if:
        what_if(engine, client_id, req, inst)
        return
    account = req.account or engine.config.accounts[0]
    order = SimOrder(
        order_id=req.order_id, client_id=client_id,
        perm_id=existing.perm_id if existing else engine.new_perm_id(), contract=CONTRACTS[inst.con_id],
        action=req.action, quantity=req.quantity, order_type=req.order_type,
        lmt_price=req.lmt_price, aux_price=req.aux_price, tif=req.tif, account=account,
        order_ref=req.order_ref, oca_group=req.oca_group, parent_id=req.parent_id, transmit=req.transmit,
        outside_rth=req.outside_rth, price_key=inst.key,
        bound=req.order_id > 0 or client_id != 0 or engine.peers.auto_binding(),
    )  # fmt: skip
    if existing is not None:
        order = msgspec.structs.replace(
            order, status=existing.status, filled=existing.filled, avg_fill_price=existing.avg_fill_price,
            last_fill_price=existing.last_fill_price, stop_triggered=existing.stop_triggered,
            day_end=existing.day_end, bound=existing.bound,
        )  # fmt: skip
    engine.advance_ids(client_id, req.order_id)
    faults = engine.dice.draw()
    reason = validate(order) or (None if account in engine.accounts else f"Unknown account {account!r}")
    if reason or "reject" in faults:
        text = f"Order rejected - reason:{reason or 'Simulated rejection (fault injection)'}"
        if modify:  # a refused modify: the order works on with its previous parameters
            engine.peers.error(client_id, req.order_id, 201, text)
        else:
            reject(engine, order, text)
        return
    if modify:
        engine.put(order)
        engine.deliver(order, engine.order_items(order))
        engine.match(order.price_key)
        return
    engine.put(order)
    if not order.transmit:
        return  # held in "TWS" until a transmitted order of its family arrives
    for held in [*engine.book.untransmitted_family(order), order]:
        acknowledge(engine, engine.book.orders[held.key], faults if held.key == order.key else frozenset())


def what_if(engine: Engine, client_id: int, req: PlaceOrder, inst: Instrument) -> None:
    """openOrder with the margin the order would need; nothing is stored, nothing executes."""
    account = req.account or engine.config.accounts[0]
    rates = engine.feeds.rates()
    price = engine.prices.price(inst.key)
    init = margin_change(inst.contract, req.quantity, price, rates.get(inst.currency, 1.0))
    equity = float(
        dict(((k, v) for k, v, c in engine.feeds.account_rows(account) if c == "USD"))["NetLiquidation"]
    )
    order = SimOrder(
        order_id=req.order_id, client_id=client_id, perm_id=0, contract=inst.contract, action=req.action,
        quantity=req.quantity, order_type=req.order_type, lmt_price=req.lmt_price,
        aux_price=req.aux_price, tif=req.tif, account=account, order_ref=req.order_ref,
        status="PreSubmitted", what_if=True,
    )  # fmt: skip
    commission = commission_for(
        inst.contract, req.quantity, price, engine.config.commission_per_share, engine.config.min_commission
    )
    for peer in engine.peers.of(client_id):
        peer.send(m.open_order(peer.version, order, None, commission, (init, init * 0.8, equity)))


def reject(engine: Engine, order: SimOrder, text: str) -> None:
    """201 with the reason, then openOrder / orderStatus Inactive (ib_insync#554)."""
    order = engine.put(msgspec.structs.replace(order, status="Inactive"))
    engine.peers.error(order.client_id, order.order_id, 201, text)
    engine.deliver(order, engine.order_items(order))


def acknowledge(engine: Engine, order: SimOrder, faults: frozenset[str]) -> None:
    inst = BY_CON_ID[order.contract.con_id]
    day_end = hours.day_end(inst.session, engine.clock(), order.outside_rth) if order.tif == "DAY" else 0.0
    open_now = engine.open_for(order)
    waiting = not engine.book.active(msgspec.structs.replace(order, status="Submitted"))
    stop = order.order_type in ("STP", "STP LMT")
    status = "PreSubmitted" if order.order_type == "MKT" or waiting or stop or not open_now else "Submitted"
    order = engine.put(msgspec.structs.replace(order, status=status, day_end=day_end))
    items = engine.order_items(order)
    if not open_now:
        items.append(("error", [order.order_id, 399, _held_warning(order, inst)]))
    if "info_10349" in faults:
        items.append(("error", [order.order_id, 10349, "Order TIF was set to DAY based on order preset."]))
    if "disconnect" in faults:
        engine.deliver(order, apply_faults(items, faults))
        for peer in engine.peers.of(order.client_id):
            engine.drop_peer(peer, 1100)
        engine.match(order.price_key, faults)
        return
    if order.tif == "IOC" and not _fillable_now(engine, order):
        cancelled = engine.put(msgspec.structs.replace(order, status="Cancelled"))
        engine.deliver(order, apply_faults(items + engine.order_items(cancelled), faults))
        return
    engine.match(order.price_key, faults, prefix={order.key: items})


def _fillable_now(engine: Engine, order: SimOrder) -> bool:
    price = engine.prices.price(order.price_key)
    return engine.link_up and any(
        o.key == order.key for o in engine.book.executable_now(order.price_key, price, engine.open_for)
    )


def cancel(engine: Engine, client_id: int, order_id: int) -> None:
    order = engine.book.get(client_id, order_id)
    if order is None:
        text = f"OrderId {order_id} that needs to be cancelled is not found."
        engine.peers.error(client_id, order_id, 10147, text)
    elif order.status == "Filled":
        text = f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: Filled."
        engine.peers.error(client_id, order_id, 10148, text)
    elif order.status in DONE:
        text = f"Cancel attempted when order is not in a cancellable state.  Order permId ={order.perm_id}"
        engine.peers.error(client_id, order_id, 161, text)
    else:
        for o in [order, *engine.book.children_of(order)]:
            engine.cancel_one(o, with_202=True)


def global_cancel(engine: Engine) -> None:
    for order in sorted(engine.book.working() + engine.book.held(), key=lambda o: o.perm_id):
        engine.cancel_one(order, with_202=True)


def _refusal(req: PlaceOrder, inst: Instrument, modify: bool) -> tuple[int, str] | None:
    """The error IB answers before it accepts an order: a size off the increment, a price off the tick."""
    if req.quantity > 0 and not inst.valid_size(req.quantity):
        if inst.sec_type == "STK":
            return (10242, FRACTIONAL_MODIFY) if modify else (10243, FRACTIONAL)
        return 10250, OFF_SIZE
    for price in (req.lmt_price, req.aux_price):
        if price is not None and price > 0 and not inst.on_tick(price):
            return 110, OFF_TICK
    return None


def _held_warning(order: SimOrder, inst: Instrument) -> str:
    return (
        f"Order Message:\n{order.action} {order.quantity:g} {inst.local_symbol or inst.symbol}\n"
        "Warning: your order will not be placed at the exchange until the market opens."
    )
