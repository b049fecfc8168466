"""The newest finished orders and fills of the whole session, kept by the web app itself.

The fold retires a finished order and its fills from the live state once nothing has touched it for 15
minutes (docs/state.md, "History"), and a client that starts or resyncs after a service restart gets a
snapshot without them. The blotter still shows the session's latest completed orders and fills: the
feed records them here from every event it folds (the history refolded from seq 1 at start, then live),
keeping the newest `limit` of each, so memory stays bounded.
"""

from __future__ import annotations

from events.schema import CommissionReported, Envelope, ExecutionReported
from oms.state.model import TERMINAL, Fill, Order, State


class Finished:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.orders: dict[str, Order] = {}  # client order id -> the order as it finished (or changed since)
        self.fills: dict[str, Fill] = {}  # execId -> the fill

    def record(self, state: State, env: Envelope, changes: tuple[object, ...]) -> None:
        """After `state` applied `env` (which changed `changes`)."""
        for change in changes:
            if isinstance(change, Order) and change.status in TERMINAL:
                self.orders[change.client_order_id] = change
        if isinstance(env.event, ExecutionReported | CommissionReported):
            fill = state.fills.get(env.event.exec_id)
            if fill is not None:
                self.fills.pop(fill.corrects, None)  # a correction replaces the fill it corrects
                self.fills[fill.exec_id] = fill
        if len(self.orders) > 2 * self.limit:
            newest = sorted(self.orders.values(), key=lambda o: o.updated_seq)[-self.limit :]
            self.orders = {o.client_order_id: o for o in newest}
        if len(self.fills) > 2 * self.limit:
            latest = sorted(self.fills.values(), key=lambda f: f.seq)[-self.limit :]
            self.fills = {f.exec_id: f for f in latest}
