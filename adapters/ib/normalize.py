"""Where an IB callback becomes an event: pure functions from the client library's objects to events.

One function per wrapper callback, named after it. Each keeps every identifier IB gave (orderId, permId,
clientId, orderRef, execId, conId) and normalizes IB's "unset" sentinels (UNSET_DOUBLE =
1.7976931348623157E308, UNSET_INTEGER = 2147483647, the text "?") to None / 0 / "". They read the
objects BEFORE the library mutates them (the adapter's hook runs first), so what is logged is what IB
sent. ib_async and ib_insync share these attribute names; the Protocols below list what is read.
"""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final, Protocol

from adapters.ib import timezones
from adapters.ib.errors import classify
from events.schema import (
    AccountValueReported,
    BrokerError,
    CommissionReported,
    Contract,
    ExecutionReported,
    OpenOrderReported,
    OrderStatusReported,
    PositionReported,
)
from oms.state.money import exact

UNSET_DOUBLE: Final = sys.float_info.max
UNSET_INTEGER: Final = 2**31 - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_US: Final = 1000


class IbContract(Protocol):
    conId: int
    symbol: str
    secType: str
    lastTradeDateOrContractMonth: str
    strike: float
    right: str
    multiplier: str
    exchange: str
    primaryExchange: str
    currency: str
    localSymbol: str
    tradingClass: str


class IbOrder(Protocol):
    orderId: int
    clientId: int
    permId: int
    action: str
    totalQuantity: float
    orderType: str
    lmtPrice: float
    auxPrice: float
    tif: str
    account: str
    orderRef: str
    outsideRth: bool
    parentId: int
    filledQuantity: float  # decoded for completed orders only (unset elsewhere)
    trailStopPrice: float
    trailingPercent: float
    lmtPriceOffset: float
    goodTillDate: str
    ocaGroup: str
    ocaType: int


class IbOrderState(Protocol):
    status: str
    commission: float
    commissionCurrency: str
    warningText: str
    completedTime: str
    completedStatus: str


class IbExecution(Protocol):
    execId: str
    acctNumber: str
    exchange: str
    side: str
    shares: float
    price: float
    permId: int
    clientId: int
    orderId: int
    liquidation: int
    cumQty: float
    avgPrice: float
    orderRef: str
    lastLiquidity: int
    time: datetime


class IbCommissionReport(Protocol):
    execId: str
    commission: float
    currency: str
    realizedPNL: float


def number(value: float | None) -> float | None:
    """IB's unset double (or a non-finite / missing value) -> None."""
    if value is None or value == UNSET_DOUBLE or not math.isfinite(value):
        return None
    return float(value)


def amount(value: float | None) -> float:
    """Like `number`, but 0.0 where unset (quantities and prices that are 0 when IB has none)."""
    found = number(value)
    return 0.0 if found is None else found


def size(value: float | Decimal | None) -> Decimal:
    """A quantity, exactly as IB meant it: IB sends sizes as decimal text; the libraries hand them over
    as floats (or Decimals), whose shortest text is that decimal. 0 where unset."""
    if isinstance(value, Decimal):
        return value if value.is_finite() else Decimal(0)
    found = number(value)
    return Decimal(0) if found is None else exact(found)


def price(value: float | None) -> float | None:
    """An order's limit / stop price: None where unset, and where IB sends 0 for "no price" (MKT)."""
    found = number(value)
    return None if found == 0.0 else found


def integer(value: int | None) -> int:
    """IB's unset integer (or a missing value) -> 0."""
    if value is None or value == UNSET_INTEGER:
        return 0
    return int(value)


def text(value: str | None) -> str:
    """IB's "?" placeholder (and None) -> ""."""
    return "" if value is None or value == "?" else str(value)


def contract(c: IbContract) -> Contract:
    return Contract(
        symbol=text(c.symbol),
        sec_type=text(c.secType),
        exchange=text(c.exchange),
        currency=text(c.currency),
        con_id=integer(c.conId),
        primary_exchange=text(c.primaryExchange),
        last_trade_date=text(c.lastTradeDateOrContractMonth),
        strike=amount(c.strike),
        right=text(c.right),
        multiplier=text(c.multiplier),
        local_symbol=text(c.localSymbol),
        trading_class=text(c.tradingClass),
    )


def order_status(
    orderId: int,
    status: str,
    filled: float,
    remaining: float,
    avgFillPrice: float,
    permId: int,
    parentId: int,
    lastFillPrice: float,
    clientId: int,
    whyHeld: str,
    mktCapPrice: float = 0.0,
) -> OrderStatusReported:
    return OrderStatusReported(
        order_id=integer(orderId),
        perm_id=integer(permId),
        client_id=integer(clientId),
        status=status,
        filled=size(filled),
        remaining=size(remaining),
        avg_fill_price=amount(avgFillPrice),
        last_fill_price=amount(lastFillPrice),
        parent_id=integer(parentId),
        why_held=text(whyHeld),
        mkt_cap_price=amount(mktCapPrice),
    )


def open_order(
    orderId: int, c: IbContract, order: IbOrder, state: IbOrderState, *, completed: bool = False
) -> OpenOrderReported | None:
    """None for a what-if answer: IB's margin estimate of an order that does not exist and never works."""
    if getattr(order, "whatIf", False):
        return None
    kind = text(order.orderType)
    aux = price(order.auxPrice)  # a stop price, a trailing amount (TRAIL) or a touch price (MIT, LIT)
    trailing, touched = kind in ("TRAIL", "TRAIL LIMIT"), kind in ("MIT", "LIT")
    return OpenOrderReported(
        order_id=integer(orderId),
        perm_id=integer(order.permId),
        client_id=integer(order.clientId),
        order_ref=text(order.orderRef),
        account=text(order.account),
        contract=contract(c),
        side=text(order.action),
        quantity=size(order.totalQuantity),
        order_type=kind,
        limit_price=price(order.lmtPrice),
        stop_price=None if trailing or touched else aux,
        tif=text(order.tif),
        outside_rth=bool(order.outsideRth),
        parent_id=integer(order.parentId),
        status=text(state.status),
        commission=number(state.commission),
        commission_currency=text(state.commissionCurrency),
        warning_text=text(state.warningText),
        completed=completed,
        filled=size(order.filledQuantity) if number(order.filledQuantity) is not None else None,
        completed_time=text(state.completedTime),
        completed_status=text(state.completedStatus),
        trail_stop_price=price(order.trailStopPrice) if trailing else None,
        trailing_amount=aux if trailing else None,
        trailing_percent=price(order.trailingPercent) if trailing else None,
        limit_offset=number(order.lmtPriceOffset) if kind == "TRAIL LIMIT" else None,
        touch_price=aux if touched else None,
        good_till=text(order.goodTillDate),
        oca_group=text(order.ocaGroup),
        oca_type=integer(order.ocaType),
    )


def completed_order(c: IbContract, order: IbOrder, state: IbOrderState) -> OpenOrderReported | None:
    """A reqCompletedOrders answer: an openOrder of a done order. IB sends no orderId and no clientId
    (both 0 here): the fold joins it by permId, else by orderRef. `filled` is IB's filled quantity."""
    return open_order(order.orderId, c, order, state, completed=True)


def exec_details(
    reqId: int, c: IbContract, execution: IbExecution, raw_time: str = "", tws_timezone: str = "UTC"
) -> ExecutionReported:
    """`raw_time` is the time text from the wire (the library only keeps its own parse of it)."""
    time_ns = parse_ib_time(raw_time, tws_timezone) if raw_time else datetime_ns(execution.time)
    return ExecutionReported(
        exec_id=text(execution.execId),
        order_id=integer(execution.orderId),
        perm_id=integer(execution.permId),
        client_id=integer(execution.clientId),
        order_ref=text(execution.orderRef),
        account=text(execution.acctNumber),
        contract=contract(c),
        side=text(execution.side),
        shares=size(execution.shares),
        price=amount(execution.price),
        cum_qty=size(execution.cumQty),
        avg_price=amount(execution.avgPrice),
        time=raw_time,
        time_ns=time_ns,
        exchange=text(execution.exchange),
        liquidation=integer(execution.liquidation),
        last_liquidity=integer(execution.lastLiquidity),
        req_id=int(reqId),
    )


def commission_report(report: IbCommissionReport) -> CommissionReported:
    return CommissionReported(
        exec_id=text(report.execId),
        commission=amount(report.commission),
        currency=text(report.currency),
        realized_pnl=number(report.realizedPNL),
    )


def position(account: str, c: IbContract, posSize: float, avgCost: float) -> PositionReported:
    return PositionReported(
        account=account, contract=contract(c), position=size(posSize), avg_cost=amount(avgCost)
    )


def update_account_value(tag: str, val: str, currency: str, account: str) -> AccountValueReported:
    return AccountValueReported(account=account, key=tag, value=val, currency=currency)


def daily_pnl(account: str, dailyPnL: float) -> AccountValueReported | None:
    """reqPnL's daily P&L, as an account value (`DailyPnL` in BASE, the account's base currency: what
    IB reports it in); None while IB has none (its unset double)."""
    found = number(dailyPnL)
    if found is None:
        return None
    return AccountValueReported(account=account, key="DailyPnL", value=repr(found), currency="BASE")


def error(reqId: int, errorCode: int, errorString: str, advancedOrderRejectJson: str = "") -> BrokerError:
    return BrokerError(
        req_id=int(reqId),
        code=int(errorCode),
        message=errorString,
        error_class=classify(int(errorCode)),
        advanced_reject=advancedOrderRejectJson or "",
    )


def datetime_ns(value: datetime | None) -> int:
    """An aware datetime -> UTC ns since the epoch; 0 for a naive or missing one (no guessing)."""
    if value is None or value.tzinfo is None:
        return 0
    return (value - _EPOCH) // timedelta(microseconds=1) * _NS_PER_US


def parse_ib_time(raw: str, default_timezone: str = "UTC") -> int:
    """IB's execution time text -> UTC ns since the epoch, 0 if it cannot be parsed.

    Forms: `YYYYMMDD HH:MM:SS Zone` (the zone named: IANA, or a Java / Windows name, see timezones.py),
    `YYYYMMDD  HH:MM:SS` (TWS local time: `default_timezone`, the zone the handshake reported),
    `YYYYMMDD-HH:MM:SS` (UTC), and epoch seconds."""
    raw = raw.strip()
    if raw.isdigit():
        return int(raw) * 1_000_000_000
    parts = raw.split()
    if len(parts) == 1 and "-" in raw:
        parts, zone_name = raw.split("-", 1), "UTC"
    elif len(parts) == 2:
        zone_name = default_timezone
    elif len(parts) >= 3:
        zone_name = " ".join(parts[2:])
    else:
        return 0
    tz = timezones.zone(zone_name)
    if tz is None:
        return 0
    try:
        naive = datetime.strptime(f"{parts[0]} {parts[1]}", "%Y%m%d %H:%M:%S")
    except ValueError:
        return 0
    return datetime_ns(naive.replace(tzinfo=tz))
