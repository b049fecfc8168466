"""The newest finished orders and fills of the whole session, kept by the web app itself.

The fold retires a finished order and its fills from the live state once nothing has touched it for 15
minutes (docs/state.md, "History"), and a client that starts or resyncs after a service restart gets a
snapshot without them. The blotter still shows the session's latest completed orders and fills: the
feed records them here from every event it folds (the history refolded from seq 1 at start, then live),
keeping the newest `limit` of each, so memory stays bounded.
"""

from __future__ import annotations

from events.schema import CommissionReported, Envelope, ExecutionReported
from oms.state.fills import base_of
from oms.state.model import TERMINAL, Fill, Order, State


class Finished:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.orders: dict[str, Order] = {}  # client order id -> the order as it finished (or changed since)
        self.fills: dict[str, Fill] = {}  # keyed as `State.fills` is: a correction replaces its fill

    def record(self, state: State, env: Envelope, changes: tuple[object, ...]) -> None:
        """After `state` applied `env` (which changed `changes`). The history refolded at start and the
        live feed record into the same maps meanwhile: an entry is only ever replaced by a newer one."""
        for change in changes:
            if isinstance(change, Order) and change.status in TERMINAL:
                kept = self.orders.get(change.client_order_id)
                if kept is None or change.updated_seq >= kept.updated_seq:
                    self.orders[change.client_order_id] = change
        if isinstance(env.event, ExecutionReported | CommissionReported):
            key = base_of(env.event.exec_id)  # corrections share their fill's key
            fill = state.fills.get(key)
            kept_fill = self.fills.get(key)
            if fill is not None and (kept_fill is None or fill.updated_seq >= kept_fill.updated_seq):
                self.fills[key] = fill
        if len(self.orders) > 2 * self.limit:
            newest = sorted(self.orders.values(), key=lambda o: o.updated_seq)[-self.limit :]
            self.orders = {o.client_order_id: o for o in newest}
        if len(self.fills) > 2 * self.limit:
            latest = sorted(self.fills.items(), key=lambda item: item[1].seq)[-self.limit :]
            self.fills = dict(latest)
