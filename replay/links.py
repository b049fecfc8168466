"""Which orders an event touched: the ones the fold changed, and the ones it names by any identifier.

An event can name an order without changing it (a repeated status, an informational error on its
orderId, a commission). Identifiers resolve through the state's own indexes after the event (orderId
per clientId, permId, execId), so the answer is the fold's, never a second opinion. A commission that
arrives before its execution names no order yet; it is linked when that execution arrives.
"""

from __future__ import annotations

from collections.abc import Iterable

from events.schema import (
    BrokerError,
    CommissionReported,
    Envelope,
    ExecutionReported,
    OpenOrderReported,
    OrderStatusReported,
)
from oms.state import Order, State


def exec_base(exec_id: str) -> str:
    """A correction shares the part before the last "." with the execution it replaces."""
    return exec_id.rpartition(".")[0] or exec_id


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
        keys = {change.client_order_id for change in changes if isinstance(change, Order)}
        keys.update(_named(env, state))
        links = [(env, key) for key in keys]
        event = env.event
        if isinstance(event, CommissionReported) and not keys:
            self._early_commissions.setdefault(exec_base(event.exec_id), []).append(env)
        elif isinstance(event, ExecutionReported) and keys:
            for early in self._early_commissions.pop(exec_base(event.exec_id), ()):
                links.extend((early, key) for key in keys)
        return links


def _named(env: Envelope, state: State) -> set[str]:
    event = env.event
    names: set[str] = set()
    coid = getattr(event, "client_order_id", None) or getattr(event, "order_ref", None)
    if coid and coid in state.orders:
        names.add(coid)
    if isinstance(event, OrderStatusReported | OpenOrderReported | ExecutionReported):
        by_order_id = state.order_ids.get(f"{event.client_id}:{event.order_id}")
        by_perm_id = state.perm_ids.get(event.perm_id) if event.perm_id else None
        names.update(name for name in (by_order_id, by_perm_id) if name)
    elif isinstance(event, CommissionReported):
        fill = state.fills.get(exec_base(event.exec_id))
        if fill is not None:
            names.add(fill.client_order_id)
    elif isinstance(event, BrokerError) and event.req_id > 0:
        name = state.order_ids.get(f"{state.client_id}:{event.req_id}")
        if name:
            names.add(name)
    return names
