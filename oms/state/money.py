"""Exact quantities and money: `Decimal` values, and money as `{currency: amount}` maps.

IB sends sizes as decimal text and prices as doubles whose shortest text is what IB meant, so
`dec(x)` converts through that text: `exact(0.1) == Decimal("0.1")`, and three fills of 0.1 add up to
exactly 0.3. Money maps are never summed across currencies; a currency whose amount returns to zero is
dropped, so two ways to the same amounts give equal maps.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

ZERO = Decimal(0)
ONE = Decimal(1)

Money = dict[str, Decimal]
PLACES = Decimal("1e-10")  # averages and realized P&L are rounded to 10 places (half even), nothing else is


def exact(x: float | int | str | Decimal) -> Decimal:
    """The exact decimal meant: floats through their shortest text (repr), never their binary value."""
    if isinstance(x, Decimal):
        return x
    if isinstance(x, float):
        return Decimal(int(x)) if x.is_integer() else Decimal(repr(x))  # 10.0 is the whole number 10
    return Decimal(x)


def rounded(x: Decimal) -> Decimal:
    """A value a division made (an average price, P&L from it), to the state's 10 places."""
    return x.quantize(PLACES)


def plus(money: Mapping[str, Decimal], currency: str, amount: Decimal) -> Money:
    """`money` with `amount` added in `currency` (a new map; zero amounts dropped)."""
    out = dict(money)
    total = out.get(currency, ZERO) + amount
    if total:
        out[currency] = total
    else:
        out.pop(currency, None)
    return out


def add(a: Mapping[str, Decimal], b: Mapping[str, Decimal], sign: int = 1) -> Money:
    """`a + sign * b`, currency by currency (`sign` is 1 or -1)."""
    if not b:
        return a if isinstance(a, dict) else dict(a)
    out = dict(a)
    for currency, amount in b.items():  # no `sign * amount`: a Decimal times an int costs a conversion
        old = out.get(currency)
        if old is None:
            total = amount if sign > 0 else -amount
        else:
            total = old + amount if sign > 0 else old - amount
        if total:
            out[currency] = total
        else:
            out.pop(currency, None)
    return out


def net(gross: Mapping[str, Decimal], commission: Mapping[str, Decimal]) -> Money:
    """Realized P&L net of commissions, per currency (a commission in another currency stays apart)."""
    return add(gross, commission, -1)
