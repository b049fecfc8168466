"""Commands out: our intents -> the client library's Contract and Order objects.

The client order id travels as IB's `orderRef`, so every callback about the order (from this session,
a later one, TWS, or another client) can be joined back to it.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import msgspec

from adapters.ib.clientlib import ClientLib
from events.schema import Contract, ModifyRequested, OrderRequested
from oms.protocol import good_till_instant
from oms.state.model import Order

TRAILING = frozenset({"TRAIL", "TRAIL LIMIT"})
TOUCHED = frozenset({"MIT", "LIT"})


def ib_contract(lib: ClientLib, c: Contract) -> Any:
    return lib.Contract(
        conId=c.con_id,
        symbol=c.symbol,
        secType=c.sec_type,
        exchange=c.exchange,
        currency=c.currency,
        primaryExchange=c.primary_exchange,
        lastTradeDateOrContractMonth=c.last_trade_date,
        strike=c.strike,
        right=c.right,
        multiplier=c.multiplier,
        localSymbol=c.local_symbol,
        tradingClass=c.trading_class,
    )


def ib_order(
    lib: ClientLib, req: OrderRequested, order_id: int, parent_id: int = 0, transmit: bool = True
) -> Any:
    order = lib.Order(
        orderId=order_id,
        action=req.side,
        totalQuantity=float(req.quantity),  # the library keeps sizes as floats
        orderType=req.order_type,
        tif=req.tif,
        outsideRth=req.outside_rth,
        orderRef=req.client_order_id,
        account=req.account,
        parentId=parent_id,
        transmit=transmit,
    )
    if req.limit_price is not None:
        order.lmtPrice = req.limit_price
    if req.order_type in TRAILING:  # auxPrice is the trailing amount; the stop is trailStopPrice
        if req.trailing_amount is not None:
            order.auxPrice = req.trailing_amount
        if req.trailing_percent is not None:
            order.trailingPercent = req.trailing_percent
        if req.stop_price is not None:
            order.trailStopPrice = req.stop_price
        if req.limit_offset is not None:
            order.lmtPriceOffset = req.limit_offset
    elif req.order_type in TOUCHED:  # auxPrice is the touch (trigger) price
        order.auxPrice = req.touch_price
    elif req.stop_price is not None:
        order.auxPrice = req.stop_price
    if req.good_till:
        order.goodTillDate = ib_good_till(req.good_till)
    if req.oca_group:
        order.ocaGroup = req.oca_group
        order.ocaType = req.oca_type or 1
    if req.algo:
        order.algoStrategy = req.algo
        order.algoParams = [lib.TagValue("adaptivePriority", req.algo_priority or "Normal")]
    return order


def ib_good_till(text: str) -> str:
    """IB's goodTillDate in UTC (`20261207-20:30:00`, the form IB's API docs give for UTC), so TWS's
    own zone never enters into it."""
    return f"{good_till_instant(text).astimezone(UTC):%Y%m%d-%H:%M:%S}"


def modified(req: OrderRequested, change: ModifyRequested) -> OrderRequested:
    """The order as it stands after a modify: only the fields the modify names change."""
    return msgspec.structs.replace(
        req,
        quantity=req.quantity if change.quantity is None else change.quantity,
        limit_price=req.limit_price if change.limit_price is None else change.limit_price,
        stop_price=_stop_after(req, change),  # a trailing stop: only a new one is sent (IB moved it)
        trailing_amount=_changed(req.trailing_amount, change.trailing_amount, change.trailing_percent),
        trailing_percent=_changed(req.trailing_percent, change.trailing_percent, change.trailing_amount),
        limit_offset=req.limit_offset if change.limit_offset is None else change.limit_offset,
        touch_price=req.touch_price if change.touch_price is None else change.touch_price,
        good_till=change.good_till or req.good_till,
    )


def _stop_after(req: OrderRequested, change: ModifyRequested) -> float | None:
    if req.order_type in TRAILING or change.stop_price is not None:
        return change.stop_price
    return req.stop_price


def _changed(had: float | None, new: float | None, other: float | None) -> float | None:
    """A trailing amount or percent after a modify: the new one, or none if the other form was set."""
    if new is not None:
        return new
    return None if other is not None else had


def request_of(order: Order) -> OrderRequested:
    """The request behind an order the log holds (after a restart the adapter has only the log)."""
    return OrderRequested(
        client_order_id=order.client_order_id,
        strategy_id=order.strategy_id,
        account=order.account,
        contract=order.contract,
        side=order.side,  # type: ignore[arg-type]
        quantity=order.quantity,
        order_type=order.order_type,  # type: ignore[arg-type]
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        tif=order.tif,  # type: ignore[arg-type]
        outside_rth=order.outside_rth,
        parent_client_order_id=order.parent,
        trailing_amount=order.trailing_amount,
        trailing_percent=order.trailing_percent,
        limit_offset=order.limit_offset,
        touch_price=order.touch_price,
        good_till=order.good_till,
        oca_group=order.oca_group,
        oca_type=order.oca_type,  # type: ignore[arg-type]
        algo=order.algo,  # type: ignore[arg-type]
        algo_priority=order.algo_priority,  # type: ignore[arg-type]
    )
