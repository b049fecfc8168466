"""What a listing shows, for the command line and the web page alike: an instrument named as IB names
it, the price that triggers an order, and which positions are listed by default.

An option or a future is never shown as its bare underlying (`AAPL` beside the stock): an option is
`AAPL 20261218 200 C` (symbol, expiry, strike, right), a future its IB local symbol (`ESZ6`), a currency
pair `EUR.USD`. A position's lifecycle that never filled (a rejected or cancelled order's: pending, then
closed with quantity 0) stays in the state, as the design says, but is listed only on request.
"""

from __future__ import annotations

from decimal import Decimal

from events.schema import Contract
from oms.state.model import Order, Position

# IB's futures month codes (the letter in a local symbol such as ESZ6).
MONTH_CODES = "FGHJKMNQUVXZ"


def trigger_price(order: Order) -> float | None:
    """The price a listing's stop column shows: the stop; for a trailing stop where IB has it now (the
    last it reported); for MIT / LIT the touch price."""
    for price in (order.stop_price, order.trail_stop_price, order.touch_price):
        if price is not None:
            return price
    return None


def instrument_name(contract: Contract) -> str:
    """The instrument as IB writes it: `AAPL`, `AAPL 20261218 200 C`, `ESZ6`, `EUR.USD`."""
    kind = contract.sec_type.upper()
    if kind in ("OPT", "FOP", "FUT") and not contract.last_trade_date and contract.local_symbol:
        return contract.local_symbol  # a derivative named only by its local symbol
    if kind in ("OPT", "FOP"):
        strike = f"{Decimal(repr(contract.strike)).normalize():f}" if contract.strike else ""
        right = contract.right[:1].upper()
        return " ".join(part for part in (contract.symbol, contract.last_trade_date, strike, right) if part)
    if kind == "FUT":
        return contract.local_symbol or _future_code(contract.symbol, contract.last_trade_date)
    if kind == "CASH":
        return f"{contract.symbol}.{contract.currency}"
    return contract.symbol


def _future_code(symbol: str, expiry: str) -> str:
    """`ES` + `202612` -> `ESZ6` (month code, last digit of the year), as IB's local symbols read."""
    if len(expiry) < 6 or not expiry[:6].isdigit() or not 1 <= int(expiry[4:6]) <= 12:
        return f"{symbol} {expiry}".strip()
    return f"{symbol}{MONTH_CODES[int(expiry[4:6]) - 1]}{expiry[3]}"


def listed_by_default(position: Position) -> bool:
    """Open, working, or a position that had fills (its money or its last close says so); a lifecycle
    whose orders all ended unfilled is listed only on request (`--all`, the page's "all positions")."""
    return (
        position.status != "closed"
        or bool(position.quantity)
        or bool(position.realized_pnl_gross)
        or bool(position.commission)
        or position.close_reason in ("flat", "flipped")
    )
