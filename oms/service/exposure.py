"""What the risk checks need to know about one order, gathered from the folded state and the service's
counts: the strategy's and the account's standing on the instrument, IB's multiplier, NetLiquidation
and exchange rate, and the stop a bracket gives it. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Protocol

from events.schema import Contract, OrderRequested, kill_scope
from oms.service.risk import Described, Exposure, Reference, RiskLimits, Standing, Trade, strategy_limits
from oms.service.terms import OWN_PRICE
from oms.state.accounts import in_base
from oms.state.links import instrument_key, position_key
from oms.state.model import TERMINAL, Account, Order, Position, State
from oms.state.money import exact
from oms.state.positions import multiplier

# Instruments whose multiplier is 1 by definition, so the notional check needs no word from IB.
UNIT_MULTIPLIER = frozenset({"STK", "CASH", "CRYPTO", "IND", "CMDTY"})


class Tally(Protocol):
    """What the service counts beside the state, per scope (`events.schema.kill_scope`): its working
    orders, its orders of the last minute, and why its daily loss cannot be told ("" when it can)."""

    def working(self, scope: str) -> int: ...
    def recent(self, scope: str) -> int: ...
    def loss_unknown(self, scope: str) -> str: ...


def remaining(order: Order) -> Decimal:
    return max(order.quantity - order.filled, Decimal(0))


def exposure(
    state: State,
    order: OrderRequested,
    reference: Reference | None,
    described: Described | None = None,
    tally: Tally | None = None,
    limits: RiskLimits | None = None,
    own: RiskLimits | None = None,
) -> Exposure:
    """What the risk checks need: O(working orders on the instrument); what only a limit that is off
    would need (NetLiquidation, the bracket's stop) is not looked up. `own`: the strategy's limits,
    where the caller has them already (else made from `limits`)."""
    if own is None and limits is not None:
        own = strategy_limits(limits, order.strategy_id)
    per_trade = own is not None and own.max_risk_per_trade_pct_nlv is not None
    trade, stop_pending = _trade(state, order, reference) if per_trade else (None, False)
    acct = state.accounts.get(order.account) if limits is not None and _needs_nlv(limits, own) else None
    sums = bool(state.kill_scopes) or _needs_sums(limits, own)
    strategy, account = standings(state, order.strategy_id, order.account, order.contract, tally, sums)
    return Exposure(
        strategy=strategy,
        account=account,
        reference=reference,
        multiplier=described.multiplier if described is not None else known_multiplier(state, order.contract),
        kill_switch=state.kill_switch,
        nlv=net_liquidation(acct),
        rate=exchange_rate(acct, order.contract.currency),
        trade=trade,
        stop_pending=stop_pending,
    )


def standings(
    state: State,
    strategy_id: str,
    account: str,
    contract: Contract,
    tally: Tally | None = None,
    sums: bool = True,
) -> tuple[Standing, Standing]:
    """Where the strategy and the account stand on the instrument (working orders summed if `sums`)."""
    pkey = position_key(account, contract, state.con_ids)
    held = state.strategy_positions.get(f"{strategy_id}|{pkey}")
    return (
        _standing(state, held, kill_scope(strategy_id), tally, sums),
        _standing(state, state.positions.get(pkey), kill_scope(account=account), tally, sums),
    )


# The limits that ask whether an order reduces a position, or where it takes it: they need the working
# orders on the instrument summed (O(working orders on it)); with none of them set, that is skipped.
SUMMING = ("max_position", "max_position_value", "max_position_pct_nlv", "max_risk_per_trade_pct_nlv",
           "daily_loss_limit")  # fmt: skip


def _needs_sums(limits: RiskLimits | None, own: RiskLimits | None) -> bool:
    if limits is None:
        return True  # no limits given: the full picture
    return any(getattr(lim, key) is not None for lim in (limits, own) if lim for key in SUMMING)


def _standing(
    state: State, position: Position | None, scope: str, tally: Tally | None, sums: bool
) -> Standing:
    buy = sell = Decimal(0)
    orders = state.orders
    for coid in position.orders if position is not None and sums else ():  # the hot loop: inlined
        other = orders.get(coid)
        if other is not None and other.status not in TERMINAL:
            if other.side == "BUY":
                buy += other.quantity - other.filled  # filled never exceeds quantity (model.Order)
            elif other.side == "SELL":
                sell += other.quantity - other.filled
    killed = state.kill_scopes.get(scope)
    return Standing(
        position=position.quantity if position is not None else Decimal(0),
        working_buy=buy,
        working_sell=sell,
        working_orders=tally.working(scope) if tally is not None else 0,
        recent_orders=tally.recent(scope) if tally is not None else 0,
        killed=(killed[0] or "kill_switch") if killed is not None else "",
        loss_unknown=tally.loss_unknown(scope) if tally is not None else "",
    )


def _trade(state: State, order: OrderRequested, reference: Reference | None) -> tuple[Trade | None, bool]:
    """The order's risk per trade, and whether its check waits for a stop child. A bracket child with a
    stop (a stop price, or a trailing stop: its amount or percent from the entry) risks |parent's entry -
    stop| x its quantity; a bracket parent not yet transmitted waits for its stop child; a transmitting
    child whose bracket has no stop has no trade (refused if opening)."""
    parent = state.orders.get(order.parent_client_order_id or "")
    if parent is None:  # a stop order's own stop is where it enters, not a protective stop
        return None, not order.transmit
    entry = _entry(parent, reference)
    stop = _stop(order.order_type, order.stop_price, order.trailing_amount, order.trailing_percent, entry)
    if stop is not None:
        return Trade(entry, stop, order.quantity), False
    held = find_position(state, parent.account, parent.contract)  # a bracket is on one instrument
    working = (state.orders.get(coid) for coid in held.orders) if held is not None else ()
    has_stop = any(o is not None and o.parent == parent.client_order_id and _protects(o) for o in working)
    return None, has_stop or not order.transmit


TRAILS = frozenset({"TRAIL", "TRAIL LIMIT"})


def _protects(order: Order) -> bool:
    """A stop a bracket's child gives it: a stop price, or a trailing stop."""
    return order.stop_price is not None or order.order_type in TRAILS


def _entry(parent: Order, reference: Reference | None) -> Decimal | None:
    """Where a bracket's parent enters: its limit price, a stop entry's stop, else the market's price."""
    if parent.limit_price is not None:
        return exact(parent.limit_price)
    if parent.order_type == "STP" and parent.stop_price is not None:
        return exact(parent.stop_price)
    return reference.price if reference is not None and parent.order_type not in OWN_PRICE else None


def _stop(
    kind: str, stop: float | None, amount: float | None, percent: float | None, entry: Decimal | None
) -> Decimal | None:
    """A protective order's stop: its stop price (a trailing stop's initial one), else a trailing stop's
    distance from the entry (0 while the entry is unknown: the check then fails closed on the entry)."""
    if stop is not None:
        return exact(stop)
    if kind not in TRAILS or (amount is None and percent is None):
        return None
    base = entry if entry is not None else Decimal(0)
    distance = exact(amount) if amount is not None else base * exact(percent or 0) / 100
    return base - distance


def _needs_nlv(limits: RiskLimits, own: RiskLimits | None) -> bool:
    pcts = (lim.max_position_pct_nlv or lim.max_risk_per_trade_pct_nlv for lim in (limits, own) if lim)
    return any(p is not None for p in pcts)


def net_liquidation(account: Account | None) -> Decimal | None:
    """IB's NetLiquidation for the account, in its base currency (the one IB reports it in)."""
    if account is None:
        return None
    for key, value in account.values.items():
        if key.startswith("NetLiquidation:"):
            try:
                return Decimal(value)
            except InvalidOperation:
                return None
    return None


def exchange_rate(account: Account | None, currency: str) -> Decimal | None:
    """One unit of `currency` in the account's base currency, by IB's `ExchangeRate` value."""
    if account is None:
        return None
    return in_base(account.values, {currency: Decimal(1)})


def known_multiplier(state: State, contract: Contract) -> Decimal | None:
    """IB's multiplier for the contract: from the description IB gave of its conId (an execution, a
    position, an openOrder); 1 for stocks and forex; None when IB has not described it yet. What the
    request itself carries is never trusted."""
    described = state.instruments.get(_con_id(state, contract))
    if described is not None:
        return multiplier(described)
    return Decimal(1) if contract.sec_type in UNIT_MULTIPLIER else None


def last_fill_reference(
    state: State, contract: Contract, last_prices: Mapping[int, Decimal], described: Described | None = None
) -> Reference | None:
    """The last fill price of this conId (never of another contract with the same symbol)."""
    price = last_prices.get(described.con_id if described is not None else _con_id(state, contract))
    return Reference(price, "last fill") if price is not None else None


def _con_id(state: State, contract: Contract) -> int:
    key = instrument_key(contract, state.con_ids)
    return int(key) if key.isdigit() else 0


def find_position(state: State, account: str, contract: Contract) -> Position | None:
    """The account position of a contract (keyed like the fold keys it: by conId once known)."""
    return state.positions.get(position_key(account, contract, state.con_ids))
