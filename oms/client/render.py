"""What people and programs read: rich tables, one-line event summaries, and exact JSON and CSV.

The one place numbers are formatted for the command line (`oms orders`, `positions`, `fills`,
`account`, `tail`, `query`, `replay`): tables show money to its currency's precision and prices without
division noise; JSON and CSV carry exact decimal text (`exact_text`), money maps as maps or one column per
currency, never a Python repr. Instruments are named as IB names them (`oms.listing`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Container, Iterable, Sequence
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

import msgspec
from rich.table import Table

from events.codec import to_builtins
from events.schema import Contract, Envelope, kind_of
from oms.listing import instrument_name, trigger_price
from oms.readable import plain
from oms.state.model import Account, Fill, Order, Position
from oms.state.positions import multiplier

_STATUS_STYLE = {
    "filled": "green",
    "partially_filled": "cyan",
    "submitted": "cyan",
    "pending": "yellow",
    "pending_cancel": "yellow",
    "cancelled": "dim",
    "rejected": "red",
    "inactive": "red",
    "closing": "yellow",
    "closed": "dim",
}


def _num(value: float | Decimal | None) -> str:
    return "" if value is None else plain(value)


NO_MINOR_UNIT = frozenset({"JPY", "KRW", "CLP", "ISK", "VND"})  # amounts shown without decimals
WIDE = Context(prec=400)  # rounding for display never overflows, whatever the amount's size
PRICE_PLACES = Decimal("1e-6")  # an average price in a table: beyond any tick IB quotes (0.00005 forex)


def exact_text(value: float | int | Decimal) -> str:
    """A number as exact decimal text for programs (JSON, CSV): `0E-10` is `0`, `1.50` is `1.5`, a
    float its shortest text; never an exponent."""
    return plain(value)


def money(value: float | Decimal | dict[str, Any] | None, currency: str = "") -> str:
    """An amount, or a per-currency map `{currency: amount}` as `-7.60 USD, 120 JPY` (currencies are
    never added together), each to its currency's precision: 2 decimals, none for JPY..."""
    if value is None:
        return ""
    if not isinstance(value, dict):
        return _amount(value, currency)
    return ", ".join(f"{_amount(amount, cur)} {cur}" for cur, amount in value.items() if amount)


def _amount(value: float | Decimal | str, currency: str = "") -> str:
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        return plain(number)
    places = Decimal(1) if currency in NO_MINOR_UNIT else Decimal("0.01")
    shown = number.quantize(places, rounding=ROUND_HALF_UP, context=WIDE)
    return f"{shown.copy_abs() if shown.is_zero() else shown:f}"  # never "-0.00"


def price(value: float | Decimal | None) -> str:
    """A price for a table: exact when it has at most 6 decimals, else rounded to 6 (an average of
    fills is a division: `190.3333333333`)."""
    if value is None:
        return ""
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        return plain(number)
    if number.as_tuple().exponent < PRICE_PLACES.as_tuple().exponent:  # type: ignore[operator]
        number = number.quantize(PRICE_PLACES, rounding=ROUND_HALF_UP, context=WIDE)
    return plain(number)


def for_programs(value: Any) -> Any:
    """`value` (Structs, lists, maps) as JSON-ready builtins whose decimals are exact text (`exact_text`):
    what `--json` prints."""
    return _exact(msgspec.to_builtins(value, builtin_types=(Decimal,)))


def _exact(value: Any) -> Any:
    if isinstance(value, Decimal):
        return exact_text(value)
    if isinstance(value, dict):
        return {key: _exact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(item) for item in value]
    return value


def json_text(value: Any) -> str:
    return msgspec.json.encode(for_programs(value)).decode()


def tidy(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> tuple[list[str], list[list[Any]]]:
    """Rows for CSV: a money map column (`{currency: amount}`) becomes one column per currency
    (`commission.USD`, `commission.EUR`); decimals and floats become exact text, never a repr."""
    rows = [list(row) for row in rows]
    currencies: dict[int, list[str]] = {}
    for index in range(len(columns)):
        maps = [row[index] for row in rows if isinstance(row[index], dict)]
        keys = sorted({str(key) for m in maps for key in m})
        if keys:  # every map empty (no money yet): the column stays, its cells empty
            currencies[index] = keys
    out_columns: list[str] = []
    for index, name in enumerate(columns):
        out_columns += [f"{name}.{cur}" for cur in currencies[index]] if index in currencies else [name]
    out_rows = []
    for row in rows:
        cells: list[Any] = []
        for index, value in enumerate(row):
            if index in currencies:
                found = value if isinstance(value, dict) else {}
                cells += [_cell(found.get(cur)) for cur in currencies[index]]
            else:
                cells.append(_cell(value))
        out_rows.append(cells)
    return out_columns, out_rows


def _cell(value: Any) -> Any:
    if isinstance(value, Decimal | float):
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        return exact_text(value) if finite else str(value)
    if isinstance(value, dict) and not value:
        return ""
    if isinstance(value, dict | list | tuple):
        return json_text(value)
    return "" if value is None else value


# what a position's status means, in words: `filled` alone would read as an order's status
POSITION_STATUS = {
    "pending": "entry pending",
    "submitted": "entry working",
    "filled": "open",
    "closing": "open, closing",
    "closed": "closed",
}


def _status(status: str, text: str | None = None) -> str:
    style = _STATUS_STYLE.get(status)
    text = text or status
    return f"[{style}]{text}[/]" if style else text


def _table(title: str, columns: Iterable[str], numeric: Container[str]) -> Table:
    """A table with its `numeric` columns right-aligned, so their digits line up."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left")
    return table


def orders_table(orders: Iterable[Order]) -> Table:
    table = _table(
        "orders",
        (
            "client order id",
            "strategy",
            "account",
            "side",
            "qty",
            "instrument",
            "type",
            "limit",
            "stop",
            "status",
            "filled",
            "avg price",
            "order id",
        ),
        numeric=("qty", "limit", "stop", "filled", "avg price", "order id"),
    )
    for o in sorted(orders, key=lambda o: o.created_seq):
        table.add_row(
            o.client_order_id,
            o.strategy_id,
            o.account,
            o.side,
            _num(o.quantity),
            instrument_name(o.contract),
            o.order_type,
            _num(o.limit_price),
            _num(trigger_price(o)),
            _status(o.status),
            _num(o.filled),
            price(o.avg_fill_price) if o.filled else "",
            str(o.order_id or ""),
        )
    return table


def cost(quantity: Decimal, avg_price: Decimal, contract: Contract) -> str:
    """What a position or fill is worth at its price, the contract's multiplier applied (an ES contract
    at 5400 is 270000 USD, an AAPL option at 12.5 is 1250 USD), in the contract's currency."""
    if not quantity:
        return ""
    return money(quantity * avg_price * multiplier(contract), contract.currency) + f" {contract.currency}"


def positions_table(positions: Iterable[Position]) -> Table:
    """Account positions show `(all)` as their strategy: they sum every strategy's fills. `cost` is
    quantity x average price x multiplier (a filled position describes its instrument as IB does)."""
    table = _table(
        "positions",
        (
            "account",
            "instrument",
            "con id",
            "strategy",
            "qty",
            "avg price",
            "cost",
            "realized gross",
            "commission",
            "realized net",
            "status",
            "cycle",
        ),
        numeric=("qty", "avg price", "cost", "realized gross", "commission", "realized net", "cycle"),
    )
    for p in sorted(positions, key=lambda p: (p.account, instrument_name(p.contract), p.strategy_id)):
        contract = p.contract
        text = POSITION_STATUS.get(p.status, p.status)
        if p.status == "closed" and p.close_reason:
            text += f" ({p.close_reason})"
        table.add_row(
            p.account,
            instrument_name(contract),
            str(p.contract.con_id or ""),
            p.strategy_id or "(all)",
            _num(p.quantity),
            price(p.avg_price) if p.quantity else "",
            cost(p.quantity, p.avg_price, contract),
            money(p.realized_pnl_gross),
            money(p.commission),
            money(p.realized_pnl_net),
            _status(p.status, text),
            str(p.lifecycle),
        )
    return table


def fills_table(fills: Iterable[Fill]) -> Table:
    """Executions in the order they happened; `value` is shares x price x multiplier."""
    table = _table(
        "fills",
        (
            "time (UTC)",
            "client order id",
            "strategy",
            "account",
            "side",
            "qty",
            "instrument",
            "price",
            "value",
            "commission",
            "exec id",
        ),
        numeric=("qty", "price", "value", "commission"),
    )
    for f in sorted(fills, key=lambda f: (f.seq, f.exec_id)):
        when = dt.datetime.fromtimestamp(f.time_ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            when if f.time_ns else "",
            f.client_order_id,
            f.strategy_id,
            f.account,
            f.side,
            _num(f.shares),
            instrument_name(f.contract),
            price(f.price),
            cost(f.shares, f.price, f.contract),
            money(f.commission),
            f.exec_id + (" (inferred)" if f.inferred else ""),
        )
    return table


BASE = "BASE"  # IB's name for the account's base currency in its account values
NO_CURRENCY = "other"  # the column of values IB sends without a currency (the account type, ...)


def account_values(account: Account) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    """IB's account values as tidy rows: (key, {currency: value}) with the currencies as columns
    (`BASE` last: the account's base currency, IB's conversion), plus the money our fills made."""
    by_key: dict[str, dict[str, str]] = {}
    for name, value in account.values.items():
        key, _, currency = name.partition(":")
        by_key.setdefault(key, {})[currency or NO_CURRENCY] = value
    ours = {
        "realized P&L gross (fills)": account.realized_pnl_gross,
        "commission (fills)": account.commission,
        "realized P&L net (fills)": account.realized_pnl_net,
        "realized P&L (IB)": account.broker_realized_pnl,
    }
    for key, amounts in ours.items():
        if amounts:
            by_key[key] = {cur: exact_text(amount) for cur, amount in amounts.items()}
    if account.realized_pnl_net_base is not None:
        by_key.setdefault("realized P&L net (fills)", {})[BASE] = exact_text(account.realized_pnl_net_base)
    seen = {cur for values in by_key.values() for cur in values}
    currencies = sorted(seen - {BASE, NO_CURRENCY}) + [c for c in (BASE, NO_CURRENCY) if c in seen]
    return currencies, sorted(by_key.items())


def account_table(account: Account) -> Table:
    """One row per value, one column per currency: amounts to their currency's precision."""
    currencies, rows = account_values(account)
    table = _table(f"account {account.account}", ["value", *currencies], numeric=currencies)
    for key, values in rows:
        table.add_row(key, *(_account_cell(key, values.get(cur), cur) for cur in currencies))
    return table


NOT_MONEY = frozenset({"ExchangeRate", "Cushion", "Leverage-S", "DayTradesRemaining"})  # numbers, no currency


def _account_cell(key: str, value: str | None, currency: str) -> str:
    """An amount to its currency's precision (`BASE`: cents); a rate or text (the account type) as sent."""
    if value is None:
        return ""
    try:
        number = Decimal(value)
    except ArithmeticError:
        return value
    if not number.is_finite() or currency == NO_CURRENCY or key in NOT_MONEY:
        return plain(number) if number.is_finite() else value
    return money(number, currency)


def event_line(env: Envelope) -> str:
    """`seq  time  kind  field=value ...`: the event's own fields, a contract named as IB names it."""
    fields: dict[str, Any] = to_builtins(env)["event"]
    time = dt.datetime.fromtimestamp(env.ts / 1e9, tz=dt.UTC).strftime("%H:%M:%S.%f")
    parts = []
    for key, value in fields.items():
        if key == "kind":
            continue
        if isinstance(value, dict) and "symbol" in value:
            value = instrument_name(msgspec.convert(value, Contract))
        parts.append(f"{key}={value}")
    return f"{env.seq:>8} {time} {kind_of(env.event):<22} {' '.join(parts)}"
