"""Pre-trade risk checks: pure functions of an order, the limits, and what the service knows.

Each check is off when its limit is None. A check that fails gives a `Denial` whose `code` is stable
(`oms.protocol.RISK_REASONS`); the service logs it as OrderDenied and replies `risk_denied`.

Limits come from `[risk]` (the account's) and `[risk.strategies.NAME]` (a strategy's overrides of them).
Limits on one order (quantity, notional, risk per trade) are the strategy's. Limits on what adds up
(position, working orders, orders per minute, daily loss) hold twice: the strategy's limit on what the
strategy holds, and the account's on what the account holds.

Notional: quantity x price x multiplier, in the instrument's currency. The price is the limit price (LMT,
STP LMT), the stop price (STP), or for MKT a reference price: IB's market data for that conId, else the
last fill of that conId. The multiplier is IB's, never the one a request carries. Percentages of
NetLiquidation compare in the account's base currency, by IB's exchange rate. The checks fail closed: a
limit that needs a figure the service does not have (a price, IB's multiplier, NetLiquidation, an
exchange rate, a stop) denies the order with a code that says which figure is missing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

import msgspec
from msgspec import Struct

from events.schema import OrderRequested
from oms.readable import plain
from oms.state.money import exact

HUNDRED = Decimal(100)
ZERO = Decimal(0)


class StrategyLimits(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`[risk.strategies.NAME]`: what differs for one strategy; a key left out is the account's."""

    max_quantity: Decimal | None = None
    max_notional: Decimal | None = None
    max_position: Decimal | None = None
    max_position_value: Decimal | None = None
    max_position_pct_nlv: Decimal | None = None
    max_risk_per_trade_pct_nlv: Decimal | None = None
    max_orders_per_minute: int | None = None
    max_working_orders: int | None = None
    daily_loss_limit: Decimal | None = None
    session_reset: str | None = None


LIMIT_KEYS: tuple[str, ...] = StrategyLimits.__struct_fields__


class RiskLimits(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`[risk]`: the account's limits, and every strategy's unless `strategies` overrides them. A forex
    quantity counts in units of the base currency (IB's own unit): 100,000 lets a standard 20,000 EUR.USD
    order through."""

    max_quantity: Decimal | None = Decimal(100_000)
    max_notional: Decimal | None = Decimal(1_000_000)
    max_position: Decimal | None = None  # absolute, per instrument
    max_position_value: Decimal | None = None  # |position| x price x multiplier, instrument's currency
    max_position_pct_nlv: Decimal | None = None  # position value as % of NetLiquidation
    max_risk_per_trade_pct_nlv: Decimal | None = None  # |entry - stop| x quantity x multiplier, % of NLV
    max_orders_per_minute: int | None = None
    max_working_orders: int | None = None
    daily_loss_limit: Decimal | None = None  # base currency: realized net + unrealized since session_reset
    session_reset: str = "17:00 America/New_York"  # when the daily loss starts again from zero
    allowed_symbols: tuple[str, ...] | None = None  # None: every symbol
    max_order_age_s: float | None = None  # working orders older than this are cancelled (reason max_age)
    allow_market_without_price: bool = False  # a MKT order nothing can value passes the notional check
    strategies: dict[str, StrategyLimits] = {}


def strategy_limits(limits: RiskLimits, strategy_id: str) -> RiskLimits:
    """The limits one strategy trades under: the account's, with its overrides."""
    override = limits.strategies.get(strategy_id)
    if override is None:
        return limits
    changed = {k: getattr(override, k) for k in LIMIT_KEYS if getattr(override, k) is not None}
    return msgspec.structs.replace(limits, **changed)


class Described(Protocol):
    """What IB's contract details say of an instrument, as intake and risk need it (the IB adapter's
    ContractInfo has this shape)."""

    @property
    def con_id(self) -> int: ...
    @property
    def multiplier(self) -> Decimal: ...
    @property
    def size_increment(self) -> Decimal: ...
    @property
    def primary_exchange(self) -> str: ...  # whose closing auction an MOC / LOC joins (its cut-off)


class UnknownContract(LookupError):
    """IB says the contract names no instrument, or several (its error 200, "No security definition has
    been found for the request"): the order is refused before anything is logged or sent."""


class Reference(Struct, frozen=True):
    """The price a market order is valued at, and where it came from (logged with the decision)."""

    price: Decimal
    source: str


class Standing(Struct, frozen=True):
    """Where one scope (a strategy, or the account) stands: on the order's instrument, and overall."""

    position: Decimal = ZERO  # signed, current
    working_buy: Decimal = ZERO  # remaining quantity of working BUY orders on the instrument
    working_sell: Decimal = ZERO
    working_orders: int = 0  # every instrument
    recent_orders: int = 0  # orders placed in the last minute
    killed: str = ""  # the code of the scope's engaged kill switch (daily_loss_limit, kill_switch)
    loss_unknown: str = ""  # why the daily loss cannot be told now ("" when it can)


class Trade(Struct, frozen=True):
    """What one trade risks: entry and stop prices and the quantity they apply to."""

    entry: Decimal | None  # None: a market order with no reference price
    stop: Decimal
    quantity: Decimal


class Exposure(Struct, frozen=True, kw_only=True):
    """What the service knows about this order's instrument, strategy and account."""

    strategy: Standing = Standing()
    account: Standing = Standing()
    reference: Reference | None = None  # for a market order
    multiplier: Decimal | None = None  # IB's; None when IB has not described the contract
    kill_switch: bool = False  # the switch for everything
    nlv: Decimal | None = None  # the account's NetLiquidation, base currency
    rate: Decimal | None = None  # one unit of the instrument's currency in the base currency
    trade: Trade | None = None  # the order's stop (its own bracket's): None when it has none
    stop_pending: bool = False  # a bracket parent not yet transmitted: its stop child is checked


class Denial(Struct, frozen=True):
    code: str
    reason: str


def reduces(side: str, quantity: Decimal, standing: Standing) -> bool:
    """Whether the order only brings the scope's position nearer to flat (with its working orders on
    that side): such orders pass a loss-limit kill switch."""
    if side == "BUY":
        return standing.position < 0 and standing.working_buy + quantity <= -standing.position
    return standing.position > 0 and standing.working_sell + quantity <= standing.position


def check_order(
    order: OrderRequested, limits: RiskLimits, exposure: Exposure, account_limits: RiskLimits | None = None
) -> Denial | None:
    """The first failing check, in a fixed order (kill switches first). `limits` are the strategy's,
    `account_limits` the account's (the same when not given)."""
    if exposure.kill_switch:
        return Denial("kill_switch", "kill switch engaged: new orders are refused")
    account_limits = limits if account_limits is None else account_limits
    scopes = (
        (f"strategy {order.strategy_id}", limits, exposure.strategy),
        (f"account {order.account}", account_limits, exposure.account),
    )
    for name, scope_limits, standing in scopes:
        denial = _killed(order, name, scope_limits, standing)
        if denial is not None:
            return denial
    symbol = order.contract.symbol
    if limits.allowed_symbols is not None and symbol not in limits.allowed_symbols:
        return Denial("symbol_not_allowed", f"{symbol} is not in allowed_symbols")
    price = order_price(order, exposure)
    denial = check_size(order.quantity, price, exposure.multiplier, limits, symbol)
    for name, scope_limits, standing in scopes:
        denial = (
            denial
            or _counts(name, scope_limits, standing)
            or _position(order, name, scope_limits, standing, price, exposure)
        )
    return denial or _risk_per_trade(order, limits, exposure)


def _killed(order: OrderRequested, name: str, limits: RiskLimits, standing: Standing) -> Denial | None:
    """A scope's kill switch refuses what would add to its exposure; closing orders still pass."""
    unknown = limits.daily_loss_limit is not None and standing.loss_unknown
    if not (standing.killed or unknown) or reduces(order.side, order.quantity, standing):
        return None
    if standing.killed:
        return Denial(standing.killed, f"{name}'s kill switch is engaged ({standing.killed}): only "
                      "orders that reduce a position are accepted")  # fmt: skip
    assert limits.daily_loss_limit is not None
    return Denial("no_pnl", f"{name}'s daily loss cannot be told ({standing.loss_unknown}), so "
                  f"daily_loss_limit {plain(limits.daily_loss_limit)} cannot be checked")  # fmt: skip


def check_size(
    quantity: Decimal, price: Decimal | None, multiplier: Decimal | None, limits: RiskLimits, symbol: str
) -> Denial | None:
    """Quantity and notional: shared by new orders and modifications."""
    if limits.max_quantity is not None and quantity > limits.max_quantity:
        return Denial(
            "max_quantity", f"quantity {plain(quantity)} > max_quantity {plain(limits.max_quantity)}"
        )
    if limits.max_notional is None:
        return None
    if price is None:
        if limits.allow_market_without_price:
            return None
        return _no_price(symbol, "max_notional")
    if multiplier is None:
        return _no_multiplier(symbol)
    notional = quantity * price * multiplier
    if notional > limits.max_notional:
        return Denial("max_notional", f"notional {notional:,.2f} > max_notional {plain(limits.max_notional)}")
    return None


def _no_price(symbol: str, limit: str) -> Denial:
    return Denial(
        "no_reference_price",
        f"no price to value this market order for {symbol} by ({limit} needs one): IB gave no market "
        "data and the contract has no earlier fill (use a limit order, or set allow_market_without_price)",
    )


def _no_multiplier(symbol: str) -> Denial:
    return Denial(
        "unknown_multiplier",
        f"IB has not described {symbol}'s multiplier yet, so the order's value cannot be checked",
    )


def order_price(order: OrderRequested, exposure: Exposure) -> Decimal | None:
    if order.order_type in ("LMT", "STP LMT"):
        return exact(order.limit_price) if order.limit_price is not None else None
    if order.order_type == "STP":
        return exact(order.stop_price) if order.stop_price is not None else None
    return exposure.reference.price if exposure.reference is not None else None


def _counts(name: str, limits: RiskLimits, standing: Standing) -> Denial | None:
    if limits.max_working_orders is not None and standing.working_orders >= limits.max_working_orders:
        return Denial("max_working_orders", f"{name} has {standing.working_orders} working orders, "
                      f"max_working_orders {limits.max_working_orders}")  # fmt: skip
    if limits.max_orders_per_minute is not None and standing.recent_orders >= limits.max_orders_per_minute:
        return Denial("max_orders_per_minute", f"{name} placed {standing.recent_orders} orders in the "
                      f"last minute, max_orders_per_minute {limits.max_orders_per_minute}")  # fmt: skip
    return None


def projected(order: OrderRequested, standing: Standing) -> Decimal:
    """The scope's position on the instrument once its working orders on the order's side, and the
    order, have filled."""
    if order.side == "BUY":
        return standing.position + standing.working_buy + order.quantity
    return standing.position - standing.working_sell - order.quantity


def _position(
    order: OrderRequested,
    name: str,
    limits: RiskLimits,
    standing: Standing,
    price: Decimal | None,
    exposure: Exposure,
) -> Denial | None:
    """Position limits hold only against orders that add to the position (a reducing order always
    passes, even while a position is beyond a limit lowered since it was opened)."""
    wanted = (limits.max_position, limits.max_position_value, limits.max_position_pct_nlv)
    if wanted == (None, None, None) or reduces(order.side, order.quantity, standing):
        return None
    size = abs(projected(order, standing))
    if limits.max_position is not None and size > limits.max_position:
        return Denial("max_position", f"{name}'s position {plain(standing.position)} with working orders "
                      f"and this order reaches {plain(size)}, beyond max_position "
                      f"{plain(limits.max_position)}")  # fmt: skip
    if limits.max_position_value is None and limits.max_position_pct_nlv is None:
        return None
    symbol = order.contract.symbol
    if price is None:
        return _no_price(symbol, "a position value limit")
    if exposure.multiplier is None:
        return _no_multiplier(symbol)
    value = size * price * exposure.multiplier
    if limits.max_position_value is not None and value > limits.max_position_value:
        return Denial("max_position_value", f"{name}'s position in {symbol} would be worth {value:,.2f}, "
                      f"beyond max_position_value {plain(limits.max_position_value)}")  # fmt: skip
    pct = limits.max_position_pct_nlv
    if pct is None:
        return None
    share = _pct_nlv(value, exposure, order.contract.currency)
    if isinstance(share, Denial):
        return share
    if share > pct:
        return Denial("max_position_pct_nlv", f"{name}'s position in {symbol} would be {share:.2f}% of "
                      f"NetLiquidation, beyond max_position_pct_nlv {plain(pct)}%")  # fmt: skip
    return None


def _pct_nlv(value: Decimal, exposure: Exposure, currency: str) -> Decimal | Denial:
    """`value` (in the instrument's currency) as a percentage of NetLiquidation."""
    if exposure.nlv is None or exposure.nlv <= 0:
        return Denial("no_net_liquidation", "IB has not reported the account's NetLiquidation (or it is "
                      "not positive), so a limit in % of it cannot be checked")  # fmt: skip
    if exposure.rate is None:
        return Denial("no_exchange_rate", f"IB has given no exchange rate from {currency} to the account's "
                      "base currency, so a limit in % of NetLiquidation cannot be checked")  # fmt: skip
    return value * exposure.rate * HUNDRED / exposure.nlv


def _risk_per_trade(order: OrderRequested, limits: RiskLimits, exposure: Exposure) -> Denial | None:
    pct = limits.max_risk_per_trade_pct_nlv
    if pct is None or exposure.stop_pending:
        return None
    trade = exposure.trade
    if trade is None:
        if reduces(order.side, order.quantity, exposure.strategy):
            return None
        return Denial("no_stop", "max_risk_per_trade_pct_nlv is set and this order opens a position "
                      "with no stop: give it a stop (a bracket's stop child counts)")  # fmt: skip
    symbol = order.contract.symbol
    if trade.entry is None:
        return _no_price(symbol, "max_risk_per_trade_pct_nlv")
    if exposure.multiplier is None:
        return _no_multiplier(symbol)
    risk = abs(trade.entry - trade.stop) * trade.quantity * exposure.multiplier
    share = _pct_nlv(risk, exposure, order.contract.currency)
    if isinstance(share, Denial):
        return share
    if share > pct:
        return Denial("max_risk_per_trade_pct_nlv", f"the trade risks {risk:,.2f} ({share:.2f}% of "
                      f"NetLiquidation), beyond max_risk_per_trade_pct_nlv {plain(pct)}%")  # fmt: skip
    return None
