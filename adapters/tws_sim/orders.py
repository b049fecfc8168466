"""Order entry: how TWS answers placeOrder and cancelOrder.

- a contract the catalog does not know (or names ambiguously): error 200, and no order;
- a size off the instrument's increment: 10243 (a fractional stock quantity through the API) or 10250;
  a price off the tick: 110; the order is not accepted (a modify so refused leaves the order as it was);
- any other refusal: 201, then openOrder / orderStatus `Inactive` (ib_insync#554); on a modify, 201
  alone and the order works on with its previous parameters;
- what-if: openOrder with the margin in its order state; never stored, never executed;
- MKT and conditional orders `PreSubmitted` (until the price elects them), auction orders (MOC, LOC,
  OPG) `PreSubmitted` until their auction; an order whose session is closed for it (RTH only, or fully
  closed) `PreSubmitted` with warning 399 until the session opens;
- contract validation first: no exchange or no currency is error 321 before any 200 (as TWS answers;
  ib_async's live tests place such orders to see it);
- by time and instrument (`timing`): MOC / LOC only where the instrument has a closing auction (else
  387) and before the exchange's cut-off; OPG only before the opening auction;
- IOC and FOK orders that cannot trade at once are cancelled, and so is an order joining an OCA group
  (type 1) that has executed already; a GTD order ends at its time.
"""

from __future__ import annotations

import msgspec

from adapters.tws_sim import hours, timing
from adapters.tws_sim import messages as m
from adapters.tws_sim.account import commission_for, margin_change
from adapters.tws_sim.catalog import BY_CON_ID, CONTRACTS, Instrument, resolve
from adapters.tws_sim.delivery import apply_faults
from adapters.tws_sim.engine import Engine
from adapters.tws_sim.matching import DONE, WORKING, SimOrder, validate
from adapters.tws_sim.requests import PlaceOrder
from adapters.tws_sim.triggers import CONDITIONAL, ON_CLOSE, TRAILING, stop_terms, trailed_stop

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
    invalid = _contract_invalid(req)
    if invalid is not None:
        engine.peers.error(client_id, req.order_id, 321, invalid)
        return
    inst = resolve(req.contract)
    if inst is None:
        engine.peers.error(client_id, req.order_id, 200, NO_SECURITY)
        return
    refusal = _refusal(req, inst, modify) or timing.refusal(
        req, inst, engine.clock(), modify, engine.config.tws_time_zone
    )
    if refusal is not None and refusal[0] != 201:
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
        trigger_method=req.trigger_method, good_till=req.good_till, oca_type=req.oca_type,
        trail_stop_price=req.trail_stop_price, trailing_percent=req.trailing_percent,
        lmt_price_offset=req.lmt_price_offset, algo=req.algo, algo_params=req.algo_params,
    )  # fmt: skip
    if existing is not None:
        order = msgspec.structs.replace(
            order, status=existing.status, filled=existing.filled, avg_fill_price=existing.avg_fill_price,
            last_fill_price=existing.last_fill_price, stop_triggered=existing.stop_triggered,
            day_end=existing.day_end, bound=existing.bound,
            trail_stop_price=_kept_stop(existing, order),
        )  # fmt: skip
        if order.tif == "GTD" and order.good_till != existing.good_till:
            order = msgspec.structs.replace(
                order, day_end=_good_till_epoch(engine, order) or existing.day_end
            )
    engine.advance_ids(client_id, req.order_id)
    faults = engine.dice.draw()
    reason = (
        validate(order)
        or (refusal[1] if refusal else None)
        or (None if account in engine.accounts else f"Unknown account {account!r}")
    )
    if reason or "reject" in faults:
        text = f"Order rejected - reason:{reason or 'Simulated rejection (fault injection)'}"
        if modify:  # a refused modify: the order works on with its previous parameters
            engine.peers.error(client_id, req.order_id, 201, text)
        else:
            reject(engine, order, text)
        return
    if modify:
        order = engine.put(_with_stop(engine, order))
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
    day_end = 0.0
    if order.tif == "DAY":
        day_end = hours.day_end(inst.session, engine.clock(), order.outside_rth)
    elif order.tif == "GTD":
        day_end = _good_till_epoch(engine, order) or 0.0
    open_now = engine.open_for(order)
    waiting = not engine.book.active(msgspec.structs.replace(order, status="Submitted"))
    held = order.order_type in CONDITIONAL or order.order_type in ON_CLOSE or order.tif == "OPG"
    status = "PreSubmitted" if order.order_type == "MKT" or waiting or held or not open_now else "Submitted"
    order = engine.put(_with_stop(engine, msgspec.structs.replace(order, status=status, day_end=day_end)))
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
    late = bool(order.oca_group) and (order.account, order.oca_group) in engine.oca_done
    if late or (order.tif in ("IOC", "FOK") and not _fillable_now(engine, order)):
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
    elif order.status in DONE or timing.cancel_refused(order, engine.clock()):
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


def _contract_invalid(req: PlaceOrder) -> str | None:
    """TWS validates the request before it looks the contract up: an order (or what-if) naming no
    exchange, or no currency where no conId names the contract, is error 321 (ib_async's live tests see
    321 first; its wrapper lists 321 among the codes that leave a trade alive). A conId with its
    exchange is enough (IB's contract docs)."""
    if not req.contract.exchange:
        return "Error validating request.-'bN' : cause - Missing order exchange"
    if not req.contract.currency and not req.contract.con_id:
        return "Error validating request.-'bN' : cause - Missing currency"
    return None


def _with_stop(engine: Engine, order: SimOrder) -> SimOrder:
    """A trailing order's stop: where the client put it (trailStopPrice), else trailed from the price. A
    TRAIL LIMIT given a limit price instead of an offset keeps the distance between them as its offset
    (IB: the limit moves with the stop)."""
    if order.order_type not in TRAILING:
        return order
    tick = BY_CON_ID[order.contract.con_id].min_tick
    stop = order.trail_stop_price
    if stop is None:
        stop = trailed_stop(order, engine.prices.price(order.price_key), tick)
    if order.order_type == "TRAIL LIMIT" and order.lmt_price_offset is None and order.lmt_price:
        order = msgspec.structs.replace(order, lmt_price_offset=round(abs(stop - order.lmt_price), 10))
    return msgspec.structs.replace(order, **stop_terms(order, stop, tick))


def _kept_stop(existing: SimOrder, order: SimOrder) -> float | None:
    """A modify keeps the stop IB has moved unless it names a new one."""
    return order.trail_stop_price if order.trail_stop_price is not None else existing.trail_stop_price


def _good_till_epoch(engine: Engine, order: SimOrder) -> float | None:
    return timing.good_till_epoch(order.good_till, engine.config.tws_time_zone)


def _held_warning(order: SimOrder, inst: Instrument) -> str:
    return (
        f"Order Message:\n{order.action} {order.quantity:g} {inst.local_symbol or inst.symbol}\n"
        "Warning: your order will not be placed at the exchange until the market opens."
    )
