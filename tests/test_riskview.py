"""`oms risk`'s uses: positions in different currencies are compared by their share of NetLiquidation
(in the base currency, by IB's exchange rate), never by their raw amounts."""

from __future__ import annotations

from decimal import Decimal

from events.schema import AccountValueReported, Contract
from oms.service.riskview import standings
from tests.fold_strategies import execution, requested, sent
from tests.test_riskbook import RATE, Books

TOYOTA = Contract(symbol="7203", exchange="TSEJ", currency="JPY")
TOYOTA_IB = Contract(symbol="7203", exchange="TSEJ", currency="JPY", con_id=13_905_007)


def values(**kw: str) -> list[AccountValueReported]:
    return [
        AccountValueReported(account="DU111", key=key, value=value, currency=currency)
        for key, (value, currency) in {
            "ExchangeRate": ("0.0067", "JPY"),
            "NetLiquidation": ("100000", "USD"),
            **{k: (v, "USD") for k, v in kw.items()},
        }.items()
    ]


def test_the_largest_share_of_nlv_is_not_the_largest_raw_amount() -> None:
    books = Books()
    books.apply(RATE, *values())
    books.apply(requested("c1", quantity=100), sent("c1", 101), execution("e1.01", 100))  # 10,000 USD
    books.apply(
        requested("c2", quantity=1000, contract=TOYOTA),
        sent("c2", 102),
        execution("e2.01", 1000, 1000.0, coid="c2", order_id=102, perm_id=9002, contract=TOYOTA_IB),
    )  # 1,000,000 JPY: 6,700 USD
    books.book.set_quote(265598, Decimal(100))
    books.book.set_quote(13_905_007, Decimal(1000))
    (account,) = (s for s in standings(books.state, books.book) if s.scope == "account:DU111")
    uses = {u.limit: u for u in account.limits}
    assert uses["max_position_pct_nlv"].use == Decimal(10)  # AAPL's 10%, not the yen position's 6.7%
    assert uses["max_position_value"].unknown == ""
