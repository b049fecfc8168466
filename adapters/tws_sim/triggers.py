"""Conditional orders: where their trigger is, when the price has gone through it, and how a trailing
stop follows the price. Pure functions over `SimOrder`s (typed loosely here to keep this module below
`matching`).

- STP / STP LMT trigger at the stop (auxPrice); MIT / LIT at the touch price (auxPrice), from the other
  side: a buy MIT triggers when the price falls to it, a sell when it rises to it (IB's MIT and LIT pages).
- TRAIL / TRAIL LIMIT: auxPrice is the trailing amount (or trailingPercent the percentage); the stop
  starts at trailStopPrice if given, else at the price minus the trail (a buy: plus), and only ever moves
  in the order's favour: up for a sell, down for a buy. TRAIL LIMIT's limit is the stop minus
  lmtPriceOffset (a buy: plus) (IB's trailing stop limit page; TWS API "Basic Orders").
- Trigger method (IB's Order.triggerMethod, "Trigger Method" in TWS): 0, the default, is "double
  bid/ask" for OTC stocks and US options and "last" for everything else; 1 double bid/ask and 3 double
  last need two consecutive prices through the trigger. The simulator's price path is its last, bid and
  ask at once, so a double method needs two consecutive path prices through the trigger.
"""

from __future__ import annotations

import math
from typing import Any

STOPS = frozenset({"STP", "STP LMT"})
TRAILING = frozenset({"TRAIL", "TRAIL LIMIT"})
TOUCHED = frozenset({"MIT", "LIT"})
CONDITIONAL = STOPS | TRAILING | TOUCHED
ON_CLOSE = frozenset({"MOC", "LOC"})
LIMITED = frozenset({"LMT", "STP LMT", "TRAIL LIMIT", "LIT", "LOC"})
DOUBLE_METHODS = frozenset({1, 3})


def touches_needed(order: Any) -> int:
    """How many consecutive prices through the trigger elect the order under its trigger method."""
    method = order.trigger_method
    if method == 0:
        return 2 if order.contract.sec_type == "OPT" else 1
    return 2 if method in DOUBLE_METHODS else 1


def trigger_price(order: Any) -> float | None:
    """The price whose crossing elects the order: the stop, the trailing stop or the touch price."""
    if order.order_type in TRAILING:
        return order.trail_stop_price  # type: ignore[no-any-return]
    return order.aux_price  # type: ignore[no-any-return]


def through(order: Any, price: float) -> bool:
    """Whether `price` is at or beyond the order's trigger: stops and trailing stops from below for a
    buy (above for a sell); touch prices the other way round."""
    level = trigger_price(order)
    if level is None:
        return False
    rising = order.is_buy != (order.order_type in TOUCHED)
    return bool(price >= level if rising else price <= level)


def _on_tick(value: float, tick: float, up: bool) -> float:
    """`value` on the tick grid, rounded away from the market (a stop never moves past the price)."""
    steps = value / tick
    steps = math.ceil(steps - 1e-9) if up else math.floor(steps + 1e-9)
    return round(steps * tick, 10)


def trailed_stop(order: Any, price: float, tick: float) -> float:
    """Where the trailing stop would be if the price were `price`: the price minus the trail for a sell,
    plus it for a buy, on the tick grid."""
    trail = order.aux_price if order.aux_price else price * order.trailing_percent / 100.0
    return _on_tick(price + trail if order.is_buy else price - trail, tick, up=order.is_buy)


def ratchet(order: Any, price: float, tick: float) -> dict[str, float] | None:
    """The trailing stop's new place (and TRAIL LIMIT's limit) after the price moved to `price`, or None
    if it stays: a sell's stop only rises, a buy's only falls."""
    candidate = trailed_stop(order, price, tick)
    current = order.trail_stop_price
    if current is not None and (candidate >= current if order.is_buy else candidate <= current):
        return None
    return stop_terms(order, candidate, tick)


def stop_terms(order: Any, stop: float, tick: float) -> dict[str, float]:
    """The fields a trailing stop at `stop` sets: the stop, and for a TRAIL LIMIT with an offset its limit."""
    terms = {"trail_stop_price": stop}
    if order.order_type == "TRAIL LIMIT" and order.lmt_price_offset is not None:
        offset = order.lmt_price_offset
        terms["lmt_price"] = _on_tick(stop + offset if order.is_buy else stop - offset, tick, order.is_buy)
    return terms
