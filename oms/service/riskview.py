"""`risk`: where each scope stands against each of its limits (use and headroom), for `oms risk`.

Use, per limit: max_quantity and max_notional, the largest working order (notional only where the
order carries a price); max_position and max_position_value, the largest position (valued at IB's
price); max_position_pct_nlv, the largest share of NetLiquidation (in the base currency, by IB's
exchange rate); max_orders_per_minute and max_working_orders, the counts; daily_loss_limit, the loss
since the session began (0 while in profit). max_risk_per_trade_pct_nlv holds per order: it has no
standing use. Headroom = limit - use. Notional and position value are in each instrument's own currency,
as their limits are (risk.py checks each order and position against the limit in its currency): the
largest of them is the one nearest its limit.
"""

from __future__ import annotations

from decimal import Decimal

from oms.protocol import LimitUse, ScopeRisk
from oms.service.exposure import exchange_rate, known_multiplier, net_liquidation, remaining
from oms.service.risk import LIMIT_KEYS, RiskLimits
from oms.service.riskbook import RiskBook
from oms.state.model import Order, Position, State
from oms.state.money import exact
from oms.state.positions import multiplier

HUNDRED = Decimal(100)


def standings(state: State, book: RiskBook, strategy_id: str | None = None) -> list[ScopeRisk]:
    scopes = book.scopes(state)
    if strategy_id is not None:
        scopes = [s for s in scopes if s == f"strategy:{strategy_id}"]
    return [_scope(state, book, scope) for scope in scopes]


def _scope(state: State, book: RiskBook, scope: str) -> ScopeRisk:
    limits = book.limits_of(scope)
    pnl = book.daily_pnl(state, scope)
    orders = book.working_orders(state, scope)
    positions = [p for p in book.positions(state, scope) if p.quantity]
    largest = _largest_position(state, book, positions)
    uses: dict[str, Decimal | str | None] = {
        "max_quantity": max((remaining(o) for o in orders), default=Decimal(0)),
        "max_notional": max((_notional(state, o) for o in orders), default=Decimal(0)),
        "max_position": max((abs(p.quantity) for p in positions), default=Decimal(0)),
        "max_position_value": largest[0],
        "max_position_pct_nlv": largest[1],
        "max_risk_per_trade_pct_nlv": None,
        "max_orders_per_minute": Decimal(book.recent(scope)),
        "max_working_orders": Decimal(len(orders)),
        "daily_loss_limit": pnl if isinstance(pnl, str) else max(-pnl, Decimal(0)),
    }
    killed = state.kill_scopes.get(scope)
    return ScopeRisk(
        scope=scope,
        kill=f"{killed[0] or 'kill_switch'}: {killed[1]}" if killed else "",
        daily_pnl=None if isinstance(pnl, str) else pnl,
        session_start_ts=book.session(scope),
        limits=[_use(limits, key, uses[key]) for key in LIMIT_KEYS if key != "session_reset"],
    )


def _use(limits: RiskLimits, key: str, use: Decimal | str | None) -> LimitUse:
    value = getattr(limits, key)
    limit = Decimal(value) if value is not None else None
    if isinstance(use, str):
        return LimitUse(key, limit, unknown=use)
    headroom = limit - use if limit is not None and use is not None else None
    return LimitUse(key, limit, use, headroom)


def _notional(state: State, order: Order) -> Decimal:
    price = order.limit_price if order.limit_price is not None else order.stop_price
    mult = known_multiplier(state, order.contract)
    if price is None or mult is None:
        return Decimal(0)
    return remaining(order) * exact(price) * mult


def _largest_position(
    state: State, book: RiskBook, positions: list[Position]
) -> tuple[Decimal | str, Decimal | str]:
    """The largest position's value, and the largest position's share of its account's NetLiquidation,
    each found on its own. The value is in the position's own currency, as max_position_value is (the
    check compares each position with the limit in its instrument's currency); the shares are all in
    the base currency, by IB's exchange rate, so the largest share is not the largest raw amount."""
    value, pct = Decimal(0), Decimal(0)
    unknown = ""
    for pos in positions:
        mark = book.mark(pos)
        if mark is None:
            missing = f"no price for {pos.contract.symbol}"
            return missing, missing
        worth = abs(pos.quantity) * mark * multiplier(pos.contract)
        value = max(value, worth)
        acct = state.accounts.get(pos.account)
        nlv, rate = net_liquidation(acct), exchange_rate(acct, pos.contract.currency)
        if nlv and rate is not None:
            pct = max(pct, worth * rate * HUNDRED / nlv)
        else:
            unknown = f"no NetLiquidation or exchange rate for {pos.account}"
    return value, unknown or pct
