"""What the risk checks count beside the folded state, per scope ("strategy:NAME", "account:ID"): working
orders, orders of the last minute, and the daily profit and loss the loss limit watches.

Daily P&L of a scope = its realized net P&L since the session began + its unrealized P&L now, in the
account's base currency (by IB's exchange rates). Realized: the fold's net realized P&L now minus what it
was when the session began (the baseline, kept in `risk-sessions.json` so a restart within the session
keeps the morning's losses). Unrealized: for a strategy, (mark - average price) x position x multiplier
over its positions, the mark being IB's market data, else the last fill of that conId; for an account,
IB's own figure (its `UnrealizedPnL` in BASE); and an account's P&L is IB's daily P&L from reqPnL where
that is worse (IB's day may begin at another time than the session). A figure that is missing makes the
P&L unknown, and an order for a scope whose loss limit is set is then refused (`no_pnl`): the check
fails closed.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path

import msgspec

from events.schema import KillSwitchChanged, kill_scope
from oms.service.files import write_private
from oms.service.risk import RiskLimits, strategy_limits
from oms.service.sessions import session_start
from oms.state.accounts import in_base
from oms.state.model import TERMINAL, Account, Changed, Order, Position, State
from oms.state.money import Money
from oms.state.positions import multiplier

log = logging.getLogger(__name__)

MINUTE_NS = 60_000_000_000
HOUR_NS = 60 * MINUTE_NS
SESSIONS_FILE = "risk-sessions.json"


class Baseline(msgspec.Struct, array_like=True):
    session: int  # when the session began (UTC ns)
    realized: Decimal  # the scope's net realized P&L then, base currency


class Sessions(msgspec.Struct):
    """`risk-sessions.json`: each scope's baseline, the session in which its loss kill engaged, and the
    session in which an operator released it (its loss limit then waits for the next one)."""

    baselines: dict[str, Baseline] = {}
    kills: dict[str, int] = {}
    released: dict[str, int] = {}


class RiskBook:
    """Kept by the handlers beside the pipeline's state: it sees every step's changes (`observe`), and
    the handlers ask it for counts and P&L (the `Tally` the intake reads) and for crossed loss limits."""

    def __init__(
        self, limits: RiskLimits, state_of: Callable[[], State], directory: Path | None, now_ns: int
    ) -> None:
        self.limits = limits
        self.state_of = state_of  # the state the checks read (the pipeline's)
        self.now_ns = now_ns
        self.quotes: dict[int, Decimal] = {}  # conId -> IB's latest market price (set_quote)
        self._pnl: dict[str, tuple[int, Decimal | str]] = {}  # scope -> (session, P&L): until it moves
        self.last_fills: Mapping[int, Decimal] = {}  # conId -> last fill price (the pipeline's)
        self._limits: dict[str, RiskLimits] = {}
        self._bounds: dict[str, tuple[int, int]] = {}  # scope -> its session's start and end
        self._working: dict[str, set[str]] = {}
        self._recent: dict[str, deque[int]] = {}
        self._positions: dict[str, set[str]] = {}  # strategy -> its strategy position keys
        self._money: dict[str, tuple[Decimal, Money]] = {}  # position key -> quantity, realized (by id)
        self._path = directory / SESSIONS_FILE if directory is not None else None
        self.sessions = self._load()
        state = state_of()
        self.observe([*state.orders.values(), *state.strategy_positions.values()])
        self._at_start = set(self.scopes(state))  # scopes that may have realized P&L before this process

    # -- counts ---------------------------------------------------------------------------------------

    def working(self, scope: str) -> int:
        return len(self._working.get(scope, ()))

    def recent(self, scope: str) -> int:
        times = self._recent.get(scope)
        if not times:
            return 0
        while times and times[0] <= self.now_ns - MINUTE_NS:
            times.popleft()
        return len(times)

    def placed(self, strategy_id: str, account: str) -> None:
        """An order was logged: it counts towards both scopes' orders per minute."""
        for scope in (kill_scope(strategy_id), kill_scope(account=account)):
            self._recent.setdefault(scope, deque()).append(self.now_ns)

    def set_quote(self, con_id: int, price: Decimal) -> None:
        """IB's price of an instrument: every strategy's P&L may have moved."""
        if self.quotes.get(con_id) != price:
            self.quotes[con_id] = price
            self._pnl.clear()

    def observe(self, changes: Iterable[Changed]) -> None:
        """Working orders and strategy positions from the entities a step changed; the P&L of the
        scopes whose money moved is computed again when next asked."""
        for change in changes:
            if type(change) is Order:
                for scope in (kill_scope(change.strategy_id), kill_scope(account=change.account)):
                    if change.status in TERMINAL or change.external:
                        self._working.get(scope, set()).discard(change.client_order_id)
                    else:
                        self._working.setdefault(scope, set()).add(change.client_order_id)
            elif type(change) is Position:
                if change.strategy_id:
                    self._positions.setdefault(change.strategy_id, set()).add(change.key)
                money = (change.quantity, change.realized_pnl_net)
                before = self._money.get(change.key)
                if before is None or before[0] != money[0] or before[1] is not money[1]:
                    self._money[change.key] = money  # a fill: its price is a mark of every strategy
                    self._pnl.clear()  # holding the instrument (a working order moves no money)
            elif type(change) is Account:  # an exchange rate moves every scope's P&L in its account
                self._pnl.clear()

    # -- daily loss -----------------------------------------------------------------------------------

    def limits_of(self, scope: str) -> RiskLimits:
        """A strategy's limits (its overrides of the account's); the account's for an account."""
        found = self._limits.get(scope)
        if found is None:
            kind, _, name = scope.partition(":")
            found = strategy_limits(self.limits, name) if kind == "strategy" else self.limits
            self._limits[scope] = found
        return found

    def session(self, scope: str) -> int:
        """When the scope's session began (its boundaries are kept: asked on every order)."""
        start, end = self._bounds.get(scope, (0, 0))
        if not start <= self.now_ns < end:
            reset = self.limits_of(scope).session_reset
            start = session_start(self.now_ns, reset)
            end = session_start(start + 36 * HOUR_NS, reset)  # the next boundary (a day, DST or not)
            self._bounds[scope] = (start, end)
        return start

    def loss_unknown(self, scope: str) -> str:
        pnl = self.daily_pnl(self.state_of(), scope) if self.limits_of(scope).daily_loss_limit else 0
        return pnl if isinstance(pnl, str) else ""

    def prime(self) -> None:
        """Take the baseline of every scope whose session has begun since it was last taken (at
        start-up and periodically, so a session's first losing fill is counted against it)."""
        state = self.state_of()
        for scope in self.scopes(state):
            if self.limits_of(scope).daily_loss_limit is not None:
                self.daily_pnl(state, scope)

    def daily_pnl(self, state: State, scope: str) -> Decimal | str:
        """The scope's P&L since its session began, or why it cannot be told (kept until an event
        moves the scope's money, IB's price moves, or the session ends)."""
        session = self.session(scope)
        cached = self._pnl.get(scope)
        if cached is not None and cached[0] == session:
            return cached[1]
        pnl = self._daily_pnl(state, scope)
        self._pnl[scope] = (session, pnl)
        return pnl

    def _daily_pnl(self, state: State, scope: str) -> Decimal | str:
        kind, _, name = scope.partition(":")
        realized = self._realized(state, kind, name)
        if isinstance(realized, str):
            return realized
        unrealized = self._unrealized(state, kind, name)
        if isinstance(unrealized, str):
            return unrealized
        ibs = None
        if kind == "account":
            acct = state.accounts.get(name)
            if acct is None:  # an order for it before IB reported it: unknown, so refused, not an error
                return f"IB has reported no account values for {name} yet"
            ibs = _decimal(acct.values.get("DailyPnL:BASE"))
        ours = realized - self._baseline(scope, realized) + unrealized
        return ours if ibs is None else min(ours, ibs)  # IB's own figure where it is the worse one

    def _baseline(self, scope: str, realized: Decimal) -> Decimal:
        """The realized P&L when the scope's session began. Taken when the session is first seen: at
        start-up (what the scope had realized up to then; the file keeps an earlier start-up's within
        the same session), at the boundary (`prime`, periodically); a scope that appeared since this
        process started has realized all it has since: 0."""
        start = self.session(scope)
        found = self.sessions.baselines.get(scope)
        if found is None or found.session != start:
            found = Baseline(start, realized if scope in self._at_start or found else Decimal(0))
            self.sessions.baselines[scope] = found
            self._save()
        return found.realized

    def _realized(self, state: State, kind: str, name: str) -> Decimal | str:
        if kind == "account":
            acct = state.accounts.get(name)
            if acct is None or not acct.realized_pnl_net:
                return Decimal(0)
            if acct.realized_pnl_net_base is None:
                return f"IB has given no exchange rate for {name}'s realized P&L currencies"
            return acct.realized_pnl_net_base
        total = Decimal(0)
        for key in self._positions.get(name, ()):
            pos = state.strategy_positions.get(key)
            if pos is None or not pos.realized_pnl_net:
                continue
            acct = state.accounts.get(pos.account)
            value = in_base(acct.values, pos.realized_pnl_net) if acct is not None else None
            if value is None:
                return f"IB has given no exchange rate for {pos.contract.currency} in {pos.account}"
            total += value
        return total

    def _unrealized(self, state: State, kind: str, name: str) -> Decimal | str:
        if kind == "account":
            return self._account_unrealized(state, name)
        total = Decimal(0)
        for key in self._positions.get(name, ()):
            pos = state.strategy_positions.get(key)
            if pos is None or not pos.quantity:
                continue
            value = self._open_value(state, pos)
            if isinstance(value, str):
                return value
            total += value
        return total

    @staticmethod
    def _account_unrealized(state: State, name: str) -> Decimal | str:
        """IB's UnrealizedPnL: in BASE, else in the currency IB gives NetLiquidation in (its summary
        row); 0 while the account holds nothing."""
        acct = state.accounts.get(name)
        values = acct.values if acct is not None else {}
        base = next((k.partition(":")[2] for k in values if k.startswith("NetLiquidation:")), "BASE")
        found = _decimal(values.get("UnrealizedPnL:BASE") or values.get(f"UnrealizedPnL:{base}"))
        if found is not None:
            return found
        if not any(p.quantity for p in state.positions.values() if p.account == name):
            return Decimal(0)
        return f"IB has not reported {name}'s UnrealizedPnL"

    def mark(self, pos: Position) -> Decimal | None:
        """The position's instrument's price: IB's market data, else its last fill."""
        key = pos.key.rpartition("|")[2]
        con_id = pos.contract.con_id or (int(key) if key.isdigit() else 0)
        return self.quotes.get(con_id) or self.last_fills.get(con_id)

    def positions(self, state: State, scope: str) -> list[Position]:
        """The scope's positions: a strategy's view, or the account's."""
        kind, _, name = scope.partition(":")
        if kind == "account":
            return [p for p in state.positions.values() if p.account == name]
        found = (state.strategy_positions.get(k) for k in self._positions.get(name, ()))
        return [p for p in found if p is not None]

    def working_orders(self, state: State, scope: str) -> list[Order]:
        found = (state.orders.get(c) for c in self._working.get(scope, ()))
        return [o for o in found if o is not None]

    def _open_value(self, state: State, pos: Position) -> Decimal | str:
        mark = self.mark(pos)
        if mark is None:
            return f"no price for {pos.contract.symbol} (no market data from IB, no fill)"
        acct = state.accounts.get(pos.account)
        gain = {pos.contract.currency: (mark - pos.avg_price) * pos.quantity * multiplier(pos.contract)}
        value = in_base(acct.values, gain) if acct is not None else None
        if value is None:
            return f"IB has given no exchange rate for {pos.contract.currency} in {pos.account}"
        return value

    def crossed(self, state: State, scopes: Iterable[str]) -> list[tuple[str, Decimal, Decimal]]:
        """(scope, daily P&L, limit) for each scope whose loss now reaches its limit and whose kill
        switch is not engaged already (nor released by an operator in this session)."""
        found = []
        for scope in scopes:
            limit = self.limits_of(scope).daily_loss_limit
            released = self.sessions.released.get(scope) == self.session(scope)
            if limit is None or scope in state.kill_scopes or released:
                continue
            pnl = self.daily_pnl(state, scope)
            if not isinstance(pnl, str) and pnl <= -limit:
                found.append((scope, pnl, limit))
        return found

    def engaged(self, scope: str) -> None:
        self.sessions.kills[scope] = self.session(scope)
        self._save()

    def released(self, scope: str) -> None:
        """An operator released the scope: its loss limit does not engage again this session."""
        self.sessions.released[scope] = self.session(scope)
        self.sessions.kills.pop(scope, None)
        self._save()

    def expired(self, state: State) -> list[str]:
        """Loss kills engaged in an earlier session than the scope's current one: to be released."""
        return [
            scope
            for scope, (code, _) in state.kill_scopes.items()
            if code == "daily_loss_limit" and self.sessions.kills.get(scope, 0) != self.session(scope)
        ]

    def scopes(self, state: State) -> list[str]:
        """Every scope the book knows of: accounts, and strategies with orders or positions."""
        names = {*self._working, *state.kill_scopes, *(kill_scope(s) for s in self._positions)}
        names.update(kill_scope(account=a) for a in state.accounts)
        names.update(kill_scope(s) for s in self.limits.strategies)
        return sorted(names)

    # -- the file -------------------------------------------------------------------------------------

    def _load(self) -> Sessions:
        if self._path is None or not self._path.exists():
            return Sessions()
        try:
            return msgspec.json.decode(self._path.read_bytes(), type=Sessions)
        except (OSError, msgspec.DecodeError) as exc:
            log.warning("%s unreadable (%s): the daily P&L starts again from now", self._path, exc)
            return Sessions()

    def _save(self) -> None:
        if self._path is not None:
            write_private(self._path, msgspec.json.encode(self.sessions), fsync=True)


def scope_names(scope: str) -> tuple[str, str]:
    """(strategy_id, account) of a scope, as KillSwitchChanged names it ("" for the other)."""
    kind, _, name = scope.partition(":")
    return (name, "") if kind == "strategy" else ("", name)


def scope_switch(scope: str, engaged: bool, reason: str, code: str) -> KillSwitchChanged:
    strategy_id, account = scope_names(scope)
    return KillSwitchChanged(
        engaged=engaged, reason=reason, strategy_id=strategy_id, account=account, code=code
    )


def _decimal(text: str | None) -> Decimal | None:
    """One of IB's account values as a number; None when absent or not a number."""
    if text is None:
        return None
    try:
        found = Decimal(text)
    except InvalidOperation:
        return None
    return found if found.is_finite() else None
