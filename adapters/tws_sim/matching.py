"""Working orders and when they execute: pure functions over frozen orders, plus the book that holds them.

MKT fills at once at the current price; LMT when the price reaches the limit; STP turns into a market
order once the price touches the stop, STP LMT into a limit; TRAIL / TRAIL LIMIT likewise at their
trailing stop (`triggers`), MIT / LIT at their touch price. MOC / LOC trade only in the closing auction
and OPG orders only in the opening one (the engine runs both). Bracket children wait for their parent,
and a fill of one child cancels its siblings (IB treats a bracket's children as one OCA group).

The book indexes working orders by price path and children by parent, so the work per price tick is
proportional to the orders working on that instrument, not to every order the account ever saw.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from adapters.tws_sim.triggers import (
    CONDITIONAL,
    LIMITED,
    ON_CLOSE,
    TOUCHED,
    TRAILING,
    through,
    touches_needed,
)
from events.schema import Contract

WORKING = frozenset({"PreSubmitted", "Submitted"})
DONE = frozenset({"Filled", "Cancelled", "Inactive", "ApiCancelled"})
ORDER_TYPES = frozenset({"MKT", "LMT", "STP", "STP LMT", "TRAIL", "TRAIL LIMIT", "MIT", "LIT", "MOC", "LOC"})
TIFS = frozenset({"DAY", "GTC", "IOC", "GTD", "FOK", "OPG"})


class SimOrder(msgspec.Struct, frozen=True):
    order_id: int
    client_id: int
    perm_id: int
    contract: Contract
    action: str
    quantity: float
    order_type: str
    lmt_price: float | None = None
    aux_price: float | None = None
    tif: str = "DAY"
    account: str = ""
    order_ref: str = ""
    oca_group: str = ""
    parent_id: int = 0
    transmit: bool = True
    outside_rth: bool = False
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    stop_triggered: bool = False
    price_key: str = ""  # the instrument's price path
    what_if: bool = False
    bound: bool = True  # False: an order typed into TWS that no API client has bound (orderId 0)
    day_end: float = 0.0  # when a DAY order ends (the close of its session), or a GTD order's time
    done_epoch: float = 0.0  # when it was filled, cancelled or became inactive
    trigger_method: int = 0  # IB's triggerMethod: 0 default, 1 double bid/ask, 2 last, 3 double last, ...
    good_till: str = ""  # goodTillDate as sent
    oca_type: int = 0
    trail_stop_price: float | None = None  # TRAIL / TRAIL LIMIT: where the stop is now
    trailing_percent: float | None = None
    lmt_price_offset: float | None = None
    algo: str = ""
    algo_params: tuple[tuple[str, str], ...] = ()
    touches: int = 0  # consecutive prices through the trigger (a double trigger method needs two)

    @property
    def key(self) -> tuple[int, int]:
        return (self.client_id, self.order_id)

    @property
    def wire_id(self) -> int:
        """The orderId IB shows: 0 for an order placed in TWS until it is bound."""
        return self.order_id if self.bound else 0

    @property
    def remaining(self) -> float:
        return max(0.0, self.quantity - self.filled)

    @property
    def is_buy(self) -> bool:
        return self.action == "BUY"


def validate(order: SimOrder) -> str | None:
    """Why IB would reject this order (201's reason), or None when it is acceptable."""
    if order.order_type not in ORDER_TYPES:
        return f"Unsupported order type {order.order_type!r}"
    if order.tif not in TIFS:
        return f"Unsupported time in force {order.tif!r}"
    if order.action not in ("BUY", "SELL"):
        return f"Invalid action {order.action!r}"
    if not order.quantity > 0:
        return "Order quantity must be positive"
    kind = order.order_type
    if kind in ("LMT", "STP LMT", "LIT", "LOC") and not (order.lmt_price and order.lmt_price > 0):
        return "Limit price is required"
    if kind in ("STP", "STP LMT") and not (order.aux_price and order.aux_price > 0):
        return "Stop price is required"
    if kind in TRAILING and not (order.aux_price or order.trailing_percent):
        return "Trailing amount or trailing percent is required"
    if kind == "TRAIL LIMIT" and order.lmt_price_offset is None and not order.lmt_price:
        return "Limit price offset is required"
    if kind in TOUCHED and not (order.aux_price and order.aux_price > 0):
        return "Trigger price is required"
    if order.tif == "GTD" and not order.good_till:
        return "Good till date is required for a GTD order"
    return None


def triggered(order: SimOrder, price: float) -> bool:
    """Whether a conditional order's trigger has been touched (always true once it was; a double trigger
    method is elected only by `OrderBook.mark_triggered`, which counts the prices)."""
    if order.stop_triggered or order.order_type not in CONDITIONAL:
        return order.stop_triggered
    return touches_needed(order) == 1 and through(order, price)


def crosses(order: SimOrder, price: float) -> bool:
    """Whether the order's price terms let it trade at `price` (an auction's too), its trigger aside."""
    if order.order_type not in LIMITED:
        return True
    assert order.lmt_price is not None
    return price <= order.lmt_price if order.is_buy else price >= order.lmt_price


def executable(order: SimOrder, price: float) -> bool:
    """Whether the order trades in the continuous market at the current price (it fills at that price);
    auction orders (MOC, LOC, OPG) never do."""
    if order.order_type in ON_CLOSE or order.tif == "OPG":
        return False
    if order.order_type in CONDITIONAL and not triggered(order, price):
        return False
    return crosses(order, price)


def split_quantity(quantity: float, parts: int) -> list[float]:
    """`quantity` as up to `parts` executions, whole shares where possible, summing exactly."""
    whole = quantity == int(quantity)
    parts = max(1, min(parts, int(quantity) if whole and quantity >= 1 else 1))
    if whole:
        base, extra = divmod(int(quantity), parts)
        return [float(base + (1 if i < extra else 0)) for i in range(parts)]
    return [quantity]


def with_fill(order: SimOrder, shares: float, price: float) -> SimOrder:
    filled = order.filled + shares
    avg = (order.avg_fill_price * order.filled + price * shares) / filled
    status = "Filled" if filled >= order.quantity - 1e-9 else "Submitted"
    return msgspec.structs.replace(
        order, filled=filled, avg_fill_price=avg, last_fill_price=price, status=status
    )


Key = tuple[int, int]


class OrderBook:
    """Every order the simulated account has seen, keyed by (clientId, orderId), with indexes of the
    working ones per price path, the held (not transmitted) ones, and the children of each parent."""

    def __init__(self, orders: list[SimOrder] | None = None) -> None:
        self.orders: dict[Key, SimOrder] = {}
        self._working: dict[str, dict[Key, None]] = {}
        self._held: dict[Key, None] = {}
        self._children: dict[Key, list[Key]] = {}
        for order in orders or []:
            self.put(order)

    def get(self, client_id: int, order_id: int) -> SimOrder | None:
        return self.orders.get((client_id, order_id))

    def put(self, order: SimOrder) -> SimOrder:
        key = order.key
        old = self.orders.get(key)
        self.orders[key] = order
        if old is None and order.parent_id:
            self._children.setdefault((order.client_id, order.parent_id), []).append(key)
        if old is not None and old.price_key != order.price_key:
            self._working.get(old.price_key, {}).pop(key, None)
        bucket = self._working.setdefault(order.price_key, {})
        if order.status in WORKING:
            bucket[key] = None
        else:
            bucket.pop(key, None)
        if order.status == "PendingSubmit":
            self._held[key] = None
        else:
            self._held.pop(key, None)
        return order

    def working(self, price_key: str | None = None) -> list[SimOrder]:
        keys = (
            [k for bucket in self._working.values() for k in bucket]
            if price_key is None
            else list(self._working.get(price_key, ()))
        )
        return [self.orders[k] for k in keys]

    def held(self) -> list[SimOrder]:
        return [self.orders[k] for k in self._held]

    def parent_of(self, order: SimOrder) -> SimOrder | None:
        return self.get(order.client_id, order.parent_id) if order.parent_id else None

    def children_of(self, order: SimOrder) -> list[SimOrder]:
        return [self.orders[k] for k in self._children.get(order.key, ())]

    def untransmitted_family(self, order: SimOrder) -> list[SimOrder]:
        """Held (transmit=False) orders released by transmitting `order`: its parent and the siblings."""
        root = self.parent_of(order) or order
        family = [root, *self.children_of(root)]
        return [o for o in family if o.status == "PendingSubmit" and o.key != order.key]

    def active(self, order: SimOrder) -> bool:
        """A working order may trade unless it is a child whose parent has not filled yet."""
        if order.status not in WORKING:
            return False
        parent = self.parent_of(order)
        return parent is None or parent.status == "Filled"

    def bracket_siblings(self, order: SimOrder) -> list[SimOrder]:
        """Working orders cancelled when `order` fills: the other children of its parent."""
        if not order.parent_id:
            return []
        return [
            o
            for o in self.children_of(self.get(order.client_id, order.parent_id) or order)
            if o.key != order.key and o.status in WORKING
        ]

    def oca_group(self, order: SimOrder) -> list[SimOrder]:
        """The other working orders of `order`'s OCA group (of its account; any instrument)."""
        if not order.oca_group:
            return []
        return [
            o
            for o in self.working()
            if o.key != order.key and o.oca_group == order.oca_group and o.account == order.account
        ]

    def executable_now(
        self, price_key: str, price: float, open_for: Callable[[SimOrder], bool]
    ) -> list[SimOrder]:
        """Active orders on the path that trade at `price` while their session allows, oldest first."""
        hits = [o for o in self.working(price_key) if self.active(o) and open_for(o) and executable(o, price)]
        return sorted(hits, key=lambda o: o.perm_id)

    def mark_triggered(
        self, price_key: str, price: float, open_for: Callable[[SimOrder], bool]
    ) -> list[SimOrder]:
        """Elect the conditional orders the price went through (twice in a row where the trigger method
        is a double one); returns them (IB reports them Submitted from then on)."""
        elected = []
        for o in self.working(price_key):
            if o.order_type not in CONDITIONAL or o.stop_triggered or not (self.active(o) and open_for(o)):
                continue
            if not through(o, price):
                if o.touches:
                    self.put(msgspec.structs.replace(o, touches=0))
                continue
            o = msgspec.structs.replace(o, touches=o.touches + 1)
            if o.touches >= touches_needed(o):
                o = msgspec.structs.replace(o, stop_triggered=True, status="Submitted")
                elected.append(o)
            self.put(o)
        return elected
