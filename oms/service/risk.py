"""Pre-trade risk checks: pure functions of an order, the limits, and the exposure the service found.

Each check is off when its limit is None. A check that fails gives a `Denial` whose `code` is stable
(`oms.protocol.RISK_REASONS`); the service logs it as OrderDenied and replies `risk_denied`.

Notional: quantity x price x multiplier. The price is the limit price (LMT, STP LMT), the stop price
(STP), or for MKT a reference price: IB's market data for that conId, else the last fill of that conId.
The multiplier is IB's (the contract IB described in an execution, position or contract details), never
the one a request carries. The checks fail closed: with a notional limit set, a market order with no
reference price, or an instrument whose multiplier IB has not described, is denied with a reason that
says what is missing (`allow_market_without_price = true` lets such market orders through unvalued).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from msgspec import Struct

from events.schema import OrderRequested
from oms.readable import plain
from oms.state.money import exact


class RiskLimits(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    max_quantity: float | None = 10_000
    max_notional: float | None = 1_000_000
    max_position: float | None = None  # absolute, per (account, contract)
    allowed_symbols: tuple[str, ...] | None = None  # None: every symbol
    max_order_age_s: float | None = None  # working orders older than this are cancelled (reason max_age)
    allow_market_without_price: bool = False  # a MKT order nothing can value passes the notional check


class Described(Protocol):
    """What IB's contract details say of an instrument, as intake and risk need it (the IB adapter's
    ContractInfo has this shape)."""

    @property
    def con_id(self) -> int: ...
    @property
    def multiplier(self) -> Decimal: ...
    @property
    def size_increment(self) -> Decimal: ...


class UnknownContract(LookupError):
    """IB says the contract names no instrument, or several (its error 200, "No security definition has
    been found for the request"): the order is refused before anything is logged or sent."""


class Reference(Struct, frozen=True):
    """The price a market order is valued at, and where it came from (logged with the decision)."""

    price: Decimal
    source: str


class Exposure(Struct, frozen=True):
    """What the service knows about this order's instrument and account."""

    position: Decimal = Decimal(0)  # signed, current
    working_buy: Decimal = Decimal(0)  # remaining quantity of working BUY orders
    working_sell: Decimal = Decimal(0)
    reference: Reference | None = None  # for a market order
    multiplier: Decimal | None = None  # IB's; None when IB has not described the contract
    kill_switch: bool = False


class Denial(Struct, frozen=True):
    code: str
    reason: str


def check_order(order: OrderRequested, limits: RiskLimits, exposure: Exposure) -> Denial | None:
    """The first failing check, in a fixed order (kill switch first: it refuses everything)."""
    if exposure.kill_switch:
        return Denial("kill_switch", "kill switch engaged: new orders are refused")
    symbol = order.contract.symbol
    if limits.allowed_symbols is not None and symbol not in limits.allowed_symbols:
        return Denial("symbol_not_allowed", f"{symbol} is not in allowed_symbols")
    price = order_price(order, exposure)
    return check_size(order.quantity, price, exposure.multiplier, limits, symbol) or _position(
        order, limits, exposure
    )


def check_size(
    quantity: Decimal, price: Decimal | None, multiplier: Decimal | None, limits: RiskLimits, symbol: str
) -> Denial | None:
    """Quantity and notional: shared by new orders and modifications."""
    if limits.max_quantity is not None and quantity > limits.max_quantity:
        return Denial(
            "max_quantity", f"quantity {plain(quantity)} > max_quantity {plain(limits.max_quantity)}"
        )
    if limits.max_notional is None:
        return None
    if price is None:
        if limits.allow_market_without_price:
            return None
        return Denial(
            "no_reference_price",
            f"no price to value this market order for {symbol} by: IB gave no market data and the "
            "contract has no earlier fill (use a limit order, or set allow_market_without_price)",
        )
    if multiplier is None:
        return Denial(
            "unknown_multiplier",
            f"IB has not described {symbol}'s multiplier yet, so the notional cannot be checked",
        )
    notional = quantity * price * multiplier
    if notional > limits.max_notional:
        return Denial("max_notional", f"notional {notional:,.2f} > max_notional {plain(limits.max_notional)}")
    return None


def order_price(order: OrderRequested, exposure: Exposure) -> Decimal | None:
    if order.order_type in ("LMT", "STP LMT"):
        return exact(order.limit_price) if order.limit_price is not None else None
    if order.order_type == "STP":
        return exact(order.stop_price) if order.stop_price is not None else None
    return exposure.reference.price if exposure.reference is not None else None


def _position(order: OrderRequested, limits: RiskLimits, exposure: Exposure) -> Denial | None:
    if limits.max_position is None:
        return None
    if order.side == "BUY":
        projected = exposure.position + exposure.working_buy + order.quantity
    else:
        projected = exposure.position - exposure.working_sell - order.quantity
    if abs(projected) > limits.max_position:
        return Denial(
            "max_position",
            f"position {plain(exposure.position)} with working orders and this order reaches "
            f"{plain(projected)}, beyond max_position {plain(limits.max_position)}",
        )
    return None
