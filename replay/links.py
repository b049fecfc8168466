"""Which orders an event touched: the ones the fold changed, and the ones it names by any identifier.

An event can name an order without changing it (a repeated status, an informational error on its
orderId, a commission). Identifiers resolve through the state's own indexes after the event (orderId
per clientId, permId, execId), so the answer is the fold's, never a second opinion. A commission that
arrives before its execution names no order yet; it is linked when that execution arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from events.schema import (
    BrokerError,
    CancelRequested,
    CommissionReported,
    Envelope,
    ExecutionReported,
    ModifyRequested,
    OpenOrderReported,
    OrderDenied,
    OrderRequested,
    OrderSent,
    OrderStatusReported,
    exec_base,
)
from oms.state.model import Order, State


class Linker:
    """Feed it every (envelope, changes, state after) in log order; it says which orders each touched."""

    def __init__(self, unlinked: Iterable[Envelope] = ()) -> None:
        """`unlinked`: commissions an earlier run linked to no order (an archive continues from them)."""
        self._early_commissions: dict[str, list[Envelope]] = {}  # exec base -> commissions not yet linked
        for env in unlinked:
            if isinstance(env.event, CommissionReported):
                self._early_commissions.setdefault(exec_base(env.event.exec_id), []).append(env)

    def link(self, env: Envelope, changes: Iterable[object], state: State) -> list[tuple[Envelope, str]]:
        """(envelope, client order id) pairs; an envelope can be an earlier one (a commission linked late)."""
        event = env.event
        namer = _NAMERS.get(type(event))
        keys = {change.client_order_id for change in changes if type(change) is Order}
        if namer is not None:
            keys.update(namer(event, state))
            if type(event) is CommissionReported and not keys:
                self._early_commissions.setdefault(exec_base(event.exec_id), []).append(env)
                return []
            if type(event) is ExecutionReported and keys and self._early_commissions:
                links = [(env, key) for key in keys]
                for early in self._early_commissions.pop(exec_base(event.exec_id), ()):
                    links.extend((early, key) for key in keys)
                return links
        return [(env, key) for key in keys]


# What each kind names, looked up in the state after it (the hot path of an archive: one dict lookup
# per kind instead of a chain of isinstance checks). Kinds absent here name no order.


def _by_client_order_id(event: Any, state: State) -> Iterable[str]:
    coid = event.client_order_id
    return (coid,) if coid and coid in state.orders else ()


def _by_broker_ids(event: Any, state: State) -> Iterable[str]:
    ref = getattr(event, "order_ref", "")
    names = {
        ref if ref in state.orders else "",
        state.order_ids.get(f"{event.client_id}:{event.order_id}", ""),
        state.perm_ids.get(event.perm_id, "") if event.perm_id else "",
    }
    names.discard("")
    return names


def _by_exec_id(event: CommissionReported, state: State) -> Iterable[str]:
    fill = state.fills.get(exec_base(event.exec_id))
    return (fill.client_order_id,) if fill is not None else ()


def _by_req_id(event: BrokerError, state: State) -> Iterable[str]:
    name = state.order_ids.get(f"{state.client_id}:{event.req_id}") if event.req_id > 0 else None
    return (name,) if name else ()


_NAMERS: dict[type, Callable[[Any, State], Iterable[str]]] = {
    OrderRequested: _by_client_order_id,
    ModifyRequested: _by_client_order_id,
    CancelRequested: _by_client_order_id,
    OrderDenied: _by_client_order_id,
    OrderSent: _by_client_order_id,
    OrderStatusReported: _by_broker_ids,
    OpenOrderReported: _by_broker_ids,
    ExecutionReported: _by_broker_ids,
    CommissionReported: _by_exec_id,
    BrokerError: _by_req_id,
}
