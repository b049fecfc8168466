"""What the client library keeps per order, and when the adapter lets it go.

ib_async and ib_insync keep, for the whole session, a `Trade` per order (its ~150-field `Order`, its
status, fills, log and event objects) and a `Fill` per execution, and reconciliation adds one more
`Trade` per completed order and one `Fill` per execution IB still holds. A long session would grow by
each order ever placed. The adapter needs none of it to log (its hooks read the callbacks' arguments),
so it keeps the library's objects while an order works and releases them once IB has reported it
final: `Cancelled`, `ApiCancelled`, `Inactive` (unless held), rejected before IB accepted it, or
`Filled` with every execution in and each one's commission report (IB may send those after `Filled`).

`Retention` decides, from the events alone (pure); `release` is the one function that touches the
library's caches. A callback for an order already released is still logged; the library's objects it
creates again (a `Fill` without a `Trade`, the `Trade` a late openOrder or a completed order builds)
are released right after.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from adapters.ib.reconcile import exec_prefix, exec_suffix
from events.schema import (
    BrokerError,
    CommissionReported,
    Event,
    ExecutionReported,
    OpenOrderReported,
    OrderStatusReported,
)

LibKey = tuple[int, int] | int  # the library's key of a Trade: (clientId, orderId), or permId without one
ENDED = frozenset({"Cancelled", "ApiCancelled", "Inactive"})
NEW_ORDER_REFUSED = 110  # price off the tick: ends an order IB never acknowledged (a warning otherwise)
EARLY_COMMISSIONS = 1024  # commissions remembered before their execution arrives (IB allows that order)


def lib_key(client_id: int, order_id: int, perm_id: int) -> LibKey:
    """The library's `Wrapper.orderKey`: orders typed into TWS have no orderId, only a permId."""
    return (client_id, order_id) if order_id > 0 else perm_id


class Release(NamedTuple):
    """What to drop once the library has handled the callback: an order's Trade (by key and permId),
    executions' Fills, and the adapter's own request of that order."""

    key: LibKey | None = None
    perm_id: int = 0
    exec_ids: tuple[str, ...] = ()
    client_order_id: str = ""


@dataclass(slots=True)
class _Order:
    client_order_id: str = ""
    perm_id: int = 0
    status: str = ""  # IB's last word: orderStatus, or the order state of openOrder / completedOrder
    why_held: str = ""
    accepted: bool = False  # IB reported the order (orderStatus or openOrder)
    quantity: Decimal | None = None  # openOrder's total quantity
    filled: Decimal | None = None  # IB's filled quantity (orderStatus, completedOrder)
    executions: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # prefix -> latest (id, shares)
    exec_ids: list[str] = field(default_factory=list)  # every execId seen, corrected ones too
    commissioned: set[str] = field(default_factory=set)

    def final(self) -> bool:
        if self.status in ENDED:
            return not (self.status == "Inactive" and self.why_held)  # held (e.g. a short locate): works on
        if self.status != "Filled":
            return False
        executed = sum((shares for _, shares in self.executions.values()), Decimal(0))
        target = self.filled if self.filled is not None else self.quantity
        return executed >= (target or 0) and all(e in self.commissioned for e, _ in self.executions.values())


class Retention:
    """The orders whose library objects are kept, and the event that makes each one final."""

    def __init__(self, client_id: int) -> None:
        self.client_id = client_id
        self._orders: dict[LibKey, _Order] = {}
        self._by_perm: dict[int, LibKey] = {}
        self._owner: dict[str, LibKey] = {}  # execId -> the kept order it belongs to
        self._early: OrderedDict[str, None] = OrderedDict()  # commissions whose execution is not in yet

    def kept(self) -> dict[LibKey, str]:
        """The orders kept, with their client order id ("" for orders this adapter did not place)."""
        return {key: order.client_order_id for key, order in self._orders.items()}

    def sent(self, order_id: int, client_order_id: str) -> None:
        self._orders[(self.client_id, order_id)] = _Order(client_order_id=client_order_id)

    def observe(self, event: Event) -> Release | None:
        """Follow one callback; what to release once the library has handled it, if anything."""
        if isinstance(event, OrderStatusReported):
            key = lib_key(event.client_id, event.order_id, event.perm_id)
            return self._reported(key, event.perm_id, event.status, event.why_held, filled=event.filled)
        if isinstance(event, OpenOrderReported):
            if event.completed:
                return self._completed(event)
            key = lib_key(event.client_id, event.order_id, event.perm_id)
            return self._reported(key, event.perm_id, event.status, "", quantity=event.quantity)
        if isinstance(event, ExecutionReported):
            return self._execution(event)
        if isinstance(event, CommissionReported):
            return self._commission(event.exec_id)
        if isinstance(event, BrokerError):
            return self._error(event)
        return None

    def _reported(
        self,
        key: LibKey,
        perm_id: int,
        status: str,
        why_held: str,
        filled: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> Release | None:
        order = self._orders.get(key)
        if order is None:
            if _Order(status=status, why_held=why_held).final():  # a late report of a released order
                return Release(key, perm_id)
            order = self._orders[key] = _Order()
        order.accepted = True
        order.status, order.why_held = status or order.status, why_held
        order.filled = filled if filled is not None else order.filled
        order.quantity = quantity if quantity is not None else order.quantity
        if perm_id:
            order.perm_id = perm_id
            self._by_perm[perm_id] = key
        return self._if_final(key)

    def _completed(self, event: OpenOrderReported) -> Release | None:
        """reqCompletedOrders: the library builds a Trade (keyed by permId) for each one it does not
        hold, so a completed order this adapter released comes back, and goes again at once."""
        key = self._by_perm.get(event.perm_id)
        order = self._orders.get(key) if key is not None else None
        if key is None or order is None:
            return Release(event.perm_id, event.perm_id)
        order.status = event.status or order.status
        order.filled = event.filled if event.filled is not None else order.filled
        return self._if_final(key)

    def _execution(self, event: ExecutionReported) -> Release | None:
        key = self._by_perm.get(event.perm_id) or lib_key(event.client_id, event.order_id, event.perm_id)
        order = self._orders.get(key)
        if order is None:  # a late fill or correction of a released order, or one the library never held
            return Release(exec_ids=(event.exec_id,))
        prefix = exec_prefix(event.exec_id)
        previous = order.executions.get(prefix)
        if previous is None or exec_suffix(previous[0]) <= exec_suffix(event.exec_id):
            order.executions[prefix] = (event.exec_id, event.shares)
        if event.exec_id not in self._owner:
            self._owner[event.exec_id] = key
            order.exec_ids.append(event.exec_id)
        if event.exec_id in self._early:
            del self._early[event.exec_id]
            order.commissioned.add(event.exec_id)
        return self._if_final(key)

    def _commission(self, exec_id: str) -> Release | None:
        key = self._owner.get(exec_id)
        order = self._orders.get(key) if key is not None else None
        if key is None or order is None:
            self._early[exec_id] = None
            if len(self._early) > EARLY_COMMISSIONS:
                self._early.popitem(last=False)
            return None
        order.commissioned.add(exec_id)
        return self._if_final(key)

    def _error(self, error: BrokerError) -> Release | None:
        key = (self.client_id, error.req_id)
        order = self._orders.get(key)
        refused = error.error_class == "rejection" or error.code == NEW_ORDER_REFUSED
        if order is None or order.accepted or not refused:
            return None
        order.status = "Inactive"
        return self._if_final(key)

    def _if_final(self, key: LibKey) -> Release | None:
        order = self._orders[key]
        if not order.final():
            return None
        del self._orders[key]
        if self._by_perm.get(order.perm_id) == key:
            del self._by_perm[order.perm_id]
        for exec_id in order.exec_ids:
            del self._owner[exec_id]
        return Release(key, order.perm_id, tuple(order.exec_ids), order.client_order_id)


def release(wrapper: Any, what: Release) -> None:
    """Drop an order's objects from the library's caches. The same attributes in ib_async and
    ib_insync 0.9.86 (`Wrapper.reset` clears them): `wrapper.trades` (orderKey -> Trade: the Order,
    OrderStatus, fills, log, events), `wrapper.permId2Trade` (permId -> the same Trade, or the one
    `completedOrder` built, which it also files in `trades` under the permId), `wrapper.fills`
    (execId -> Fill, for every execution it saw, a Trade or not). Neither library offers a public call."""
    trades = [wrapper.trades.pop(what.key, None)] if what.key is not None else []
    if what.perm_id:
        by_perm = wrapper.permId2Trade.pop(what.perm_id, None)
        if by_perm is not None and wrapper.trades.get(what.perm_id) is by_perm:
            del wrapper.trades[what.perm_id]
        trades.append(by_perm)
    exec_ids: Iterable[str] = (
        *what.exec_ids,
        *(f.execution.execId for t in trades if t is not None for f in t.fills),
    )
    for exec_id in exec_ids:
        wrapper.fills.pop(exec_id, None)
