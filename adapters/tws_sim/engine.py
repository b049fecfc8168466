"""The simulated broker: orders, matching, fills and the message sequences TWS sends for them.

Synchronous and socket-free: it talks to connected clients only through `Peer.send(fields)`, so every
sequence (openOrder / orderStatus / execDetails / commissionReport, faults applied) is built and sent in
one go on the event loop, in the order a test can predict. Order entry (how TWS answers placeOrder and
cancelOrder) is in `orders`; this module holds the state, the clock, matching and fills. DAY orders are
cancelled at their session's close and GTD orders at their time (`expire`, O(1) when none is due); MOC
and LOC orders trade at the close instead, in the closing auction, and OPG orders in the opening one.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec

from adapters.tws_sim import hours
from adapters.tws_sim import messages as m
from adapters.tws_sim.account import Account, ExecRecord, commission_for
from adapters.tws_sim.catalog import BY_CON_ID, BY_KEY
from adapters.tws_sim.config import SimConfig
from adapters.tws_sim.delivery import Item, Peer, Peers, apply_faults, render
from adapters.tws_sim.faults import FaultDice
from adapters.tws_sim.feeds import Feeds
from adapters.tws_sim.matching import DONE, OrderBook, SimOrder, crosses, split_quantity, with_fill
from adapters.tws_sim.persist import (
    ChangeLog,
    Executed,
    IdsAdvanced,
    OrderChanged,
    SavedState,
    load_state,
    save_state,
)
from adapters.tws_sim.prices import PricePaths
from adapters.tws_sim.triggers import ON_CLOSE, TRAILING, ratchet


class Engine:
    def __init__(self, config: SimConfig, clock: Callable[[], float] | None = None) -> None:
        self.config = config
        self.clock = clock or hours.SimClock(hours.start_epoch(config.clock_start))
        self.tz = ZoneInfo(config.tws_time_zone)
        self.prices = PricePaths(config.seed)
        self.dice = FaultDice(config.faults)
        self.peers = Peers(config.master_client_id)
        self.link_up = True
        self.oca_done: set[tuple[str, str]] = set()  # (account, group) of OCA type 1 groups that executed
        state = (load_state(config.state_dir) if config.state_dir else None) or SavedState()
        self.accounts = {name: Account(name, cash={"USD": config.starting_cash}) for name in config.accounts}
        self.executions: list[ExecRecord] = []
        for e in state.executions:
            self.accounts.setdefault(e.account, Account(e.account, cash={"USD": config.starting_cash}))
            self.accounts[e.account].record(e)
            self.executions.append(e)
        self.book = OrderBook(state.orders)
        self.next_ids: dict[int, int] = dict(state.next_ids)
        self._perm_id = max([o.perm_id for o in state.orders] + [state.last_perm_id])
        self._exec_seq = state.exec_seq
        self._manual_ids = -min([0, *(o.order_id for o in state.orders if o.client_id == 0)])
        self._expiries: list[tuple[float, tuple[int, int]]] = [
            (o.day_end, o.key) for o in self.book.working() + self.book.held() if o.day_end
        ]
        heapq.heapify(self._expiries)
        for key, price in state.prices.items():
            self.prices.set(key, price)
        self.feeds = Feeds(
            self.peers, self.prices, self.accounts, config.tws_time_zone, self.executions_today
        )
        self._log: ChangeLog | None = None
        if config.state_dir:
            self.compact()
            self._log = ChangeLog(config.state_dir)

    # ---- persistence, ids and time -----------------------------------------------------------------

    def compact(self) -> None:
        """Fold the change log into a fresh snapshot (on start and on close)."""
        if not self.config.state_dir:
            return
        if self._log is not None:
            self._log.close()
        save_state(
            self.config.state_dir,
            SavedState(
                orders=list(self.book.orders.values()), executions=self.executions, next_ids=self.next_ids,
                last_perm_id=self._perm_id, exec_seq=self._exec_seq, prices=self.prices.snapshot(),
            ),
        )  # fmt: skip
        if self._log is not None:
            self._log = ChangeLog(self.config.state_dir)

    def close(self) -> None:
        self.compact()
        if self._log is not None:
            self._log.close()
            self._log = None

    def put(self, order: SimOrder) -> SimOrder:
        """Every order change goes through here: the book, the change log, the DAY-expiry queue."""
        if order.status in DONE and not order.done_epoch:
            order = msgspec.structs.replace(order, done_epoch=self.clock())
        old = self.book.orders.get(order.key)
        self.book.put(order)
        if order.day_end and (old is None or old.day_end != order.day_end):
            heapq.heappush(self._expiries, (order.day_end, order.key))
        if self._log is not None:
            self._log.append(OrderChanged(order))
        return order

    def next_valid_id(self, client_id: int) -> int:
        return self.next_ids.get(client_id, 1)

    def advance_ids(self, client_id: int, used: int) -> None:
        if used + 1 > self.next_ids.get(client_id, 1):
            self.next_ids[client_id] = used + 1
            if self._log is not None:
                self._log.append(IdsAdvanced(client_id, used + 1))

    def ib_time(self, epoch: float) -> str:
        """An execution / completion time as TWS writes it: local time and its zone's name."""
        return f"{datetime.fromtimestamp(epoch, self.tz):%Y%m%d %H:%M:%S} {self.config.tws_time_zone}"

    def connection_time(self) -> str:
        """The handshake's connection time as TWS writes it: local time and the zone as Java names it
        (`20240105 09:30:00 EST`, never the IANA name; adapters/ib/timezones.py resolves it)."""
        return f"{datetime.fromtimestamp(self.clock(), self.tz):%Y%m%d %H:%M:%S %Z}"

    def completed_time(self, order: SimOrder) -> str:
        return self.ib_time(order.done_epoch or self.clock())

    def completed_today(self) -> list[SimOrder]:
        """What reqCompletedOrders can return: orders completed in the current trading day, since midnight
        in TWS's zone (IB's reqCompletedOrders docs; as for executions, IB keeps no more)."""
        since = hours.midnight(self.clock(), self.config.tws_time_zone)
        done = [o for o in self.book.orders.values() if o.status in DONE and (o.done_epoch or since) >= since]
        return sorted(done, key=lambda o: o.perm_id)

    def executions_today(self) -> list[ExecRecord]:
        """What reqExecutions can return: executions since midnight in TWS's zone (IB keeps no more)."""
        since = hours.midnight(self.clock(), self.config.tws_time_zone)
        return [e for e in self.executions if e.epoch >= since]

    def new_perm_id(self) -> int:
        self._perm_id = max(self._perm_id, 1_000_000_000 + self.config.seed * 1000) + 1
        return self._perm_id

    def _new_exec_id(self) -> str:
        self._exec_seq += 1
        return f"0000{self.config.seed & 0xFFFF:04x}.{0x65660000 + self._exec_seq:08x}.01.01"

    def open_for(self, order: SimOrder) -> bool:
        """Whether the order's session lets it trade now: regular hours, or extended hours if flagged."""
        inst = BY_CON_ID.get(order.contract.con_id)
        if inst is None:
            return True
        now = self.clock()
        return hours.is_open(inst.session, now, liquid=True) or (
            order.outside_rth and hours.is_open(inst.session, now, liquid=False)
        )

    # ---- delivery ----------------------------------------------------------------------------------

    def deliver(self, order: SimOrder, items: list[Item]) -> None:
        self.peers.deliver(order, items)

    def order_items(
        self, order: SimOrder, status: str | None = None, commission: float | None = None
    ) -> list[Item]:
        """openOrder + orderStatus; openOrder is rendered per peer version, so it carries its arguments."""
        return [("open", [order, status, commission]), ("status", m.order_status(order, status))]

    def drop_peer(self, peer: Peer, code: int | None = 1100) -> None:
        """The API socket drops (TWS restarting): error `code` first if given; its orders keep working."""
        if code is not None:
            peer.send(
                m.error(
                    peer.version, -1, code, "Connectivity between IB and Trader Workstation has been lost."
                )
            )
        self.peers.lost_clients[peer.client_id] = False
        self.peers.remove(peer)
        peer.close()

    def set_link(self, up: bool, data_lost: bool = False) -> None:
        """TWS's link to IB: lost (1100, sockets stay up, nothing trades) or restored (1101 / 1102)."""
        if up == self.link_up:
            return
        self.link_up = up
        if not up:
            self.peers.broadcast_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
            return
        code, kept = (1101, "data lost") if data_lost else (1102, "data maintained")
        if data_lost:  # IB (message codes, 1101): market and account data subscriptions must be resubmitted
            for peer in self.peers:
                peer.market_data.clear()
                peer.account_subscribed = None
                peer.multi_subscriptions.clear()
                peer.pnl_subscriptions.clear()
        self.peers.broadcast_error(
            code, f"Connectivity between IB and Trader Workstation has been restored - {kept}."
        )
        self.match_all()

    # ---- orders ------------------------------------------------------------------------------------

    def cancel_one(self, order: SimOrder, with_202: bool) -> None:
        if order.status in DONE:
            return
        cancelled = self.put(msgspec.structs.replace(order, status="Cancelled"))
        self.deliver(cancelled, [("status", m.order_status(cancelled))])
        if with_202:
            self.peers.error(order.client_id, order.wire_id, 202, "Order Canceled - reason:")

    def expire(self) -> None:
        """Cancel the DAY orders whose session closed (IB: cancelled at the close) and the GTD orders
        whose time came; MOC / LOC orders go to the closing auction instead. O(1) when none is due."""
        now = self.clock()
        while self._expiries and self._expiries[0][0] <= now:
            day_end, key = heapq.heappop(self._expiries)
            order = self.book.orders.get(key)
            if order is None or order.day_end != day_end or order.status in DONE:
                continue
            if order.order_type in ON_CLOSE and self.link_up and self.book.active(order):
                self.auction(order)
            else:
                self.cancel_one(order, with_202=False)

    def auction(self, order: SimOrder) -> None:
        """An auction (the close for MOC / LOC, the open for OPG): the order fills whole at the path's
        price if its limit allows, else it is cancelled (IB: an unexecuted auction order is cancelled)."""
        price = self.prices.price(order.price_key)
        if not crosses(order, price):
            self.cancel_one(order, with_202=False)
            return
        before = order.filled
        self.deliver(order, self.fill(order, price, frozenset()))
        self.after_fill(self.book.orders[order.key], self.book.orders[order.key].filled - before)

    def bind_manual_orders(self) -> list[SimOrder]:
        """reqOpenOrders from client 0 binds the orders typed into TWS (they get negative orderIds)."""
        return [
            self.put(msgspec.structs.replace(o, bound=True))
            for o in self.book.working() + self.book.held()
            if o.client_id == 0 and not o.bound
        ]

    def new_manual_id(self) -> int:
        self._manual_ids += 1
        return -self._manual_ids

    # ---- matching and fills --------------------------------------------------------------------------

    def match_all(self) -> None:
        for key in sorted({o.price_key for o in self.book.working()}):
            self.match(key)

    def match(self, key: str, faults: frozenset[str] = frozenset(), prefix: dict | None = None) -> None:
        """Fill every order trading at the path's price until none does (a fill may release children)."""
        prefix = dict(prefix or {})
        self.feeds.stream(key)
        if self.link_up:
            price = self.prices.price(key)
            self._trail(key, price)
            for order in self.book.working(key):
                if order.tif == "OPG" and self.book.active(order) and self.open_for(order):
                    self.auction(order)  # the first match after the open is the opening auction
            for order in self.book.mark_triggered(key, price, self.open_for):
                self.deliver(order, prefix.pop(order.key, []) + self.order_items(order))
            for order in self.book.working(key):
                if order.status == "PreSubmitted" and order.order_type == "LMT" and self._may_work(order):
                    order = self.put(msgspec.structs.replace(order, status="Submitted"))
                    self.deliver(order, prefix.pop(order.key, []) + self.order_items(order))
            for _ in range(100):
                ready = self.book.executable_now(key, price, self.open_for)
                if not ready:
                    break
                order = ready[0]
                items = prefix.pop(order.key, [])
                self.deliver(order, apply_faults(items + self.fill(order, price, faults), faults))
                faults = frozenset()
                filled = self.book.orders[order.key]
                self.after_fill(filled, filled.filled - order.filled)
        for okey, items in prefix.items():  # acknowledged orders that did not trade
            self.deliver(self.book.orders[okey], apply_faults(items, faults))

    def _trail(self, key: str, price: float) -> None:
        """Move the trailing stops working on this path with its price; each move is reported in an
        openOrder carrying the new trailStopPrice (and a TRAIL LIMIT's new limit), as TWS reports it."""
        tick = BY_KEY[key].min_tick
        for order in self.book.working(key):
            if order.order_type not in TRAILING or order.stop_triggered or not self.book.active(order):
                continue
            moved = ratchet(order, price, tick)
            if moved is not None:
                order = self.put(msgspec.structs.replace(order, **moved))
                self.deliver(order, [("open", [order, None, None])])

    def _may_work(self, order: SimOrder) -> bool:
        return self.book.active(order) and self.open_for(order)

    def fill(self, order: SimOrder, price: float, faults: frozenset[str]) -> list[Item]:
        items: list[Item] = []
        account = self.accounts[order.account]
        for shares in split_quantity(order.remaining, self.config.partial_fills):
            order = self.put(with_fill(order, shares, price))
            commission = commission_for(
                order.contract, shares, price, self.config.commission_per_share, self.config.min_commission
            )
            now = self.clock()
            record = ExecRecord(
                exec_id=self._new_exec_id(), order_id=order.wire_id, client_id=order.client_id,
                perm_id=order.perm_id, contract=order.contract, account=order.account,
                side="BOT" if order.is_buy else "SLD", shares=shares, price=price, cum_qty=order.filled,
                avg_price=order.avg_fill_price, order_ref=order.order_ref, time=self.ib_time(now), epoch=now,
                commission=commission, currency=order.contract.currency,
            )  # fmt: skip
            if "correction" in faults:
                inst = BY_CON_ID[order.contract.con_id]
                moved = round(price + (inst.min_tick if order.is_buy else -inst.min_tick), 10)
                wrong = msgspec.structs.replace(record, price=moved)
                self._executed(wrong)
                items += [("exec", [-1, wrong]), ("commission", m.commission_report(wrong))]
                record = msgspec.structs.replace(record, exec_id=record.exec_id[:-2] + "02")
            realized = account.record(record)
            record = msgspec.structs.replace(record, realized_pnl=realized if realized else None)
            self._executed(record)
            items.append(("exec", [-1, record]))
            items += self.order_items(order)
            if order.status == "Filled":
                items.append(("open", [order, None, record.commission]))
            items.append(("commission", m.commission_report(record)))
        return items

    def _executed(self, record: ExecRecord) -> None:
        self.executions.append(record)
        if self._log is not None:
            self._log.append(Executed(record, self._exec_seq))

    def after_fill(self, order: SimOrder, shares: float) -> None:
        """Positions and account updates to subscribers; the OCA group's other orders cancelled or
        reduced by `shares` (just executed); bracket siblings cancelled and children released."""
        self.feeds.after_fill(order.account, order.contract.con_id, self.clock())
        self._oca(order, shares)
        if order.status != "Filled":
            return
        for sibling in self.book.bracket_siblings(order):
            self.cancel_one(sibling, with_202=False)
        for child in self.book.children_of(order):
            if child.status == "PreSubmitted" and child.order_type not in ("STP", "STP LMT", "MKT"):
                child = self.put(msgspec.structs.replace(child, status="Submitted"))
                self.deliver(child, self.order_items(child))

    def _oca(self, order: SimOrder, shares: float) -> None:
        """IB's OCA types: 1 cancels the group's other orders at the first execution; 2 and 3 reduce each
        other order by the quantity executed (an order reduced to nothing is cancelled), as openOrder with
        the new total quantity and orderStatus (IB's OCA page; TWS API Order.ocaType)."""
        if shares > 0 and order.oca_group and order.oca_type not in (2, 3):
            self.oca_done.add((order.account, order.oca_group))
        for other in self.book.oca_group(order) if shares > 0 else []:
            left = other.quantity - shares
            if order.oca_type not in (2, 3) or left <= other.filled + 1e-9:
                self.cancel_one(other, with_202=False)
                continue
            reduced = self.put(msgspec.structs.replace(other, quantity=round(left, 10)))
            self.deliver(reduced, self.order_items(reduced))


__all__ = ["Engine", "render"]
