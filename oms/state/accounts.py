"""Accounts: IB's latest value per key, and the money our fills made, per currency.

Invariant: an account's gross realized P&L and commission are the sums, currency by currency, over its
account-wide positions; only `moved` (a position's money changed) and IB's realized P&L in
commission reports (`apply`'s `broker`) move money. This module writes only the accounts, and only into
the step's plan.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from msgspec.structs import replace

from events.schema import AccountValueReported
from oms.state.model import Account, Position
from oms.state.money import ZERO, Money, add, net
from oms.state.plan import Plan

_NONE: Money = {}


def value_key(key: str, currency: str) -> str:
    """IB reports some keys once per currency (TotalCashValue USD, EUR, BASE): keep each."""
    return f"{key}:{currency}" if currency else key


def with_value(acct: Account | None, ev: AccountValueReported, seq: int) -> Account:
    """The account with this value stored; the same object when the value is unchanged. A new
    `ExchangeRate` re-converts the net realized P&L into the base currency."""
    vkey = value_key(ev.key, ev.currency)
    if acct is None:
        acct = Account(account=ev.account)
    if acct.values.get(vkey) == ev.value:
        return acct
    values = {**acct.values, vkey: ev.value}
    base = in_base(values, acct.realized_pnl_net) if ev.key == "ExchangeRate" else acct.realized_pnl_net_base
    return replace(acct, values=values, realized_pnl_net_base=base, updated_seq=seq)


def credited(plan: Plan, moves: Iterable[tuple[str, Position | None, Position | None]], account: str = "",
             broker: Money = _NONE) -> None:  # fmt: skip
    """Account-wide positions went from before to after (account, before, after): each one's change of
    money into its account, and IB's realized P&L `broker` into `account`. Money maps are replaced, never
    changed, so the same object means the same money."""
    for owner, before, after in moves:
        gross = commission = _NONE
        if after is not None and after is not before:
            gross, commission = after.realized_pnl_gross, after.commission
            if before is not None:
                old_gross, old_commission = before.realized_pnl_gross, before.commission
                gross = _NONE if gross is old_gross else add(gross, old_gross, -1)
                commission = _NONE if commission is old_commission else add(commission, old_commission, -1)
        by_broker = _NONE
        if broker and owner == account:  # with the first move of its account
            by_broker, broker = broker, _NONE
        if gross or commission or by_broker:
            apply(plan, owner, gross, commission, by_broker)
    if broker:
        apply(plan, account, _NONE, _NONE, broker)


def apply(plan: Plan, account: str, gross: Money, commission: Money, broker: Money) -> None:
    """Money deltas into the account, currency by currency; net and its value in base recomputed."""
    at = ("accounts", account)  # its place in the plan, read and written
    old = plan.w.get(at, plan.state.accounts.get(account)) or Account(account=account)
    gross_total = add(old.realized_pnl_gross, gross) if gross else old.realized_pnl_gross
    commission_total = add(old.commission, commission) if commission else old.commission
    new_net = net(gross_total, commission_total)
    new = replace(
        old,
        realized_pnl_gross=gross_total,
        commission=commission_total,
        realized_pnl_net=new_net,
        broker_realized_pnl=add(old.broker_realized_pnl, broker) if broker else old.broker_realized_pnl,
        realized_pnl_net_base=in_base(old.values, new_net),
        updated_seq=plan.seq,
    )
    plan.w[at] = new


def in_base(values: dict[str, str], money: Money) -> Decimal | None:
    """`money` in the account's base currency by IB's `ExchangeRate` values; None where a rate is
    missing (never a guess)."""
    total = ZERO
    for currency, amount in money.items():
        rate = values.get(f"ExchangeRate:{currency}")
        if rate is None:
            return None
        try:
            total += amount * Decimal(rate)
        except InvalidOperation:
            return None
    return total
