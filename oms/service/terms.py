"""Which terms each order type and time in force takes, as IB documents them: one table, checked before
anything is logged or sent (pure; the simulator enforces the same rules as IB's refusals).

IB's order types page (interactivebrokers.com/en/trading/ordertypes.php) and the TWS API's "Basic
Orders" give the fields: TRAIL a trailing amount or percent (auxPrice / trailingPercent) and optionally
the initial stop (trailStopPrice); TRAIL LIMIT also a limit offset (lmtPriceOffset) or a limit price;
MIT and LIT a touch price (auxPrice), LIT a limit; MOC none, LOC a limit. A market or limit on the
close is a DAY order (IB rejects it as GTC: QuantConnect Lean PR #1432); OPG (on the open) is taken for
market and limit orders only; the Adaptive algo for market and limit orders only (IB's Adaptive page).
IB takes an MOC or LOC only before its primary exchange's cut-off, NYSE 15:50 New York, Nasdaq 15:55, and
from 15:50 to the close neither cancels nor modifies one (IB's "Market-on-Close" page); NYSE Arca is held
to NYSE's 15:50, as in the simulator (docs/simulator.md); for other exchanges the rule is IB's to apply.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from msgspec import Struct

# order type -> (terms it requires, terms it may have); "trailing" is an amount or a percent, one of them
REQUIRED: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "MKT": (frozenset(), frozenset()),
    "LMT": (frozenset({"limit_price"}), frozenset()),
    "STP": (frozenset({"stop_price"}), frozenset()),
    "STP LMT": (frozenset({"limit_price", "stop_price"}), frozenset()),
    "TRAIL": (frozenset({"trailing"}), frozenset({"stop_price"})),
    "TRAIL LIMIT": (frozenset({"trailing"}), frozenset({"stop_price", "limit_offset", "limit_price"})),
    "MIT": (frozenset({"touch_price"}), frozenset()),
    "LIT": (frozenset({"touch_price", "limit_price"}), frozenset()),
    "MOC": (frozenset(), frozenset()),
    "LOC": (frozenset({"limit_price"}), frozenset()),
}
ON_CLOSE = frozenset({"MOC", "LOC"})
# the types the notional check values by their own price (risk.order_price); the others (MKT, TRAIL,
# MIT, LIT, MOC, LOC, TRAIL LIMIT) by a reference price, as a market order
OWN_PRICE = frozenset({"LMT", "STP", "STP LMT"})
OPG_TYPES = frozenset({"MKT", "LMT"})
# no closing auction, so no MOC / LOC: forex, and options (IB rejects on-close option orders on paper
# accounts: QuantConnect Lean PR #1126); IB answers 387
NO_CLOSING_AUCTION = frozenset({"CASH", "OPT", "FOP"})
UNSUPPORTED = "IB error 387: Unsupported order type for this exchange and security type."
ALGO_TYPES = frozenset({"MKT", "LMT"})
NEW_YORK = ZoneInfo("America/New_York")
CUTOFFS = {"NYSE": time(15, 50), "ARCA": time(15, 50), "NASDAQ": time(15, 55)}  # by primary exchange
NO_CHANGE_FROM = time(15, 50)  # no cancel or modify of an on-close order from then to the close
CLOSE = time(16, 0)
# what a modify may change, per order type, beyond the quantity (IB's "Modifying orders": the order's
# type and side stay; its prices and the terms of its type change)
MODIFIABLE = {t: req | opt | {"good_till"} for t, (req, opt) in REQUIRED.items()}


class Terms(Struct, frozen=True, kw_only=True):
    order_type: str
    tif: str = "DAY"
    sec_type: str = "STK"
    limit_price: float | None = None
    stop_price: float | None = None
    trailing_amount: float | None = None
    trailing_percent: float | None = None
    limit_offset: float | None = None
    touch_price: float | None = None
    good_till: str = ""
    oca_group: str = ""
    oca_type: int | None = None
    algo: str = ""
    algo_priority: str = ""

    def given(self) -> set[str]:
        """The price terms present (`trailing` for either form)."""
        present = {
            name
            for name in ("limit_price", "stop_price", "limit_offset", "touch_price")
            if getattr(self, name) is not None
        }
        if self.trailing_amount is not None or self.trailing_percent is not None:
            present.add("trailing")
        return present


def _named(term: str) -> str:
    return "trailing_amount or trailing_percent" if term == "trailing" else term


def terms_error(t: Terms) -> str | None:
    """Why these terms do not make an order IB takes (None: they do)."""
    need, may = REQUIRED[t.order_type]
    given = t.given()
    for term in sorted(need - given):
        return f"{t.order_type} order needs {_named(term)}"
    for term in sorted(given - need - may):
        return f"{t.order_type} order takes no {_named(term)}"
    if t.trailing_amount is not None and t.trailing_percent is not None:
        return f"{t.order_type} order takes trailing_amount or trailing_percent, not both"
    if t.order_type == "TRAIL LIMIT" and (t.limit_offset is None) == (t.limit_price is None):
        return "TRAIL LIMIT order needs limit_offset or limit_price (one of them)"
    return _tif_error(t) or _group_error(t)


def _tif_error(t: Terms) -> str | None:
    if t.tif == "GTD" and not t.good_till:
        return "a GTD order needs good_till"
    if t.good_till and t.tif != "GTD":
        return f"good_till is for GTD orders, not {t.tif}"
    if t.order_type in ON_CLOSE and t.tif != "DAY":
        return f"{t.order_type} order is a DAY order (IB rejects it as {t.tif})"
    if t.order_type in ON_CLOSE and t.sec_type in NO_CLOSING_AUCTION:
        return f"{UNSUPPORTED} ({t.sec_type} has no closing auction for a {t.order_type} order)"
    if t.tif == "OPG" and t.order_type not in OPG_TYPES:
        return f"OPG (on the opening auction) is for MKT and LMT orders, not {t.order_type}"
    return None


def _group_error(t: Terms) -> str | None:
    if t.oca_type is not None and not t.oca_group:
        return "oca_type needs an oca_group"
    if t.algo_priority and not t.algo:
        return "algo_priority needs an algo (Adaptive)"
    if t.algo and t.order_type not in ALGO_TYPES:
        return f"the {t.algo} algo is for MKT and LMT orders, not {t.order_type}"
    return None


def modify_error(order_type: str, tif: str, changes: set[str]) -> str | None:
    """Why a modify of an order of this type cannot change these terms (None: it can)."""
    allowed = MODIFIABLE.get(order_type, frozenset({"limit_price", "stop_price"}))
    for term in sorted(changes - allowed):
        return f"a {order_type} order has no {_named(term)} to change"
    if "good_till" in changes and tif != "GTD":
        return f"good_till is for GTD orders, not {tif}"
    return None


def _new_york(now_ns: int) -> time:
    return datetime.fromtimestamp(now_ns / 1e9, NEW_YORK).time()


def cutoff_error(order_type: str, primary_exchange: str, now_ns: int) -> str | None:
    """IB's 201 for an on-close order placed after its exchange's cut-off (None: in time, or not an
    on-close order, or an exchange whose cut-off is not known here)."""
    cutoff = CUTOFFS.get(primary_exchange)
    if order_type not in ON_CLOSE or cutoff is None or not cutoff <= _new_york(now_ns) < CLOSE:
        return None
    return (
        f"IB error 201: Order rejected - reason:The {order_type} order cannot be placed after the "
        f"{cutoff:%H:%M} ET cut-off of the {primary_exchange} closing auction"
    )


def change_error(order_type: str, now_ns: int, cancel: bool) -> str | None:
    """IB's refusal of a cancel (161) or modify (201) of an on-close order from 15:50 New York to the
    close (None: IB takes it)."""
    if order_type not in ON_CLOSE or not NO_CHANGE_FROM <= _new_york(now_ns) < CLOSE:
        return None
    if cancel:
        return (
            "IB error 161: Cancel attempted when order is not in a cancellable state (an "
            f"{order_type} order cannot be cancelled from {NO_CHANGE_FROM:%H:%M} ET to the close)"
        )
    return (
        f"IB error 201: Order rejected - reason:The {order_type} order cannot be modified after the "
        f"{NO_CHANGE_FROM:%H:%M} ET cut-off of the closing auction"
    )
