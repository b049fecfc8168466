"""Rich tables for people: states, differences, timelines, events, query results, verify reports."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import msgspec
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from events.codec import to_builtins
from events.schema import Contract, Envelope, kind_of
from oms.client.render import money, price
from oms.listing import instrument_name
from oms.readable import plain
from oms.state.model import Order, State
from replay.points import format_ts
from replay.queries import Result
from replay.states import FieldChange
from replay.timeline import Timeline
from replay.verify import VerifyReport

_ORDER_COLUMNS = (
    "client_order_id", "strategy_id", "account", "side", "quantity", "order_type", "limit_price", "status",
    "filled", "avg_fill_price", "order_id", "perm_ids",
)  # fmt: skip
_POSITION_COLUMNS = (
    "key",
    "strategy_id",
    "quantity",
    "avg_price",
    "realized_pnl_gross",
    "realized_pnl_net",
    "status",
    "close_reason",
)


CONTRACT_FIELDS = frozenset(Contract.__struct_fields__)


def cell(value: Any) -> str:
    """Plain text for a table cell (escaped: IB's messages may hold [brackets] rich would eat)."""
    return escape(_text(value))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal) and value.is_finite():
        return price(value)  # a table: no division noise past 6 places (CSV and JSON stay exact)
    if isinstance(value, float) and math.isfinite(value):
        return plain(value)
    if isinstance(value, msgspec.Struct):
        return msgspec.json.encode(value).decode()
    if isinstance(value, tuple | list):
        return ", ".join(_text(item) for item in value)
    if isinstance(value, dict) and "symbol" in value and value.keys() <= CONTRACT_FIELDS:
        return instrument_name(msgspec.convert(value, Contract))  # an event's contract, as IB names it
    if isinstance(value, dict) and value and all(isinstance(v, Decimal) for v in value.values()):
        return money(value)  # a money map: each amount to its currency's precision
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    return str(value)


def _table(title: str, columns: tuple[str, ...] | list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(cell(value) for value in row))
    return table


def _show(console: Console, title: str, columns: tuple[str, ...] | list[str], rows: list[list[Any]]) -> None:
    """A table when it fits the console's width; otherwise one `column  value` block per row, so ids and
    values keep their whole width (an 80-column terminal or a pipe would squeeze them into slivers)."""
    table = _table(title, columns, rows)
    natural = console.measure(table, options=console.options.update_width(1 << 16)).maximum
    if natural <= console.width:
        console.print(table)
        return
    console.print(f"[bold]{escape(title)}[/]")
    for number, row in enumerate(rows, 1):
        record = Table.grid(padding=(0, 2))
        record.add_column(style="bold", no_wrap=True)
        record.add_column(overflow="fold")
        for column, value in zip(columns, row, strict=True):
            record.add_row(escape(column), cell(value))
        console.print(f"[dim]-- {number} --[/]")
        console.print(record)


def render_state(console: Console, state: State) -> None:
    when = f"{format_ts(state.ts)} UTC" if state.ts else "before the first event"
    console.print(f"[bold]state at seq {state.seq}[/] ({when})")
    orders = [
        [*(getattr(o, c) for c in _ORDER_COLUMNS), _name(state, o.contract)] for o in state.orders.values()
    ]
    _show(console, f"orders ({len(orders)})", (*_ORDER_COLUMNS, "instrument"), orders)
    for name in ("positions", "strategy_positions"):
        held = getattr(state, name).values()
        rows = [[*(getattr(p, c) for c in _POSITION_COLUMNS), _name(state, p.contract)] for p in held]
        _show(console, name, (*_POSITION_COLUMNS, "instrument"), rows)
    accounts = [
        [a.account, *(money(m) for m in (a.commission, a.realized_pnl_gross, a.realized_pnl_net)), a.values]
        for a in state.accounts.values()
    ]
    _show(
        console, "accounts", ("account", "commission", "realized gross", "realized net", "values"), accounts
    )


def _name(state: State, contract: Contract) -> str:
    """As IB names it (`ESZ6`, `AAPL 20261218 200 C`), from IB's own description once it gave one."""
    return instrument_name(state.instruments.get(contract.con_id, contract))


def render_diff(console: Console, title: str, changes: list[FieldChange]) -> None:
    rows = [
        [c.collection, c.key, c.field, _side(c.before, c.field), _side(c.after, c.field)] for c in changes
    ]
    _show(console, title, ("what", "key", "field", "before", "after"), rows)


def _side(value: Any, field: str) -> Any:
    """A whole entity that appeared or went shows as "(none)" on the side where it is missing."""
    return "(none)" if field == "*" and value is None else value


def render_event(console: Console, env: Envelope) -> None:
    fields = to_builtins(env)["event"]
    body = escape(" ".join(f"{k}={_text(v)}" for k, v in fields.items() if k != "kind"))
    console.print(f"[bold]#{env.seq}[/] {format_ts(env.ts)} [cyan]{kind_of(env.event)}[/] {body}")


def render_timeline(console: Console, timeline: Timeline) -> None:
    rows = [
        [
            entry.env.seq,
            format_ts(entry.env.ts),
            kind_of(entry.env.event),
            _summary(entry.env),
            "*" if entry.changed else "",
            *_order_cells(entry.order),
        ]
        for entry in timeline.entries
    ]
    columns = ("seq", "time (UTC)", "kind", "event", "chg", "status", "filled", "avg price", "remaining")
    _show(console, f"order {timeline.client_order_id}", columns, rows)


def _summary(env: Envelope) -> str:
    fields = to_builtins(env)["event"]
    skip = {"kind", "contract", "account", "client_id", "order_ref", "client_order_id"}
    return " ".join(f"{k}={_text(v)}" for k, v in fields.items() if k not in skip)


def _order_cells(order: Order | None) -> list[Any]:
    if order is None:
        return ["", "", "", ""]
    return [order.status, order.filled, order.avg_fill_price, order.remaining]


def render_result(console: Console, result: Result, title: str = "") -> None:
    _show(console, title or f"{len(result.rows)} rows", result.columns, [list(r) for r in result.rows])


def render_verify(console: Console, report: VerifyReport) -> None:
    rows = [[c.seq, "ok" if c.ok else "DIFFERS", c.detail] for c in report.checks]
    _show(console, f"snapshots against a refold of seqs 1..{report.last_seq}", ("seq", "", "detail"), rows)
    if not report.checks:
        console.print("no snapshots to verify: the refold has nothing to compare with")
    if report.bad_snapshot is None:
        return
    where = f"seq {report.parted_at}" if report.parted_at else "an unknown seq"
    console.print(
        f"[bold red]snapshot {report.bad_snapshot} differs from the refold[/]: they agreed at seq "
        f"{report.after_seq} and part at {where}"
    )
    render_diff(console, "refold (before) vs snapshot (after)", report.differences)
