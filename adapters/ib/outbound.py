"""Commands out: our intents -> the client library's Contract and Order objects.

The client order id travels as IB's `orderRef`, so every callback about the order (from this session,
a later one, TWS, or another client) can be joined back to it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from adapters.ib.clientlib import ClientLib
from events.schema import Contract, ModifyRequested, OrderRequested
from oms.state.model import Order


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
    if req.stop_price is not None:
        order.auxPrice = req.stop_price
    return order


def modified(req: OrderRequested, change: ModifyRequested) -> OrderRequested:
    """The order as it stands after a modify: only the fields the modify names change."""
    return msgspec.structs.replace(
        req,
        quantity=req.quantity if change.quantity is None else change.quantity,
        limit_price=req.limit_price if change.limit_price is None else change.limit_price,
        stop_price=req.stop_price if change.stop_price is None else change.stop_price,
    )


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
    )
