"""Account state: IB's latest value per key, and commissions and realized P&L summed from fills."""

from __future__ import annotations

from msgspec.structs import replace

from events.schema import AccountValueReported
from oms.state.model import Account


def value_key(key: str, currency: str) -> str:
    """IB reports some keys once per currency (TotalCashValue USD, EUR, BASE): keep each."""
    return f"{key}:{currency}" if currency else key


def with_value(acct: Account | None, ev: AccountValueReported, seq: int) -> Account:
    """The account with this value stored; the same object when the value is unchanged."""
    vkey = value_key(ev.key, ev.currency)
    if acct is None:
        return Account(account=ev.account, values={vkey: ev.value}, updated_seq=seq)
    if acct.values.get(vkey) == ev.value:
        return acct
    return replace(acct, values={**acct.values, vkey: ev.value}, updated_seq=seq)


def with_amounts(
    acct: Account | None,
    account: str,
    seq: int,
    commission: float = 0.0,
    realized: float = 0.0,
    broker_realized: float = 0.0,
) -> Account:
    """The account after adding these amounts (deltas: a correction or a re-sent report may subtract)."""
    if acct is None:
        acct = Account(account=account)
    if not (commission or realized or broker_realized):
        return acct
    return replace(
        acct,
        commission=acct.commission + commission,
        realized_pnl=acct.realized_pnl + realized,
        broker_realized_pnl=acct.broker_realized_pnl + broker_realized,
        updated_seq=seq,
    )
