"""Pre-trade risk checks: pure functions of an order, the limits, and the exposure the fold reports.

Each check is off when its limit is None. A check that fails gives a `Denial` whose `code` is stable
(`oms.protocol.RISK_REASONS`); the service logs it as OrderDenied and replies `risk_denied`.

Notional: quantity x price x multiplier, where the price is the limit price (LMT, STP LMT), the stop
price (STP), or for MKT the last fill price of that instrument. A MKT order for an instrument with no fill
yet has no known price: the notional check is SKIPPED for it (max_quantity and max_position still bound
it). Refusing it instead would make the first market order on any symbol impossible.
"""

from __future__ import annotations

from msgspec import Struct

from events.schema import OrderRequested
from oms.readable import plain
from oms.state.positions import multiplier


class RiskLimits(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    max_quantity: float | None = 10_000
    max_notional: float | None = 1_000_000
    max_position: float | None = None  # absolute, per (account, contract)
    allowed_symbols: tuple[str, ...] | None = None  # None: every symbol
    max_order_age_s: float | None = None  # working orders older than this are cancelled (reason max_age)


class Exposure(Struct, frozen=True):
    """What the fold knows about this order's instrument and account."""

    position: float = 0.0  # signed, current
    working_buy: float = 0.0  # remaining quantity of working BUY orders
    working_sell: float = 0.0
    last_price: float | None = None  # last fill price of the instrument, if any
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
    return check_size(
        order.quantity, order_price(order, exposure), multiplier(order.contract), limits
    ) or _position(order, limits, exposure)


def check_size(quantity: float, price: float | None, multiplier: float, limits: RiskLimits) -> Denial | None:
    """Quantity and notional: shared by new orders and modifications."""
    if limits.max_quantity is not None and quantity > limits.max_quantity:
        return Denial(
            "max_quantity", f"quantity {plain(quantity)} > max_quantity {plain(limits.max_quantity)}"
        )
    if limits.max_notional is not None and price is not None:
        notional = quantity * price * multiplier
        if notional > limits.max_notional:
            return Denial(
                "max_notional", f"notional {notional:,.2f} > max_notional {limits.max_notional:,.2f}"
            )
    return None


def order_price(order: OrderRequested, exposure: Exposure) -> float | None:
    if order.order_type in ("LMT", "STP LMT"):
        return order.limit_price
    if order.order_type == "STP":
        return order.stop_price
    return exposure.last_price


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
