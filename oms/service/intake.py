"""Requests -> intents: pure decisions over the folded state (no I/O, no clock).

Each `decide_*` returns the event to log (the intent, or an OrderDenied for a risk denial) or the error to
reply with. Only new orders are ever logged as denied: a refused modify is only replied (an OrderDenied
for an existing client order id would read, in the log, as that order being rejected).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from msgspec import Struct

from events.schema import CancelRequested, Contract, ModifyRequested, OrderDenied, OrderRequested
from oms.protocol import CancelRequest, ErrorInfo, ModifyRequest, PlaceRequest
from oms.readable import plain
from oms.service.risk import Denial, Exposure, RiskLimits, check_order, check_size
from oms.state.model import TERMINAL, Order, Position, State
from oms.state.positions import instrument_key, multiplier

REQUIRED_PRICES = {"MKT": (False, False), "LMT": (True, False), "STP": (False, True), "STP LMT": (True, True)}


class Duplicate(Struct, frozen=True):
    """The client order id exists already: reply with that order, send nothing."""

    order: Order


def invalid(message: str, client_order_id: str | None = None) -> ErrorInfo:
    return ErrorInfo(code="invalid", message=message, client_order_id=client_order_id)


def denied(denial: Denial, client_order_id: str) -> ErrorInfo:
    return ErrorInfo(
        code="risk_denied", message=denial.reason, reason=denial.code, client_order_id=client_order_id
    )


def _prices_error(order_type: str, limit: float | None, stop: float | None) -> str | None:
    need_limit, need_stop = REQUIRED_PRICES[order_type]
    if need_limit != (limit is not None):
        return f"{order_type} order {'needs' if need_limit else 'takes no'} limit_price"
    if need_stop != (stop is not None):
        return f"{order_type} order {'needs' if need_stop else 'takes no'} stop_price"
    return None


def order_from_request(
    req: PlaceRequest, client_order_id: str, default_account: str
) -> OrderRequested | ErrorInfo:
    account = req.account or default_account
    if not account:
        return invalid("no account given and no default account configured", client_order_id)
    problem = _prices_error(req.order_type, req.limit_price, req.stop_price)
    if problem:
        return invalid(problem, client_order_id)
    return OrderRequested(
        client_order_id=client_order_id,
        strategy_id=req.strategy_id,
        account=account,
        contract=req.contract.to_contract(),
        side=req.side,
        quantity=req.quantity,
        order_type=req.order_type,
        limit_price=req.limit_price,
        stop_price=req.stop_price,
        tif=req.tif,
        outside_rth=req.outside_rth,
        parent_client_order_id=req.parent_client_order_id,
        transmit=req.transmit,
    )


def decide_place(
    req: PlaceRequest,
    state: State,
    limits: RiskLimits,
    default_account: str,
    client_order_id: str,
    last_prices: Mapping[str, float],
) -> OrderRequested | OrderDenied | Duplicate | ErrorInfo:
    existing = state.orders.get(client_order_id)
    order = order_from_request(req, client_order_id, default_account)
    if existing is not None:
        return duplicate(existing, order)
    if isinstance(order, ErrorInfo):
        return order
    parent = order.parent_client_order_id
    if parent is not None and parent not in state.orders:
        return ErrorInfo(code="unknown_order", message=f"no parent order {parent!r}", client_order_id=parent)
    denial = check_order(order, limits, exposure(state, order, last_prices, limits.max_position is not None))
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
            return Decimal(str(a)) == Decimal(str(b))  # floats or Decimals, exactly
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
    }
    if request.contract.con_id and order.contract.con_id:
        pairs["con_id"] = (order.contract.con_id, request.contract.con_id)
    return [
        f"{name}: {_show(had)}, not {_show(wanted)}"
        for name, (had, wanted) in pairs.items()
        if not same(had, wanted)
    ]


def _number(value: object) -> bool:
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


def decide_modify(req: ModifyRequest, state: State, limits: RiskLimits) -> ModifyRequested | ErrorInfo:
    order = _own_order(state, req.client_order_id)
    if isinstance(order, ErrorInfo):
        return order
    if req.quantity is None and req.limit_price is None and req.stop_price is None:
        return invalid("modify needs at least one of quantity, limit_price, stop_price", req.client_order_id)
    limit = req.limit_price if req.limit_price is not None else order.limit_price
    stop = req.stop_price if req.stop_price is not None else order.stop_price
    problem = _prices_error(order.order_type, limit, stop) if order.order_type in REQUIRED_PRICES else None
    if problem:
        return invalid(problem, req.client_order_id)
    quantity = req.quantity if req.quantity is not None else order.quantity
    price = limit if order.order_type in ("LMT", "STP LMT") else stop
    denial = check_size(quantity, price, multiplier(order.contract), limits)
    if denial is not None:
        return denied(denial, req.client_order_id)
    return ModifyRequested(
        client_order_id=req.client_order_id,
        quantity=req.quantity,
        limit_price=req.limit_price,
        stop_price=req.stop_price,
    )


def decide_cancel(req: CancelRequest, state: State) -> CancelRequested | ErrorInfo:
    order = _own_order(state, req.client_order_id)
    if isinstance(order, ErrorInfo):
        return order
    return CancelRequested(client_order_id=req.client_order_id, reason="client")


def cancellable(state: State, strategy_id: str | None = None) -> list[Order]:
    """Our working orders (of one strategy), not already being cancelled."""
    return [
        o
        for o in state.orders.values()
        if not o.external
        and o.status not in TERMINAL
        and o.status != "pending_cancel"
        and (strategy_id is None or o.strategy_id == strategy_id)
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


def remaining(order: Order) -> float:
    return max(order.quantity - order.filled, 0.0)


def exposure(
    state: State, order: OrderRequested, last_prices: Mapping[str, float], with_working: bool = True
) -> Exposure:
    """What the risk checks need; summing the working orders (O(working orders on the instrument)) is
    skipped when no position limit needs it."""
    position = find_position(state, order.account, order.contract)
    working = {"BUY": 0.0, "SELL": 0.0}
    for coid in position.orders if position is not None and with_working else ():
        other = state.orders.get(coid)
        if other is not None and other.status not in TERMINAL and other.side in working:
            working[other.side] += remaining(other)
    return Exposure(
        position=position.quantity if position is not None else 0.0,
        working_buy=working["BUY"],
        working_sell=working["SELL"],
        last_price=last_prices.get(order.contract.symbol),
        kill_switch=state.kill_switch,
    )


def find_position(state: State, account: str, contract: Contract) -> Position | None:
    """The account position of a contract (keyed like the fold keys it: by conId once known)."""
    return state.positions.get(f"{account}|{instrument_key(contract, state.con_ids)}")
