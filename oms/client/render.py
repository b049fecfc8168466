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
from oms.state.model import Order, Position
from oms.state.money import text as money_text

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
    if value is None:
        return ""
    return f"{value.normalize():f}" if isinstance(value, Decimal) else f"{value:g}"


def _status(status: str) -> str:
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


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
        table.add_row(
            p.account,
            p.contract.symbol,
            str(p.contract.con_id or ""),
            p.strategy_id,
            _num(p.quantity),
            _num(p.avg_price),
            money_text(p.realized_pnl_gross),
            money_text(p.commission),
            money_text(p.realized_pnl_net),
            _status(p.status) + (f" ({p.close_reason})" if p.status == "closed" and p.close_reason else ""),
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
