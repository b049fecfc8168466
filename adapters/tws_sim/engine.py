"""The simulated broker: orders, matching, fills and the message sequences TWS sends for them.

Synchronous and socket-free: it talks to connected clients only through `Peer.send(fields)`, so every
sequence (openOrder / orderStatus / execDetails / commissionReport, faults applied) is built and sent in
one go on the event loop, in the order a test can predict.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from adapters.tws_sim import messages as m
from adapters.tws_sim.account import Account, ExecRecord, commission_for
from adapters.tws_sim.catalog import qualify, with_symbol
from adapters.tws_sim.config import SimConfig
from adapters.tws_sim.faults import FaultDice
from adapters.tws_sim.framing import Field
from adapters.tws_sim.matching import DONE, WORKING, OrderBook, SimOrder, split_quantity, validate, with_fill
from adapters.tws_sim.persist import SavedState, load_state, save_state
from adapters.tws_sim.prices import PricePaths
from adapters.tws_sim.requests import PlaceOrder

# (kind, fields) with kind in open/status/exec/commission/error; "open" and "error" items carry the
# arguments of their encoder instead, because their layout depends on each peer's server version.
Item = tuple[str, list[Any]]


class Peer(Protocol):
    client_id: int
    version: int
    positions_subscribed: bool
    account_subscribed: str | None
    multi_subscriptions: dict[int, str]

    def send(self, fields: Iterable[Field]) -> None: ...

    def close(self) -> None: ...


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
            if item[0] == "exec" and item[1][14] in comms:
                out.append(comms.pop(item[1][14]))
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
    """The frame for one peer: openOrder and error are laid out for its version here."""
    kind, fields = item
    if kind == "open":
        return m.open_order(version, *fields)
    if kind == "error":
        return m.error(version, *fields)
    return fields


def ib_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%d %H:%M:%S UTC")


class Engine:
    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.prices = PricePaths(config.seed)
        self.dice = FaultDice(config.faults)
        self.peers: list[Peer] = []
        self.lost_clients: dict[int, bool] = {}  # clientId dropped -> whether it missed data since
        state = load_state(config.state_dir) if config.state_dir else None
        state = state or SavedState(accounts=[Account(a, config.starting_cash) for a in config.accounts])
        self.book = OrderBook(state.orders)
        self.accounts = {a.name: a for a in state.accounts}
        for name in config.accounts:
            self.accounts.setdefault(name, Account(name, config.starting_cash))
        self.executions: list[ExecRecord] = list(state.executions)
        self.next_ids: dict[int, int] = dict(state.next_ids)
        self._perm_id = max([o.perm_id for o in state.orders] + [state.last_perm_id])
        self._exec_seq = state.exec_seq
        for symbol, price in state.prices.items():
            self.prices.set(symbol, price)

    # ---- persistence and ids ---------------------------------------------------------------------

    def save(self) -> None:
        if self.config.state_dir:
            save_state(
                self.config.state_dir,
                SavedState(
                    orders=list(self.book.orders.values()),
                    accounts=list(self.accounts.values()),
                    executions=self.executions,
                    next_ids=self.next_ids,
                    last_perm_id=self._perm_id,
                    exec_seq=self._exec_seq,
                    prices=self.prices.snapshot(),
                ),
            )

    def next_valid_id(self, client_id: int) -> int:
        used = [o.order_id for o in self.book.orders.values() if o.client_id == client_id]
        return max([self.next_ids.get(client_id, 1), *(i + 1 for i in used)])

    def completed_time(self, order: SimOrder) -> str:
        """When the order was done: its last execution's time, else now."""
        times = [e.epoch for e in self.executions if e.perm_id == order.perm_id]
        return ib_time(max(times) if times else self.clock())

    def _new_perm_id(self) -> int:
        self._perm_id = max(self._perm_id, 1_000_000_000 + self.config.seed * 1000) + 1
        return self._perm_id

    def _new_exec_id(self) -> str:
        self._exec_seq += 1
        return f"0000{self.config.seed & 0xFFFF:04x}.{0x65660000 + self._exec_seq:08x}.01.01"

    # ---- delivery --------------------------------------------------------------------------------

    def peers_of(self, client_id: int) -> list[Peer]:
        return [p for p in self.peers if p.client_id == client_id]

    def deliver(self, client_id: int, items: list[Item]) -> None:
        peers = self.peers_of(client_id)
        if not peers and client_id in self.lost_clients:
            self.lost_clients[client_id] = True  # it will learn by reqExecutions after reconnecting
        for peer in peers:
            for item in items:
                peer.send(render(item, peer.version))

    def order_items(
        self, order: SimOrder, status: str | None = None, commission: float | None = None
    ) -> list[Item]:
        """openOrder + orderStatus; openOrder is rendered per peer version, so it carries its arguments."""
        return [("open", [order, status, commission]), ("status", m.order_status(order, status))]

    def drop_peer(self, peer: Peer, code: int | None = 1100) -> None:
        """Tell the client connectivity is lost (1100), then hang up; its orders keep working."""
        if code is not None:
            peer.send(
                m.error(
                    peer.version, -1, code, "Connectivity between IB and Trader Workstation has been lost."
                )
            )
        self.lost_clients[peer.client_id] = False
        self.remove_peer(peer)
        peer.close()

    def remove_peer(self, peer: Peer) -> None:
        if peer in self.peers:
            self.peers.remove(peer)

    def send_error(self, client_id: int, req_id: int, code: int, text: str) -> None:
        for peer in self.peers_of(client_id):
            peer.send(m.error(peer.version, req_id, code, text))

    # ---- orders ----------------------------------------------------------------------------------

    def place(self, client_id: int, req: PlaceOrder) -> None:
        existing = self.book.get(client_id, req.order_id)
        if existing is not None and existing.status in DONE:
            self.send_error(client_id, req.order_id, 103, f"Duplicate order id {req.order_id}")
            return
        account = req.account or self.config.accounts[0]
        contract = with_symbol(req.contract)
        order = SimOrder(
            order_id=req.order_id, client_id=client_id,
            perm_id=existing.perm_id if existing else self._new_perm_id(), contract=qualify(contract),
            action=req.action, quantity=req.quantity, order_type=req.order_type,
            lmt_price=req.lmt_price, aux_price=req.aux_price, tif=req.tif, account=account,
            order_ref=req.order_ref, oca_group=req.oca_group, parent_id=req.parent_id, transmit=req.transmit,
            outside_rth=req.outside_rth,
            status=existing.status if existing else "PendingSubmit",
            filled=existing.filled if existing else 0.0,
            avg_fill_price=existing.avg_fill_price if existing else 0.0,
            last_fill_price=existing.last_fill_price if existing else 0.0,
        )  # fmt: skip
        self.next_ids[client_id] = max(self.next_ids.get(client_id, 1), req.order_id + 1)
        faults = self.dice.draw()
        reason = validate(order) or (None if account in self.accounts else f"Unknown account {account!r}")
        if not contract.symbol:
            reason = "No security definition has been found for the request"
        if reason or "reject" in faults:
            text = f"Order rejected - reason:{reason or 'Simulated rejection (fault injection)'}"
            if existing is not None and existing.status in WORKING:  # a refused modify: the order works on
                self.send_error(client_id, req.order_id, 201, text)
            else:
                self.reject(order, text)
            return
        if existing is not None and existing.status in WORKING:
            self.book.put(order)
            self.deliver(client_id, self.order_items(order))
            self.match(order.contract.symbol)
            return
        self.book.put(order)
        if not order.transmit:
            return  # held in "TWS" until a transmitted order of its family arrives
        for held in [*self.book.untransmitted_family(order), order]:
            self.acknowledge(self.book.orders[held.key], faults if held.key == order.key else frozenset())
        self.save()

    def reject(self, order: SimOrder, text: str) -> None:
        self.book.put(msgspec.structs.replace(order, status="Cancelled"))
        self.send_error(order.client_id, order.order_id, 201, text)
        self.deliver(order.client_id, [("status", m.order_status(self.book.orders[order.key]))])
        self.save()

    def acknowledge(self, order: SimOrder, faults: frozenset[str]) -> None:
        waiting = not self.book.active(msgspec.structs.replace(order, status="Submitted"))
        status = "PreSubmitted" if order.order_type == "MKT" or waiting else "Submitted"
        order = self.book.put(msgspec.structs.replace(order, status=status))
        items = self.order_items(order)
        if "info_10349" in faults:
            items.append(
                ("error", [order.order_id, 10349, "Order TIF was set to DAY based on order preset."])
            )
        if "disconnect" in faults:
            self.deliver(order.client_id, apply_faults(items, faults))
            for peer in self.peers_of(order.client_id):
                self.drop_peer(peer, 1100)
            self.match(order.contract.symbol, faults)
            return
        price = self.prices.price(order.contract.symbol)
        if order.tif == "IOC" and not self._fillable_now(order, price):
            cancelled = self.book.put(msgspec.structs.replace(order, status="Cancelled"))
            self.deliver(order.client_id, apply_faults(items + self.order_items(cancelled), faults))
            return
        self.match(order.contract.symbol, faults, prefix={order.key: items})

    def _fillable_now(self, order: SimOrder, price: float) -> bool:
        return any(o.key == order.key for o in self.book.executable_now(order.contract.symbol, price))

    def cancel(self, client_id: int, order_id: int) -> None:
        order = self.book.get(client_id, order_id)
        if order is None:
            self.send_error(
                client_id, order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found."
            )
        elif order.status == "Filled":
            self.send_error(
                client_id, order_id, 10148,
                f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: Filled.",
            )  # fmt: skip
        elif order.status in DONE:
            self.send_error(
                client_id, order_id, 161,
                f"Cancel attempted when order is not in a cancellable state.  Order permId ={order.perm_id}",
            )  # fmt: skip
        else:
            for o in [order, *self.book.children_of(order)]:
                self._cancel_one(o, with_202=True)
            self.save()

    def global_cancel(self) -> None:
        for order in sorted(self.book.working() + self._held(), key=lambda o: o.perm_id):
            self._cancel_one(order, with_202=True)
        self.save()

    def _held(self) -> list[SimOrder]:
        return [o for o in self.book.orders.values() if o.status == "PendingSubmit"]

    def _cancel_one(self, order: SimOrder, with_202: bool) -> None:
        if order.status in DONE:
            return
        cancelled = self.book.put(msgspec.structs.replace(order, status="Cancelled"))
        items: list[Item] = [("status", m.order_status(cancelled))]
        self.deliver(order.client_id, items)
        if with_202:
            self.send_error(order.client_id, order.order_id, 202, "Order Canceled - reason:")

    # ---- matching and fills ----------------------------------------------------------------------

    def match(self, symbol: str, faults: frozenset[str] = frozenset(), prefix: dict | None = None) -> None:
        """Fill every order trading at the symbol's price until none does (a fill may release children)."""
        prefix = dict(prefix or {})
        price = self.prices.price(symbol)
        for _ in range(100):
            self.book.mark_triggered(symbol, price)
            ready = self.book.executable_now(symbol, price)
            if not ready:
                break
            order = ready[0]
            items = prefix.pop(order.key, [])
            self.deliver(order.client_id, apply_faults(items + self.fill(order, price, faults), faults))
            faults = frozenset()
            self.after_fill(self.book.orders[order.key])
        for key, items in prefix.items():  # acknowledged orders that did not trade
            self.deliver(key[0], apply_faults(items, faults))
        self.save()

    def fill(self, order: SimOrder, price: float, faults: frozenset[str]) -> list[Item]:
        items: list[Item] = []
        account = self.accounts[order.account]
        for shares in split_quantity(order.remaining, self.config.partial_fills):
            order = self.book.put(with_fill(order, shares, price))
            commission = commission_for(shares, self.config.commission_per_share, self.config.min_commission)
            now = self.clock()
            record = ExecRecord(
                exec_id=self._new_exec_id(), order_id=order.order_id, client_id=order.client_id,
                perm_id=order.perm_id, contract=order.contract, account=order.account,
                side="BOT" if order.is_buy else "SLD", shares=shares, price=price, cum_qty=order.filled,
                avg_price=order.avg_fill_price, order_ref=order.order_ref, time=ib_time(now), epoch=now,
                commission=commission,
            )  # fmt: skip
            if "correction" in faults:
                wrong = msgspec.structs.replace(
                    record, price=round(price + (0.01 if order.is_buy else -0.01), 2)
                )
                self.executions.append(wrong)
                items += [("exec", m.exec_details(-1, wrong)), ("commission", m.commission_report(wrong))]
                record = msgspec.structs.replace(record, exec_id=record.exec_id[:-2] + "02")
            realized = account.record(record)
            record = msgspec.structs.replace(record, realized_pnl=realized if realized else None)
            self.executions.append(record)
            items.append(("exec", m.exec_details(-1, record)))
            items += self.order_items(order)
            if order.status == "Filled":
                items.append(("open", [order, None, record.commission]))
            items.append(("commission", m.commission_report(record)))
        return items

    def after_fill(self, order: SimOrder) -> None:
        """Positions and account updates to subscribers; release bracket children; cancel OCA siblings."""
        self.publish_account(order.account, order.contract.con_id)
        if order.status != "Filled":
            return
        for sibling in self.book.oca_siblings(order):
            self._cancel_one(sibling, with_202=False)
        for child in self.book.children_of(order):
            if child.status == "PreSubmitted":
                child = self.book.put(msgspec.structs.replace(child, status="Submitted"))
                self.deliver(child.client_id, self.order_items(child))

    def publish_account(self, account_name: str, con_id: int) -> None:
        account = self.accounts[account_name]
        pos = account.positions[con_id]
        prices = self.prices.snapshot()
        for peer in self.peers:
            if peer.positions_subscribed:
                peer.send(m.position(pos))
            if peer.account_subscribed == account_name:
                for key, value, cur in account.values(prices):
                    peer.send(m.account_value(key, value, cur, account_name))
                peer.send(m.portfolio(pos, prices.get(pos.contract.symbol, pos.avg_cost)))
                peer.send(m.account_time(datetime.now(UTC).strftime("%H:%M")))
            for req_id, name in peer.multi_subscriptions.items():
                if name == account_name:
                    for key, value, cur in account.values(prices):
                        peer.send(m.account_update_multi(req_id, name, key, value, cur))
