"""What subscribed clients are told without asking for each update: positions, account values and
portfolio after a fill, and market-data ticks when a price path moves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from adapters.tws_sim import messages_data as md
from adapters.tws_sim.account import Account, ExecRecord, Position
from adapters.tws_sim.catalog import BY_CON_ID, by_key
from adapters.tws_sim.delivery import Peer, Peers
from adapters.tws_sim.prices import PricePaths
from oms.state.money import exact


class Feeds:
    def __init__(
        self,
        peers: Peers,
        prices: PricePaths,
        accounts: dict[str, Account],
        tz: str,
        executions_today: Callable[[], list[ExecRecord]],
    ) -> None:
        self.peers = peers
        self.prices = prices
        self.accounts = accounts
        self.executions_today = executions_today
        self.tz = ZoneInfo(tz)
        self._streamed: dict[str, float] = {}

    def mark(self, p: Position) -> float:
        """The current price of a position's instrument (its cost per unit if the catalog lost it)."""
        inst = BY_CON_ID.get(p.contract.con_id)
        return self.prices.price(inst.key) if inst else p.avg_cost / p.factor

    def rates(self) -> dict[str, float]:
        """Each currency's value in the base currency, from the forex paths (ExchangeRate)."""
        return {"USD": 1.0, "EUR": self.prices.price("EUR.USD"), "JPY": 1.0 / self.prices.price("USD.JPY")}

    def account_rows(self, name: str) -> list[tuple[str, str, str]]:
        return self.accounts[name].values(self.mark, self.rates())

    def send_account(
        self, peer: Peer, name: str, epoch: float, rows: list[tuple[str, str, str]] | None = None
    ) -> None:
        """updateAccountValue rows, updatePortfolio per position, then the account time."""
        for key, value, cur in self.account_rows(name) if rows is None else rows:
            peer.send(md.account_value(key, value, cur, name))
        for pos in self.accounts[name].positions.values():
            peer.send(md.portfolio(pos, self.mark(pos)))
        peer.send(md.account_time(datetime.fromtimestamp(epoch, self.tz).strftime("%H:%M")))

    def pnl(self, name: str, rows: list[tuple[str, str, str]] | None = None) -> tuple[float, float, float]:
        """reqPnL's figures for an account, in its base currency: (daily, unrealized, realized). IB's daily
        P&L restarts every day against the prior close; the simulator has no prior close, so its day's P&L
        is what the account realized since midnight in TWS's zone plus the unrealized P&L against average
        cost (docs/simulator.md)."""
        wanted = ("UnrealizedPnL", "RealizedPnL")
        figures = {k: exact(v) for k, v, c in rows or self.account_rows(name) if c == "BASE" and k in wanted}
        unrealized, realized = (
            figures.get("UnrealizedPnL", Decimal(0)),
            figures.get("RealizedPnL", Decimal(0)),
        )
        rates = self.rates()
        today = sum(
            (
                exact(e.realized_pnl) * exact(rates.get(e.contract.currency, 1.0))
                for e in self.executions_today()
                if e.account == name and e.realized_pnl
            ),
            Decimal(0),
        )
        return float(round(today, 2) + unrealized), float(unrealized), float(realized)

    def send_pnl(
        self, peer: Peer, req_id: int, name: str, rows: list[tuple[str, str, str]] | None = None
    ) -> None:
        peer.send(md.pnl(req_id, *self.pnl(name, rows)))

    def after_fill(self, account_name: str, con_id: int, epoch: float) -> None:
        """The position, and the account's values to its subscribers (computed once per fill)."""
        pos = self.accounts[account_name].positions[con_id]
        wanted = any(
            p.account_subscribed == account_name
            or account_name in p.multi_subscriptions.values()
            or account_name in p.pnl_subscriptions.values()
            for p in self.peers
        )
        rows = self.account_rows(account_name) if wanted else []
        for peer in self.peers:
            if peer.positions_subscribed:
                peer.send(md.position(pos))
            if peer.account_subscribed == account_name:
                self.send_account(peer, account_name, epoch, rows)
            for req_id, name in peer.multi_subscriptions.items():
                if name == account_name:
                    for key, value, cur in rows:
                        peer.send(md.account_update_multi(req_id, name, key, value, cur))
            for req_id, name in peer.pnl_subscriptions.items():
                if name == account_name:
                    self.send_pnl(peer, req_id, name, rows)

    def stream(self, key: str) -> None:
        """A last-price tick to the streaming subscribers of `key` when its price moved."""
        price = self.prices.price(key)
        if self._streamed.get(key) == price:
            return
        self._streamed[key] = price
        for peer in self.peers:
            for req_id, sub in peer.market_data.items():
                if sub == key:
                    peer.send(md.tick_price(req_id, 4, price, 1))

    def quote(self, peer: Peer, req_id: int, key: str) -> None:
        inst = by_key(key)
        assert inst is not None
        for fields in md.quote(req_id, inst, self.prices.price(key)):
            peer.send(fields)
