"""Order transitions as data: a (status, trigger) -> status table, and the pure functions that apply it.

A trigger is what an event means for an order once IB's words are normalized (an IB status string, an
error code, a fill). Triggers are a `Literal`, so a misspelled one is a type error. A pair missing from
the table changes nothing: repeated, stale or out-of-order callbacks are idempotent by construction,
which is what IB's "no ordering between openOrder, orderStatus and execDetails" needs. Quantities never
come from the table: they come from executions.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from msgspec.structs import replace

from events.schema import (
    BrokerError,
    Contract,
    ModifyRequested,
    OpenOrderReported,
    OrderDenied,
    OrderRequested,
)
from oms.state.fills import Executed
from oms.state.model import TERMINAL, Order, OrderStatus
from oms.state.money import ZERO, Money, add, exact, rounded

Trigger = Literal[
    "ack",  # IB has the order working (PreSubmitted, Submitted, Filled, a locate hold)
    "fill_part",  # executions cover part of the quantity
    "fill_all",  # ... all of it
    "fill_none",  # ... none of it (a correction took a fill back)
    "cancel_req",  # we asked to cancel, or IB says PendingCancel
    "cancel_failed",  # IB refused the cancel (10147, 10148, 161)
    "cancelled",
    "rejected",
    "inactive",
]
Target = OrderStatus | Literal["previous"]  # "previous": the status before the cancel request

# fmt: off
_ENDS: dict[Trigger, Target] = {"cancelled": "cancelled", "rejected": "rejected", "inactive": "inactive"}
_LATE_FILLS: dict[Trigger, Target] = {"fill_part": "partially_filled", "fill_all": "filled"}

ORDER_STATE_TABLE: dict[OrderStatus, dict[Trigger, Target]] = {
    # status: {trigger: next status}
    "pending":          {"ack": "submitted", **_LATE_FILLS, "cancel_req": "pending_cancel", **_ENDS},
    "submitted":        {**_LATE_FILLS, "cancel_req": "pending_cancel", **_ENDS},
    "partially_filled": {"fill_none": "submitted", "fill_all": "filled", "cancel_req": "pending_cancel",
                         **_ENDS},
    "pending_cancel":   {"fill_all": "filled", "cancel_failed": "previous", **_ENDS},
    # terminal: only executions (late fills, corrections that change the filled quantity) move them
    "filled":           {"fill_part": "partially_filled", "fill_none": "submitted"},
    "cancelled":        _LATE_FILLS,
    "rejected":         _LATE_FILLS,
    "inactive":         _LATE_FILLS,
}
# fmt: on

# IB's status strings (orderStatus and openOrder's orderState). `Filled` is an acknowledgement: fills
# come from executions (or, after a reconciliation, an inferred fill). PendingSubmit and ApiPending mean
# "sent, not yet accepted": the order stays pending, so an error refusing it can still end it.
IB_STATUS_TRIGGERS: dict[str, Trigger] = {
    "PreSubmitted": "ack",
    "Submitted": "ack",
    "Filled": "ack",
    "PendingCancel": "cancel_req",
    "ApiCancelled": "cancelled",
    "Cancelled": "cancelled",
    "Inactive": "inactive",
}

REJECT_CODES = frozenset({201, 203, 10289, 10293})
CANCEL_CODES = frozenset({202})
CANCEL_FAILED_CODES = frozenset({10147, 10148, 161})
NOT_FOUND_CODE = 10147  # the cancel's order is unknown to IB
# IB's notices: nothing about the order changes, nothing is recorded on it.
INFO_CODES = frozenset({10349, *range(2100, 2200)})
INFO_CLASSES = frozenset({"information", "connectivity"})
# Order warnings: the order is held or adjusted and stays alive; recorded on the order, never an end.
WARNING_CODES = frozenset({399, 404, 165, 10167})
# A warning for a working order, a refusal of a new order or of a modify (price off the tick).
PRICE_CODE = 110

ErrorOutcome = Trigger | Literal["modify_refused", "record", "ignore"]


def status_trigger(ib_status: str, why_held: str = "") -> Trigger | None:
    """Inactive while IB looks for shares to borrow ("locate") is a hold, not an end."""
    if ib_status == "Inactive" and "locate" in why_held:
        return "ack"
    return IB_STATUS_TRIGGERS.get(ib_status)


def accepted(order: Order) -> bool:
    """Whether IB ever took the order: every status but `pending` (and a cancel of a pending one)."""
    if order.status == "pending_cancel":
        return order.pre_cancel_status not in ("pending", "")
    return order.status != "pending"


def error_outcome(order: Order, code: int, error_class: str) -> ErrorOutcome:
    """What an order error means for `order` (docs/state.md, "Errors"), first rule that applies:
    1. IB's notices (10349, 2100-2199, information and connectivity classes) change nothing;
    2. a failed cancel returns the order to its status before the cancel; 10147 (not found) on an order
       IB never accepted means IB does not have it: `rejected`;
    3. while a modify is pending on an accepted order, any error but a warning refuses the modify only:
       the order keeps working with its previous parameters;
    4. warnings (399, 404, 165, 10167, class `warning`) are recorded, and so is 110 on an accepted order;
    5. 201/203/10289/10293 reject, 202 cancels;
    6. on an order IB never accepted, any other order error refuses it: `rejected`;
    7. otherwise the error is recorded on the order and changes no status."""
    if code in INFO_CODES or error_class in INFO_CLASSES:
        return "ignore"
    is_accepted = accepted(order)
    if code in CANCEL_FAILED_CODES:
        if code == NOT_FOUND_CODE and not is_accepted and order.status not in TERMINAL:
            return "rejected"
        return "cancel_failed"
    warning = code in WARNING_CODES or (error_class == "warning" and code != PRICE_CODE)
    if order.pending_modify is not None and is_accepted and code not in CANCEL_CODES and not warning:
        return "modify_refused"
    if warning or (code == PRICE_CODE and is_accepted):
        return "record"
    if code in REJECT_CODES:
        return "rejected"
    if code in CANCEL_CODES:
        return "cancelled"
    return "record" if is_accepted else "rejected"


def transition(order: Order, trigger: Trigger) -> OrderStatus:
    """The status `trigger` leads to (the same status when the table has no entry)."""
    target = ORDER_STATE_TABLE[order.status].get(trigger, order.status)
    if target == "previous":
        return order.pre_cancel_status or "submitted"
    return target


def fill_trigger(executed: Decimal, quantity: Decimal) -> Trigger:
    if quantity > ZERO and executed >= quantity:
        return "fill_all"
    return "fill_part" if executed > ZERO else "fill_none"


def triggered(order: Order, trigger: Trigger, seq: int, ts: int, reason: str = "") -> Order:
    """`order` after `trigger`, or the same object when nothing changes."""
    status = transition(order, trigger)
    if status == order.status:
        if trigger == "cancel_failed" and order.pre_cancel_status:  # filled while its cancel was pending:
            # IB refused the cancel, so a correction taking fills back returns it to working, not cancelling
            return replace(order, pre_cancel_status="", updated_seq=seq, updated_ts=ts)
        return order
    pre = order.pre_cancel_status
    if status == "pending_cancel":
        pre = order.status
    elif order.status == "pending_cancel":
        pre = ""
    return replace(
        order,
        status=status,
        pre_cancel_status=pre,
        reason=reason or order.reason,
        updated_seq=seq,
        updated_ts=ts,
    )


_CANCELLED = ("Cancelled", "ApiCancelled")  # IB's statuses that confirm a cancel
_ENDED = frozenset({"cancelled", "rejected", "inactive"})  # terminal without being filled


def executed(
    order: Order, qty: Decimal, value: Decimal, inferred: Decimal, seq: int, ts: int, replaced: bool = False
) -> Order:
    """`order` with `qty` executed in total for `value` (`inferred` of it without executions):
    filled is clamped to the ordered quantity (the excess goes to `overfill`), and the status follows
    the table. A terminal order whose filled quantity did not change keeps its status (a price-only
    correction never revives a cancelled order); one that ended unfilled or part-filled (cancelled,
    rejected, inactive) keeps it too when a fill was `replaced` (a correction) without completing it, and
    one IB confirmed cancelled while it stood filled ends cancelled when a correction takes fills back:
    folding corrections gives what folding the corrected fills directly gives. An external order whose
    quantity IB has not told us is taken as complete: quantity = executed."""
    quantity = order.quantity
    trigger: Trigger
    if order.external and quantity == ZERO and order.status in ("submitted", "filled", "partially_filled"):
        filled, overfill, remaining, trigger = qty, ZERO, ZERO, "fill_all" if qty > ZERO else "fill_none"
    else:
        filled = min(qty, quantity)
        overfill = qty - filled
        remaining = quantity - filled
        trigger = fill_trigger(qty, quantity)
    status: OrderStatus = order.status
    pre = order.pre_cancel_status
    cancelling = status == "pending_cancel" or (status == "filled" and pre != "")
    if status in TERMINAL and filled == order.filled:
        pass  # quantities or prices corrected, the filled quantity stands
    elif replaced and status in _ENDED and trigger != "fill_all":
        pass  # a correction of an ended order's fill: it stays ended, as with the corrected fills all along
    elif cancelling and trigger != "fill_all" and order.broker_status in _CANCELLED:
        # IB confirmed the cancel while the order stood filled: a correction taking back part of that
        # fill leaves it cancelled with what remains filled, as if the fills had been right all along
        status, pre = "cancelled", ""
    elif cancelling and trigger != "fill_all":
        # still cancelling: also when a correction takes back part of the fill that completed an order
        # whose cancel was pending (its `pre_cancel_status` was kept for this)
        target = ORDER_STATE_TABLE[pre or "submitted"].get(trigger, pre or "submitted")
        status, pre = "pending_cancel", "submitted" if target == "previous" else target
    else:
        new = transition(order, trigger)
        if new != "pending_cancel" and not (status == "pending_cancel" and new == "filled"):
            pre = ""
        status = new
    return replace(
        order,
        status=status,
        pre_cancel_status=pre,
        filled=filled,
        overfill=overfill,
        remaining=remaining,
        avg_fill_price=rounded(value / qty) if qty else ZERO,
        fill_value=value,
        inferred=inferred,
        updated_seq=seq,
        updated_ts=ts,
    )


def after_fills(order: Order, done: Executed, seq: int, ts: int) -> tuple[Order, ...]:
    """`order` after each of an execution's fill changes, in turn (see `executed`), its commission moved
    by the execution's."""
    steps = []
    for change in done.changes:
        replaced = change.before is not None
        order = executed(order, change.qty, change.value, change.inferred, seq, ts, replaced=replaced)
        steps.append(order)
    if done.commission:
        steps[-1] = commissioned(order, done.commission, seq)
    return tuple(steps)


def commissioned(order: Order, moved: Money, seq: int) -> Order:
    """`order` after its fills' commissions moved by `moved` (a delta, per currency)."""
    return replace(order, commission=add(order.commission, moved), updated_seq=seq)


def requested(ev: OrderRequested, contract: Contract, seq: int, ts: int, strategy_id: str, account: str
              ) -> Order:  # fmt: skip
    """The order `ev` asks for, on `contract` (the requested one, with its conId once IB has named it),
    for `strategy_id` and `account` (the request's, as shared objects: `oms.state.interning`)."""
    return Order(
        client_order_id=ev.client_order_id,
        strategy_id=strategy_id,
        account=account,
        contract=contract,
        side=ev.side,
        quantity=ev.quantity,
        order_type=ev.order_type,
        limit_price=ev.limit_price,
        stop_price=ev.stop_price,
        tif=ev.tif,
        outside_rth=ev.outside_rth,
        parent=ev.parent_client_order_id,
        remaining=ev.quantity,
        trailing_amount=ev.trailing_amount,
        trailing_percent=ev.trailing_percent,
        limit_offset=ev.limit_offset,
        touch_price=ev.touch_price,
        good_till=ev.good_till,
        oca_group=ev.oca_group,
        oca_type=ev.oca_type,
        algo=ev.algo,
        algo_priority=ev.algo_priority,
        created_seq=seq,
        created_ts=ts,
        updated_seq=seq,
        updated_ts=ts,
    )


def _working_terms(order: Order, ev: OpenOrderReported) -> dict[str, float | None]:
    """The prices and terms IB shows working that differ from the order's: the limit and stop always
    (None is IB's "none"), the terms its order type has where IB reports them, and the trailing stop
    where IB has it now (it moves with the market)."""
    terms: dict[str, float | None] = {}
    if order.limit_price != ev.limit_price:
        terms["limit_price"] = ev.limit_price
    if order.stop_price != ev.stop_price:
        terms["stop_price"] = ev.stop_price
    for name in _REPORTED_TERMS.get(ev.order_type, ()):
        value = getattr(ev, name)
        if value is not None and value != getattr(order, name):
            terms[name] = value
    return terms


_TRAILING = ("trailing_amount", "trailing_percent", "trail_stop_price")
_REPORTED_TERMS = {  # by order type: the terms beyond prices that IB reports in openOrder
    "TRAIL": _TRAILING,
    "TRAIL LIMIT": (*_TRAILING, "limit_offset"),
    "MIT": ("touch_price",),
    "LIT": ("touch_price",),
}
_MODIFIABLE = ("quantity", "limit_price", "stop_price", "trailing_amount", "trailing_percent", "limit_offset",
               "touch_price")  # fmt: skip


def modify_matches(want: ModifyRequested, ev: OpenOrderReported) -> bool:
    """Whether an openOrder shows the requested modification in force (every term it asked for; a new
    good-till time is taken as in force, since IB restates it in its own format)."""
    return all(
        getattr(want, name) is None or getattr(want, name) == getattr(ev, name) for name in _MODIFIABLE
    )


def denied(ev: OrderDenied, seq: int, ts: int) -> Order:
    """An order refused before it reached IB and never requested in the log: rejected as it was asked."""
    req = ev.request or OrderRequested(
        client_order_id=ev.client_order_id,
        strategy_id=ev.strategy_id,
        account="",
        contract=NO_CONTRACT,
        side="BUY",
        quantity=ZERO,
    )
    new = requested(req, req.contract, seq, ts, req.strategy_id, req.account)
    return replace(new, status="rejected", reason=ev.reason, last_error_message=ev.code)


NO_CONTRACT = Contract(symbol="")  # an order's instrument before IB has named it


def modify_requested(order: Order, ev: ModifyRequested, seq: int, ts: int) -> Order:
    """Recorded as pending: quantities and prices change only when IB's openOrder shows them."""
    if order.status in TERMINAL:
        return order
    return replace(order, pending_modify=ev, modify_rejected="", updated_seq=seq, updated_ts=ts)


def broker_reported(order: Order, filled: Decimal, avg: float, status: str, restated: bool, seq: int, ts: int
                    ) -> Order:  # fmt: skip
    """IB's own filled quantity and average, kept beside the executions (the same object when unchanged).
    `restated`: reported during a reconciliation for the first time, so IB's current word even when
    equal, from which a fill may be inferred (`fills.inferred`)."""
    broker_avg = exact(avg) if avg else order.broker_avg_price
    if not restated and (
        order.broker_filled == filled
        and order.broker_avg_price == broker_avg
        and order.broker_status == status
    ):
        return order
    return replace(
        order, broker_filled=filled, broker_avg_price=broker_avg, broker_status=status, broker_seq=seq,
        updated_seq=seq, updated_ts=ts,
    )  # fmt: skip


def open_order_reported(order: Order, ev: OpenOrderReported, new: bool, seq: int, ts: int) -> Order:
    """IB's view of the order (its ids and instrument already joined): its quantity and prices are what
    is working, so they acknowledge a modify; a terminal order changes only by executions, unless it is
    an external order whose quantity IB tells for the first time."""
    if new:
        order = replace(
            order,
            order_type=ev.order_type,
            limit_price=ev.limit_price,
            stop_price=ev.stop_price,
            tif=ev.tif,
            outside_rth=ev.outside_rth,
        )
    unknown_quantity = order.external and order.quantity == ZERO and ev.quantity > ZERO
    if order.status in TERMINAL and not unknown_quantity:
        return order
    if order.quantity != ev.quantity:
        base = replace(order, quantity=ev.quantity, status="submitted" if unknown_quantity else order.status)
        order = executed(base, order.filled + order.overfill, order.fill_value, order.inferred, seq, ts)
    terms = _working_terms(order, ev)
    if terms:
        order = replace(order, **terms, updated_seq=seq, updated_ts=ts)
    want = order.pending_modify
    if want is not None and modify_matches(want, ev):
        order = replace(order, pending_modify=None, updated_seq=seq, updated_ts=ts)
    trigger = status_trigger(ev.status)
    return triggered(order, trigger, seq, ts) if trigger else order


def errored(order: Order, ev: BrokerError, seq: int, ts: int) -> Order:
    """`order` after an order error (see `error_outcome`); the same object when it changes nothing."""
    outcome = error_outcome(order, ev.code, ev.error_class)
    if outcome == "ignore":
        return order
    new = replace(
        order, last_error_code=ev.code, last_error_message=ev.message, updated_seq=seq, updated_ts=ts
    )
    if outcome == "modify_refused":  # the order keeps working with its previous parameters
        return replace(new, pending_modify=None, modify_rejected=ev.message)
    if outcome != "record":
        return triggered(new, outcome, seq, ts, ev.message)
    return new
