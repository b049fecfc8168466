"""Orders, positions and events for people: rich tables and one-line event summaries (`oms orders`,
`oms positions`, `oms tail`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Container, Iterable
from decimal import Decimal
from typing import Any

from rich.table import Table

from events.codec import to_builtins
from events.schema import Envelope, kind_of
from oms.readable import plain
from oms.state.model import Order, Position

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


def money(value: float | Decimal | dict[str, Any] | None) -> str:
    """An amount, or a per-currency map `{currency: amount}` as `-7.60 USD, 120 JPY` (currencies are
    never added together); 2 decimals at least, more when the amount has them."""
    if value is None:
        return ""
    if not isinstance(value, dict):
        return _amount(value)
    return ", ".join(
        f"{_amount(amount, currency)} {currency}" for currency, amount in value.items() if amount
    )


NO_MINOR_UNIT = frozenset({"JPY", "KRW", "CLP", "ISK", "VND"})  # amounts shown without decimals


def _amount(value: float | Decimal | str, currency: str = "") -> str:
    """At least the currency's usual decimals (2, or none for JPY...), more when the amount has them."""
    number = Decimal(str(value))
    places = Decimal(1) if currency in NO_MINOR_UNIT else Decimal("0.01")
    return f"{number.quantize(places) if number == number.quantize(places) else number:f}"


# what a position's status means, in words: `filled` alone would read as an order's status
POSITION_STATUS = {
    "pending": "entry pending",
    "submitted": "entry working",
    "filled": "open",
    "closing": "open, closing",
    "closed": "closed",
}
NEVER_FILLED = ("cancelled", "rejected", "inactive")  # close reasons of an entry that never filled


def never_filled(position: Position) -> bool:
    """A lifecycle that ended before any fill: not a position anyone holds or held (hidden by default)."""
    return position.status == "closed" and position.close_reason in NEVER_FILLED


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
            "symbol",
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
            o.contract.symbol,
            o.order_type,
            _num(o.limit_price),
            _num(o.stop_price),
            _status(o.status),
            _num(o.filled),
            _num(o.avg_fill_price) if o.filled else "",
            str(o.order_id or ""),
        )
    return table


def positions_table(positions: Iterable[Position]) -> Table:
    """Account positions show `(all)` as their strategy: they sum every strategy's fills."""
    table = _table(
        "positions",
        (
            "account",
            "symbol",
            "con id",
            "strategy",
            "qty",
            "avg price",
            "realized gross",
            "commission",
            "realized net",
            "status",
            "cycle",
        ),
        numeric=("qty", "avg price", "realized gross", "commission", "realized net", "cycle"),
    )
    for p in sorted(positions, key=lambda p: (p.account, p.contract.symbol, p.strategy_id)):
        text = POSITION_STATUS.get(p.status, p.status)
        if p.status == "closed" and p.close_reason:
            text += f" ({p.close_reason})"
        table.add_row(
            p.account,
            p.contract.symbol,
            str(p.contract.con_id or ""),
            p.strategy_id or "(all)",
            _num(p.quantity),
            _num(p.avg_price) if p.quantity else "",
            money(p.realized_pnl_gross),
            money(p.commission),
            money(p.realized_pnl_net),
            _status(p.status, text),
            str(p.lifecycle),
        )
    return table


def event_line(env: Envelope) -> str:
    """`seq  time  kind  field=value ...`: the event's own fields, a contract shown by its symbol."""
    fields: dict[str, Any] = to_builtins(env)["event"]
    time = dt.datetime.fromtimestamp(env.ts / 1e9, tz=dt.UTC).strftime("%H:%M:%S.%f")
    parts = []
    for key, value in fields.items():
        if key == "kind":
            continue
        if isinstance(value, dict) and "symbol" in value:
            value = value["symbol"]
        parts.append(f"{key}={value}")
    return f"{env.seq:>8} {time} {kind_of(env.event):<22} {' '.join(parts)}"
