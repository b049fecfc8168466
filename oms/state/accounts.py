"""Account values: IB's latest value per key (per currency where IB reports one per currency)."""

from __future__ import annotations

from msgspec.structs import replace

from events.schema import AccountValueReported
from oms.state.book import in_base
from oms.state.model import Account


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
