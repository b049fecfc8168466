"""Working orders and when they execute: pure functions over frozen orders, plus the book that holds them.

MKT fills at once at the current price; LMT when the price reaches the limit; STP turns into a market
order once the price touches the stop, STP LMT into a limit. Bracket children wait for their parent,
and a fill of one child cancels its siblings (IB treats a bracket's children as one OCA group).
"""

from __future__ import annotations

import msgspec

from events.schema import Contract

WORKING = frozenset({"PreSubmitted", "Submitted"})
DONE = frozenset({"Filled", "Cancelled", "Inactive"})
ORDER_TYPES = frozenset({"MKT", "LMT", "STP", "STP LMT"})
TIFS = frozenset({"DAY", "GTC", "IOC"})


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

    @property
    def key(self) -> tuple[int, int]:
        return (self.client_id, self.order_id)

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
    if order.order_type in ("LMT", "STP LMT") and not (order.lmt_price and order.lmt_price > 0):
        return "Limit price is required"
    if order.order_type in ("STP", "STP LMT") and not (order.aux_price and order.aux_price > 0):
        return "Stop price is required"
    return None


def triggered(order: SimOrder, price: float) -> bool:
    """Whether a stop order's stop has been touched (always true once it was)."""
    if order.stop_triggered or order.order_type not in ("STP", "STP LMT"):
        return order.stop_triggered
    assert order.aux_price is not None
    return price >= order.aux_price if order.is_buy else price <= order.aux_price


def executable(order: SimOrder, price: float) -> bool:
    """Whether the order trades at the current price (it fills at that price)."""
    if order.order_type == "MKT":
        return True
    if order.order_type in ("STP", "STP LMT") and not triggered(order, price):
        return False
    if order.order_type == "STP":
        return True
    assert order.lmt_price is not None
    return price <= order.lmt_price if order.is_buy else price >= order.lmt_price


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


class OrderBook:
    """Every order the simulated account has seen, keyed by (clientId, orderId)."""

    def __init__(self, orders: list[SimOrder] | None = None) -> None:
        self.orders: dict[tuple[int, int], SimOrder] = {o.key: o for o in orders or []}

    def get(self, client_id: int, order_id: int) -> SimOrder | None:
        return self.orders.get((client_id, order_id))

    def put(self, order: SimOrder) -> SimOrder:
        self.orders[order.key] = order
        return order

    def working(self) -> list[SimOrder]:
        return [o for o in self.orders.values() if o.status in WORKING]

    def parent_of(self, order: SimOrder) -> SimOrder | None:
        return self.get(order.client_id, order.parent_id) if order.parent_id else None

    def children_of(self, order: SimOrder) -> list[SimOrder]:
        return [
            o
            for o in self.orders.values()
            if o.client_id == order.client_id and o.parent_id == order.order_id
        ]

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

    def oca_siblings(self, order: SimOrder) -> list[SimOrder]:
        """Working orders cancelled when `order` fills: its bracket siblings and its OCA group."""
        out = []
        for other in self.working():
            if other.key == order.key:
                continue
            same_parent = order.parent_id and (other.client_id, other.parent_id) == (
                order.client_id,
                order.parent_id,
            )
            same_oca = order.oca_group and other.oca_group == order.oca_group
            if same_parent or same_oca:
                out.append(other)
        return out

    def executable_now(self, symbol: str, price: float) -> list[SimOrder]:
        """Active orders on `symbol` that trade at `price`, oldest permId first."""
        hits = [
            o
            for o in self.working()
            if o.contract.symbol == symbol and self.active(o) and executable(o, price)
        ]
        return sorted(hits, key=lambda o: o.perm_id)

    def mark_triggered(self, symbol: str, price: float) -> None:
        for o in self.working():
            if (
                o.contract.symbol == symbol
                and self.active(o)
                and not o.stop_triggered
                and triggered(o, price)
            ):
                self.put(msgspec.structs.replace(o, stop_triggered=True))
