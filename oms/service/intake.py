"""Requests -> intents: pure decisions over the folded state (no I/O; the time is the caller's).

Each `decide_*` returns the event to log (the intent, or an OrderDenied for a risk denial) or the error to
reply with. Only new orders are ever logged as denied: a refused modify is only replied (an OrderDenied
for an existing client order id would read, in the log, as that order being rejected).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypeGuard

import msgspec
from msgspec import Struct

from events.schema import (
    CancelRequested,
    Contract,
    ModifyRequested,
    OrderDenied,
    OrderRequested,
)
from oms.protocol import CancelRequest, ErrorInfo, ModifyRequest, PlaceRequest
from oms.readable import plain
from oms.service.exposure import Tally, exposure, known_multiplier, standings
from oms.service.risk import (
    Denial,
    Described,
    Reference,
    RiskLimits,
    check_order,
    check_size,
    reduces,
    strategy_limits,
)
from oms.service.terms import OWN_PRICE, Terms, change_error, cutoff_error, modify_error, terms_error
from oms.state.model import TERMINAL, Order, State
from oms.state.money import exact
from oms.state.tombstones import taken

# IB's size increments where IB has not described the contract: whole units for stocks (IB refuses
# fractional stock quantities from the API), futures and options; forex in cents of the base currency.
DEFAULT_INCREMENTS = {"CASH": Decimal("0.01"), "CRYPTO": Decimal("0.00000001")}


MODIFY_TERMS = (
    "limit_price", "stop_price", "trailing_amount", "trailing_percent", "limit_offset", "touch_price",
    "good_till",
)  # fmt: skip


class Duplicate(Struct, frozen=True):
    """The client order id exists already: reply with that order, send nothing."""

    order: Order


def invalid(message: str, client_order_id: str | None = None) -> ErrorInfo:
    return ErrorInfo(code="invalid", message=message, client_order_id=client_order_id)


def unknown_contract(detail: str, client_order_id: str) -> ErrorInfo:
    """IB's error 200 for the order's contract, as IB words it, before anything is logged or sent."""
    return ErrorInfo(
        code="unknown_contract",
        message=f"No security definition has been found for the request (IB error 200): {detail}; "
        "nothing was sent",
        client_order_id=client_order_id,
    )


def denied(denial: Denial, client_order_id: str) -> ErrorInfo:
    return ErrorInfo(
        code="risk_denied", message=denial.reason, reason=denial.code, client_order_id=client_order_id
    )


def place_terms(req: PlaceRequest) -> Terms:
    return Terms(
        order_type=req.order_type, tif=req.tif, sec_type=req.contract.sec_type,
        limit_price=req.limit_price, stop_price=req.stop_price,
        trailing_amount=req.trailing_amount, trailing_percent=req.trailing_percent,
        limit_offset=req.limit_offset, touch_price=req.touch_price, good_till=req.good_till,
        oca_group=req.oca_group, oca_type=req.oca_type, algo=req.algo or "", algo_priority=req.algo_priority,
    )  # fmt: skip


def size_increment(contract: Contract, described: Described | None = None) -> Decimal:
    """IB's size increment from its contract details; where IB gave none, the usual one for the type."""
    if described is not None and described.size_increment > 0:
        return described.size_increment
    return DEFAULT_INCREMENTS.get(contract.sec_type, Decimal(1))


def quantity_error(quantity: Decimal, contract: Contract, described: Described | None = None) -> str | None:
    """Why `quantity` cannot be ordered for this instrument: not a multiple of its size increment. (Its
    bounds, whatever the instrument, were checked as the request was made: oms.protocol.check_bounds.)"""
    step = size_increment(contract, described)
    if quantity % step:
        return (
            f"quantity {plain(quantity)} is not a multiple of {plain(step)}, the size increment of "
            f"{contract.sec_type} {contract.symbol} (IB refuses fractional sizes for it)"
        )
    return None


def order_from_request(
    req: PlaceRequest,
    client_order_id: str,
    default_account: str,
    described: Described | None = None,
    now_ns: int | None = None,
) -> OrderRequested | ErrorInfo:
    """`now_ns`: the service's time, for IB's on-close cut-off (None: not checked)."""
    account = req.account or default_account
    if not account:
        return invalid("no account given and no default account configured", client_order_id)
    contract = req.contract.to_contract()
    problem = quantity_error(req.quantity, contract, described) or terms_error(place_terms(req))
    if problem is None and now_ns is not None:
        primary = described.primary_exchange if described is not None else contract.primary_exchange
        problem = cutoff_error(req.order_type, primary, now_ns)
    if problem:
        return invalid(problem, client_order_id)
    return OrderRequested(
        client_order_id=client_order_id,
        strategy_id=req.strategy_id,
        account=account,
        contract=contract,
        side=req.side,
        quantity=req.quantity,
        order_type=req.order_type,
        limit_price=req.limit_price,
        stop_price=req.stop_price,
        tif=req.tif,
        outside_rth=req.outside_rth,
        parent_client_order_id=req.parent_client_order_id,
        transmit=req.transmit,
        trailing_amount=req.trailing_amount,
        trailing_percent=req.trailing_percent,
        limit_offset=req.limit_offset,
        touch_price=req.touch_price,
        good_till=req.good_till,
        oca_group=req.oca_group,
        oca_type=(req.oca_type or 1) if req.oca_group else 0,
        algo=req.algo or "",
        algo_priority=(req.algo_priority or "Normal") if req.algo else "",
    )


def oca_error(state: State, order: OrderRequested) -> str | None:
    """Why the order may not join its OCA group: a working order of another strategy (or one placed
    outside this service) is in it, and IB would cancel or reduce that order when this one fills."""
    if not order.oca_group:
        return None
    if any(
        o.oca_group == order.oca_group
        and o.status not in TERMINAL
        and (o.external or o.strategy_id != order.strategy_id)
        for o in state.orders.values()
    ):
        return (
            f"oca_group {order.oca_group!r} is used by a working order of another strategy (or one "
            "placed outside this service): IB would cancel or reduce it when this order fills; nothing "
            "was sent: use a group of your own"
        )
    return None


def decide_place(
    req: PlaceRequest,
    state: State,
    limits: RiskLimits,
    default_account: str,
    client_order_id: str,
    reference: Reference | None,
    described: Described | None = None,
    tally: Tally | None = None,
    now_ns: int | None = None,
    own: RiskLimits | None = None,
) -> OrderRequested | OrderDenied | Duplicate | ErrorInfo:
    """`reference`: the price a market order is valued at; `described`: IB's contract details (the
    handler asks IB for both first); `tally`: the service's counts (none: every count is zero);
    `now_ns`: the service's time (None: IB's time rules are not checked); `own`: the strategy's limits
    where the caller keeps them (else made from `limits`)."""
    existing = state.orders.get(client_order_id)
    order = order_from_request(req, client_order_id, default_account, described, now_ns)
    if existing is not None:
        return duplicate(existing, order)
    if taken(state, client_order_id):
        return ErrorInfo(
            code="duplicate_client_order_id",
            message=f"client order id {client_order_id!r} belongs to a finished order retired to history "
            "(oms replay --order finds it); nothing was sent: use a new client order id",
            client_order_id=client_order_id,
        )
    if isinstance(order, ErrorInfo):
        return order
    if problem := oca_error(state, order):
        return invalid(problem, client_order_id)
    parent = order.parent_client_order_id
    if parent is not None and parent not in state.orders:
        return ErrorInfo(code="unknown_order", message=f"no parent order {parent!r}", client_order_id=parent)
    if order.order_type == "MKT" and reference is not None:
        order = msgspec.structs.replace(
            order, reference_price=float(reference.price), reference_source=reference.source
        )
    if own is None:
        own = strategy_limits(limits, order.strategy_id)
    denial = check_order(order, own, exposure(state, order, reference, described, tally, limits, own), limits)
    if denial is not None:
        return OrderDenied(
            client_order_id=client_order_id,
            code=denial.code,
            reason=denial.reason,
            strategy_id=order.strategy_id,
            request=order,
        )
    return order


def duplicate(existing: Order, request: OrderRequested | ErrorInfo) -> Duplicate | ErrorInfo:
    """A retry of the same order (same parameters) gets the existing order back and sends nothing; the
    same client order id with other parameters is refused, saying what differs."""
    differs = [] if isinstance(request, ErrorInfo) else differences(existing, request)
    if not differs:
        return Duplicate(existing)
    return ErrorInfo(
        code="duplicate_client_order_id",
        message=f"client order id {existing.client_order_id!r} is taken by an order with other parameters "
        f"({'; '.join(differs)}); nothing was sent: use a new client order id",
        client_order_id=existing.client_order_id,
    )


def differences(order: Order, request: OrderRequested) -> list[str]:
    """`field: existing value, not requested value` for every parameter a retry must repeat."""

    def same(a: object, b: object) -> bool:
        if _number(a) and _number(b):
            return exact(a) == exact(b)  # floats or Decimals, exactly
        return a == b

    pairs = {
        "strategy_id": (order.strategy_id, request.strategy_id),
        "account": (order.account, request.account),
        "symbol": (order.contract.symbol, request.contract.symbol),
        "sec_type": (order.contract.sec_type, request.contract.sec_type),
        "currency": (order.contract.currency, request.contract.currency),
        "side": (order.side, request.side),
        "quantity": (order.quantity, request.quantity),
        "order_type": (order.order_type, request.order_type),
        "limit_price": (order.limit_price, request.limit_price),
        "stop_price": (order.stop_price, request.stop_price),
        "tif": (order.tif, request.tif),
        "outside_rth": (order.outside_rth, request.outside_rth),
        "parent_client_order_id": (order.parent, request.parent_client_order_id),
        "trailing_amount": (order.trailing_amount, request.trailing_amount),
        "trailing_percent": (order.trailing_percent, request.trailing_percent),
        "limit_offset": (order.limit_offset, request.limit_offset),
        "touch_price": (order.touch_price, request.touch_price),
        "good_till": (order.good_till, request.good_till),
        "oca_group": (order.oca_group, request.oca_group),
        "oca_type": (order.oca_type, request.oca_type),
        "algo": (order.algo, request.algo),
        "algo_priority": (order.algo_priority, request.algo_priority),
    }
    if request.contract.con_id and order.contract.con_id:
        pairs["con_id"] = (order.contract.con_id, request.contract.con_id)
    return [
        f"{name}: {_show(had)}, not {_show(wanted)}"
        for name, (had, wanted) in pairs.items()
        if not same(had, wanted)
    ]


def _number(value: object) -> TypeGuard[int | float | Decimal]:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _show(value: object) -> str:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return plain(value)
    return "none" if value is None else str(value)


def _own_order(state: State, client_order_id: str) -> Order | ErrorInfo:
    order = state.orders.get(client_order_id)
    if order is None:
        return ErrorInfo(
            code="unknown_order", message=f"no order {client_order_id!r}", client_order_id=client_order_id
        )
    if order.status in TERMINAL:
        return ErrorInfo(
            code="order_done", message=f"order is {order.status}", client_order_id=client_order_id
        )
    if order.external:
        return invalid(
            "an external order (placed outside this service) cannot be changed here", client_order_id
        )
    return order


def decide_modify(
    req: ModifyRequest, state: State, limits: RiskLimits, now_ns: int | None = None
) -> ModifyRequested | ErrorInfo:
    """`now_ns`: the service's time (None: IB's time rules are not checked)."""
    order = _own_order(state, req.client_order_id)
    if isinstance(order, ErrorInfo):
        return order
    if now_ns is not None and (problem := change_error(order.order_type, now_ns, cancel=False)):
        return invalid(problem, req.client_order_id)
    changes = {name for name in MODIFY_TERMS if getattr(req, name) not in (None, "")}
    if req.quantity is None and not changes:
        return invalid(
            "modify needs at least one of quantity, limit_price, stop_price, trailing_amount, "
            "trailing_percent, limit_offset, touch_price, good_till",
            req.client_order_id,
        )
    limit = req.limit_price if req.limit_price is not None else order.limit_price
    stop = req.stop_price if req.stop_price is not None else order.stop_price
    terms = {"trailing" if c.startswith("trailing_") else c for c in changes}
    problem = modify_error(order.order_type, order.tif, terms)
    if problem:
        return invalid(problem, req.client_order_id)
    if req.quantity is not None and (problem := quantity_error(req.quantity, order.contract)):
        return invalid(problem, req.client_order_id)
    quantity = req.quantity if req.quantity is not None else order.quantity
    touch = req.touch_price if req.touch_price is not None else order.touch_price
    price = limit if order.order_type in ("LMT", "STP LMT") else stop
    # the other types by the price they have: a limit, a touch price, or where IB has the trailing stop
    if order.order_type not in OWN_PRICE:
        price = next((p for p in (limit, touch, stop, order.trail_stop_price) if p is not None), None)
    value = exact(price) if price is not None else None
    denial = check_size(
        quantity,
        value,
        known_multiplier(state, order.contract),
        strategy_limits(limits, order.strategy_id),
        order.contract.symbol,
    )
    if denial is None and req.quantity is not None and req.quantity > order.quantity:
        denial = _killed_more(state, order, req.quantity - order.quantity)
    if denial is not None:
        return denied(denial, req.client_order_id)
    return ModifyRequested(
        client_order_id=req.client_order_id,
        quantity=req.quantity,
        limit_price=req.limit_price,
        stop_price=req.stop_price,
        trailing_amount=req.trailing_amount,
        trailing_percent=req.trailing_percent,
        limit_offset=req.limit_offset,
        touch_price=req.touch_price,
        good_till=req.good_till,
    )


def _killed_more(state: State, order: Order, more: Decimal) -> Denial | None:
    """A modify that raises an order's quantity adds `more`: while the order's strategy or account is
    killed, only if it still just brings the position nearer to flat."""
    if not state.kill_scopes:
        return None
    names = (f"strategy {order.strategy_id}", f"account {order.account}")
    found = standings(state, order.strategy_id, order.account, order.contract)
    for name, standing in zip(names, found, strict=True):
        if standing.killed and not reduces(order.side, more, standing):
            return Denial(standing.killed, f"{name}'s kill switch is engaged ({standing.killed}): the "
                          "order may grow only as far as it reduces the position")  # fmt: skip
    return None


def decide_cancel(req: CancelRequest, state: State, now_ns: int | None = None) -> CancelRequested | ErrorInfo:
    """`now_ns`: the service's time (None: IB's time rules are not checked)."""
    order = _own_order(state, req.client_order_id)
    if isinstance(order, ErrorInfo):
        return order
    if now_ns is not None and (problem := change_error(order.order_type, now_ns, cancel=True)):
        return invalid(problem, req.client_order_id)
    return CancelRequested(client_order_id=req.client_order_id, reason="client")


def cancellable(state: State, strategy_id: str | None = None, account: str | None = None) -> list[Order]:
    """Our working orders (of one strategy, of one account), not already being cancelled."""
    return [
        o
        for o in state.orders.values()
        if not o.external
        and o.status not in TERMINAL
        and o.status != "pending_cancel"
        and (strategy_id is None or o.strategy_id == strategy_id)
        and (account is None or o.account == account)
    ]


def expired(state: State, now_ns: int, max_age_s: float) -> list[Order]:
    """Working orders created more than `max_age_s` ago (the max-age auto cancel)."""
    cutoff = now_ns - int(max_age_s * 1e9)
    return [o for o in cancellable(state) if o.created_ts and o.created_ts < cutoff]


def unsent(state: State, before_seq: int) -> list[Order]:
    """Orders logged before `before_seq` that never got an IB orderId: the service stopped between the
    intent and the send. Never re-sent automatically (IB might have them after all)."""
    return [
        o
        for o in state.orders.values()
        if not o.external and o.status == "pending" and not o.order_id and o.created_seq < before_seq
    ]
