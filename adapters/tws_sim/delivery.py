"""Who hears about an order, and in what shape: the connected clients, fault reordering, per-version
rendering.

An order's messages go live to the client that placed it and to the master client (TWS's "Master API
client ID"); an order typed into TWS reaches client id 0 only once it is bound (reqAutoOpenOrders(True)
or reqOpenOrders from client 0). Everyone may still ask with reqAllOpenOrders.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from adapters.tws_sim import messages as m
from adapters.tws_sim.framing import Field
from adapters.tws_sim.matching import SimOrder

# (kind, fields) with kind in open/status/exec/commission/error; "open", "exec" and "error" items carry the
# arguments of their encoder instead, because their layout depends on each peer's server version.
Item = tuple[str, list[Any]]


class Peer(Protocol):
    client_id: int
    version: int
    positions_subscribed: bool
    account_subscribed: str | None
    multi_subscriptions: dict[int, str]
    market_data: dict[int, str]  # reqId -> price path of a streaming subscription
    pnl_subscriptions: dict[int, str]  # reqPnL: reqId -> account
    auto_open: bool  # client 0 after reqAutoOpenOrders(True)

    def send(self, fields: Iterable[Field]) -> None: ...

    def close(self) -> None: ...


def _exec_id(item: Item) -> str:
    return str(item[1][1].exec_id)


def apply_faults(items: list[Item], faults: frozenset[str]) -> list[Item]:
    """Reorder, repeat or drop messages of one order's sequence the way the named faults say."""
    out = list(items)
    if "exec_first" in faults:
        out = [i for i in out if i[0] == "exec"] + [i for i in out if i[0] != "exec"]
    if "commission_early" in faults:
        rest = [i for i in out if i[0] != "commission"]
        comms = {i[1][2]: i for i in out if i[0] == "commission"}
        out = []
        for item in rest:
            out.append(item)
            if item[0] == "exec" and _exec_id(item) in comms:
                out.append(comms.pop(_exec_id(item)))
        out += comms.values()
    if "commission_late" in faults:
        out = [i for i in out if i[0] != "commission"] + [i for i in out if i[0] == "commission"]
    if "duplicate_exec" in faults:
        out = [j for i in out for j in ([i, i] if i[0] == "exec" else [i])]
    if "status_repeat" in faults:
        out = [j for i in out for j in ([i, i] if i[0] == "status" else [i])]
    if "status_skip" in faults:
        out = [i for i in out if i[0] != "status"]
    return out


def render(item: Item, version: int) -> list[Field]:
    """The frame for one peer: openOrder, execDetails and error are laid out for its version here."""
    kind, fields = item
    if kind == "open":
        return m.open_order(version, *fields)
    if kind == "exec":
        return m.exec_details(version, *fields)
    if kind == "error":
        return m.error(version, *fields)
    return fields


class Peers:
    """The connected clients, and the clients dropped while their orders kept working."""

    def __init__(self, master_client_id: int | None) -> None:
        self.master = master_client_id
        self.connected: list[Peer] = []
        self.lost_clients: dict[int, bool] = {}  # clientId dropped -> whether it missed data since

    def __iter__(self) -> Any:
        return iter(list(self.connected))

    def of(self, client_id: int) -> list[Peer]:
        return [p for p in self.connected if p.client_id == client_id]

    def auto_binding(self) -> bool:
        """Whether client 0 asked for orders typed into TWS (reqAutoOpenOrders(True))."""
        return any(p.client_id == 0 and p.auto_open for p in self.connected)

    def audience(self, order: SimOrder) -> list[Peer]:
        """The clients that hear about `order` live."""
        out = []
        for p in self.connected:
            if p.client_id == self.master and self.master is not None:
                out.append(p)
            elif order.client_id == 0 and not order.bound:
                continue  # typed into TWS, not bound to any client yet
            elif p.client_id == order.client_id:  # its own client (client 0 for bound TWS orders)
                out.append(p)
        return out

    def deliver(self, order: SimOrder, items: list[Item]) -> None:
        peers = self.audience(order)
        if not peers and order.client_id in self.lost_clients:
            self.lost_clients[order.client_id] = True  # it will learn by reqExecutions after reconnecting
        for peer in peers:
            for item in items:
                peer.send(render(item, peer.version))

    def error(self, client_id: int, req_id: int, code: int, text: str) -> None:
        for peer in self.of(client_id):
            peer.send(m.error(peer.version, req_id, code, text))

    def broadcast_error(self, code: int, text: str) -> None:
        for peer in self.connected:
            peer.send(m.error(peer.version, -1, code, text))

    def remove(self, peer: Peer) -> None:
        if peer in self.connected:
            self.connected.remove(peer)
