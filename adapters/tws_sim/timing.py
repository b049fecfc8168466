"""When IB takes an order and when it ends, by the clock and the instrument: the closing and opening
auctions and good-till times.

- MOC / LOC execute in the closing auction of the instrument's primary exchange. IB takes them until the
  exchange's cut-off: 15:50 New York for NYSE (and here NYSE Arca, of the same group), 15:55 for Nasdaq;
  from 15:50 they can be neither cancelled nor modified (IB's "Market-on-Close" order type page). An
  instrument without a closing auction the simulator models (futures, options, forex, non-US listings)
  gets IB's 387 "Unsupported order type for this exchange and security type."
- OPG (market / limit on open) takes part in the opening auction only: IB rejects it from 09:28 New York
  until the close, 201 "Order rejected - reason:Exchange is closed." (QuantConnect's IB brokerage #194,
  #204: what IB answered to on-open orders sent at the wrong time).
- GTD: goodTillDate in IB's forms: `YYYYMMDD-HH:MM:SS` (UTC), `YYYYMMDD HH:MM:SS Zone/Name`, or
  without a zone in TWS's own zone (IB's TWS API docs, Order.goodTillDate).
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters.tws_sim.catalog import Instrument
from adapters.tws_sim.triggers import ON_CLOSE

NEW_YORK = ZoneInfo("America/New_York")
CUTOFFS = {"NYSE": time(15, 50), "ARCA": time(15, 50), "NASDAQ": time(15, 55)}
NO_CHANGE_FROM = time(15, 50)  # no cancel or modify of an on-close order from then to the close
CLOSE = time(16, 0)
OPG_CUTOFF = time(9, 28)
UNSUPPORTED = "Unsupported order type for this exchange and security type."


def has_closing_auction(inst: Instrument) -> bool:
    return inst.sec_type == "STK" and inst.primary_exchange in CUTOFFS


def _ny(epoch: float) -> time:
    return datetime.fromtimestamp(epoch, NEW_YORK).time()


def refusal(req: Any, inst: Instrument, now: float, modify: bool, tws_zone: str) -> tuple[int, str] | None:
    """IB's answer to an order it refuses for its time or instrument: (387, text) sent alone, or
    (201, reason) for a rejection (the order goes Inactive; a modify keeps the order as it was)."""
    if req.order_type in ON_CLOSE:
        if not has_closing_auction(inst):
            return 387, UNSUPPORTED
        local = _ny(now)
        cutoff = NO_CHANGE_FROM if modify else CUTOFFS[inst.primary_exchange]
        if cutoff <= local < CLOSE:
            action = "modified" if modify else "placed"
            return 201, (
                f"The {req.order_type} order cannot be {action} after the {cutoff:%H:%M} ET cut-off of "
                f"the {inst.primary_exchange} closing auction"
            )
    if req.tif == "GTD" and req.good_till and good_till_epoch(req.good_till, tws_zone) is None:
        return 201, f"Invalid good till date {req.good_till!r}"
    if req.tif == "OPG" and OPG_CUTOFF <= _ny(now) < CLOSE and not modify:
        return 201, "Exchange is closed."
    return None


def cancel_refused(order: Any, now: float) -> bool:
    """An on-close order cannot be cancelled from 15:50 New York to the close."""
    if order.order_type not in ON_CLOSE:
        return False
    return NO_CHANGE_FROM <= _ny(now) < CLOSE


def good_till_epoch(text: str, tws_zone: str) -> float | None:
    """A goodTillDate as an epoch, or None if IB could not read it."""
    text = text.strip()
    try:
        if len(text) >= 17 and text[8] == "-":
            return datetime.strptime(text[:17], "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC).timestamp()
        head, zone = text[:17], text[17:].strip()
        moment = datetime.strptime(head, "%Y%m%d %H:%M:%S")
        return moment.replace(tzinfo=ZoneInfo(zone or tws_zone)).timestamp()
    except (ValueError, ZoneInfoNotFoundError):
        return None
