"""Entities to display rows: the one place the web app reads fields of the fold's Structs.

Money is per currency and never summed across currencies: the fold keeps every amount as a
`{currency: Decimal}` map, shown here as "amount CUR" per currency.

Quantities and prices are shown exactly (`str` of a Decimal, the shortest repr of a float), never
rounded by float arithmetic; unrealized P&L is computed in Decimal from the last price we know.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from oms.listing import instrument_name, listed_by_default, trigger_price
from oms.state.model import TERMINAL, Fill, Order, Position, State
from oms.state.money import exact
from oms.web.finished import Finished

Money = dict[str, Decimal]
ZERO = Decimal(0)
LIMIT = 100  # completed orders and fills shown (the newest)


# --- numbers ----------------------------------------------------------------------------------------


def dec(value: Any) -> Decimal:
    """An exact Decimal of a quantity or price (a float through its shortest repr, never its binary)."""
    if isinstance(value, Decimal):
        return value
    if value is None or value == "":
        return ZERO
    try:
        return exact(value if isinstance(value, float | int | str) else str(value))
    except InvalidOperation:
        return ZERO


def num(value: Any) -> str:
    """A quantity or price as a person reads it: exact, no exponent, no trailing zeros; "" for none."""
    if value is None:
        return ""
    d = dec(value)
    if d == d.to_integral_value():
        return f"{d.quantize(Decimal(1)):f}"
    return f"{d.normalize():f}"


def amount(value: Decimal) -> str:
    """Money: at least two decimals, more when the amount has them (a commission of 0.0035)."""
    value = value.normalize() if value else ZERO  # no -0.000
    exponent = value.as_tuple().exponent
    shown = value.quantize(Decimal("0.01")) if isinstance(exponent, int) and exponent > -2 else value
    return f"{shown:,f}"


def money_text(money: Mapping[str, Decimal]) -> str:
    """`12.50 USD  -3.00 EUR`: one amount per currency, sorted by currency."""
    return "  ".join(f"{amount(money[cur])} {cur}" for cur in sorted(money))


def add_money(total: Money, more: Mapping[str, Decimal]) -> None:
    """Adds `more` into `total` currency by currency (never across currencies)."""
    for cur, value in more.items():
        total[cur] = total.get(cur, ZERO) + value


class Clock:
    """The one clock every time on a page is read on: the service's (when the journal logged each
    event), in the service's time zone, labelled with it. IB's own execution times are on TWS's clock,
    the simulator's own when IB is the simulator: they appear only in tooltips, labelled so."""

    def __init__(self, zone: str = "UTC", simulator: bool = False) -> None:
        try:
            self.tz = ZoneInfo(zone or "UTC")
            self.zone = zone or "UTC"
        except (ZoneInfoNotFoundError, ValueError):
            self.tz, self.zone = ZoneInfo("UTC"), "UTC"
        self.simulator = simulator

    def time(self, ts_ns: int) -> str:
        """`14:03:07` in the zone (the table cells); "" for none."""
        return datetime.fromtimestamp(ts_ns / 1e9, self.tz).strftime("%H:%M:%S") if ts_ns else ""

    def precise(self, ts_ns: int) -> str:
        """`2026-12-06 14:03:07.123 America/New_York` (tooltips, an order's timeline)."""
        if not ts_ns:
            return ""
        shown = datetime.fromtimestamp(ts_ns / 1e9, self.tz).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return f"{shown} {self.zone}"

    def ib_time(self, ts_ns: int) -> str:
        """IB's execution time, labelled with whose clock it is."""
        whose = "the simulator's clock" if self.simulator else "TWS's clock"
        return f"IB's execution time {self.precise(ts_ns)} ({whose})" if ts_ns else ""


UTC_CLOCK = Clock()


def _currency(entity: Any) -> str:
    return str(getattr(getattr(entity, "contract", None), "currency", "") or "")


def last_prices(state: State) -> dict[str, Decimal]:
    """The latest fill price per instrument (position key without the account): the one price we know."""
    latest: dict[str, tuple[int, Decimal]] = {}
    for fill in state.fills.values():
        instrument = fill.position_key.partition("|")[2] or fill.position_key
        if instrument not in latest or fill.seq > latest[instrument][0]:
            latest[instrument] = (fill.seq, dec(fill.price))
    return {key: price for key, (_, price) in latest.items()}


def unrealized(position: Position, prices: Mapping[str, Decimal]) -> Money | None:
    """(last price - average price) x quantity x multiplier, in the contract's currency; None: no price."""
    quantity = dec(position.quantity)
    price = prices.get(instrument_of(position))
    if quantity == 0:
        return {}
    if price is None:
        return None
    multiplier = dec(position.contract.multiplier or 1) or Decimal(1)
    return {_currency(position) or "?": (price - dec(position.avg_price)) * quantity * multiplier}


def instrument_of(position: Position) -> str:
    return position.key.rpartition("|")[2]


# --- filters --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    """`everything`: also positions whose lifecycle never filled (`?all=1`; `oms.listing`)."""

    strategy: str = ""
    symbol: str = ""
    account: str = ""
    everything: bool = False

    @classmethod
    def of(cls, params: Mapping[str, str]) -> Filter:
        return cls(
            params.get("strategy", "").strip(),
            params.get("symbol", "").strip().upper(),
            params.get("account", "").strip(),
            params.get("all", "") not in ("", "0"),
        )

    def lists(self, position: Position) -> bool:
        """Whether a position is shown: it matches, and is open, working or had fills (unless `all`)."""
        return self.matches(position) and (self.everything or listed_by_default(position))

    def matches(self, entity: Order | Position | Fill) -> bool:
        strategy = getattr(entity, "strategy_id", "")
        return (
            (not self.strategy or strategy == self.strategy)
            and (not self.symbol or entity.contract.symbol.upper() == self.symbol)
            and (not self.account or entity.account == self.account)
        )

    def fields(self) -> dict[str, str]:
        """The filter as query parameters (those set)."""
        every = {"strategy": self.strategy, "symbol": self.symbol, "account": self.account,
                 "all": "1" if self.everything else ""}  # fmt: skip
        return {k: v for k, v in every.items() if v}

    def query(self) -> str:
        return urlencode(self.fields())


# --- rows -------------------------------------------------------------------------------------------


def order_row(order: Order, clock: Clock = UTC_CLOCK) -> dict[str, str]:
    return {
        "id": order.client_order_id,
        "strategy": order.strategy_id,
        "account": order.account,
        "side": order.side,
        "symbol": instrument_name(order.contract),
        "qty": num(order.quantity),
        "type": order.order_type,
        "limit": num(order.limit_price),
        "stop": num(trigger_price(order)),
        "terms": terms(order.order_type, num(order.limit_price), num(trigger_price(order))),
        "status": order.status,
        "filled": num(order.filled),
        "remaining": num(order.remaining if order.status not in TERMINAL else 0),
        "avg": num(order.avg_fill_price) if dec(order.filled) else "",
        "perm_ids": " ".join(str(p) for p in order.perm_ids),
        "commission": money_text(order.commission),
        "error": f"{order.last_error_code} {order.last_error_message}".strip()
        if order.last_error_code
        else order.reason,
        "modify_rejected": order.modify_rejected,
        "time": clock.time(order.updated_ts or order.created_ts),
        "time_title": clock.precise(order.updated_ts or order.created_ts),
        "working": "1" if order.status not in TERMINAL else "",
    }


def terms(order_type: str, limit: str, stop: str) -> str:
    """`MKT`, `LMT 1.5`, `STP 5`, `STP LMT 4.9 (stop 5)`: one narrow column for type and prices."""
    if limit and stop:
        return f"{order_type} {limit} (stop {stop})"
    return " ".join(part for part in (order_type, limit or stop) if part)


def order_rows(
    state: State, flt: Filter, limit: int, finished: Finished | None = None, clock: Clock = UTC_CLOCK
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(working orders, the latest `limit` completed ones), newest first; `finished` adds the session's
    completed orders the live state no longer holds (retired, or before a restart)."""
    working: list[Order] = []
    done: list[Order] = []
    for order in state.orders.values():
        if flt.matches(order):
            (done if order.status in TERMINAL else working).append(order)
    if finished is not None:
        done.extend(o for c, o in finished.orders.items() if c not in state.orders and flt.matches(o))
    working.sort(key=lambda o: o.created_seq, reverse=True)
    latest = heapq.nlargest(limit, done, key=lambda o: o.updated_seq)
    return [order_row(o, clock) for o in working], [order_row(o, clock) for o in latest]


def position_row(position: Position, prices: Mapping[str, Decimal]) -> dict[str, str]:
    open_pnl = unrealized(position, prices)
    status: str = position.status
    if status == "closed" and position.close_reason:
        status = f"closed ({position.close_reason})"
    return {
        "account": position.account,
        "strategy": position.strategy_id,
        "symbol": instrument_name(position.contract),
        "con_id": str(position.contract.con_id or ""),
        "qty": num(position.quantity),
        "avg": num(position.avg_price) if dec(position.quantity) else "",
        "status": status,
        "lifecycle": str(position.lifecycle),
        "realized_gross": money_text(position.realized_pnl_gross),
        "realized_net": money_text(position.realized_pnl_net),
        "commission": money_text(position.commission),
        "unrealized": "n/a" if open_pnl is None else money_text(open_pnl),
        "last": num(prices.get(instrument_of(position))),
    }


def position_rows(state: State, flt: Filter, per_strategy: bool) -> list[dict[str, str]]:
    prices = last_prices(state)
    source: Iterable[Position] = (
        state.strategy_positions.values() if per_strategy else state.positions.values()
    )
    chosen = [p for p in source if flt.lists(p)] if per_strategy or not flt.strategy else []
    chosen.sort(key=lambda p: (p.account, instrument_name(p.contract), p.strategy_id))
    return [position_row(p, prices) for p in chosen]


def fill_rows(
    state: State, flt: Filter, limit: int, finished: Finished | None = None, clock: Clock = UTC_CLOCK
) -> list[dict[str, str]]:
    """The latest `limit` fills, newest first, with the session's fills the live state let go."""
    kept = finished.fills.items() if finished is not None else ()
    every = [*state.fills.values(), *(f for key, f in kept if key not in state.fills)]
    fills = heapq.nlargest(limit, (f for f in every if flt.matches(f)), key=lambda f: f.seq)
    return [
        {
            "exec_id": f.exec_id,
            "order": f.client_order_id,
            "strategy": f.strategy_id,
            "account": f.account,
            "symbol": instrument_name(f.contract),
            "side": f.side,
            "shares": num(f.shares),
            "price": num(f.price),
            "commission": money_text(f.commission),
            "time": clock.time(f.ts),
            "ib_time": clock.ib_time(f.time_ns),
            "inferred": "inferred" if f.inferred else "",
        }
        for f in fills
    ]


ACCOUNT_KEYS = ("NetLiquidation", "TotalCashValue", "BuyingPower", "AvailableFunds", "UnrealizedPnL")


def account_rows(state: State, flt: Filter) -> list[dict[str, str]]:
    """One row per (account, currency) IB reported for the keys a trader watches, plus our own sums."""
    rows: list[dict[str, str]] = []
    for name in sorted(state.accounts):
        if flt.account and name != flt.account:
            continue
        acct = state.accounts[name]
        by_currency: dict[str, dict[str, str]] = {}
        for key, value in acct.values.items():
            base, _, cur = key.partition(":")
            if base in ACCOUNT_KEYS:
                by_currency.setdefault(cur, {})[base] = value
        for cur in sorted(by_currency):
            values = by_currency[cur]
            rows.append({"account": name, "currency": cur, **{k: values.get(k, "") for k in ACCOUNT_KEYS}})
        rows.append(
            {
                "account": name,
                "currency": "ours",
                "realized_gross": money_text(acct.realized_pnl_gross),
                "realized_net": money_text(acct.realized_pnl_net),
                "commission": money_text(acct.commission),
                "broker_realized": money_text(acct.broker_realized_pnl),
            }
        )
    return rows


def status_of(state: State, seq: int, followed: str, clock: Clock = UTC_CLOCK) -> dict[str, str]:
    """The header: IB's connection, how the state is followed ("following", "service silent", "mirror
    silent", "recorded"), the seq, the kill switch."""
    return {
        "connection": state.connection,
        "followed": followed,
        "seq": str(seq),
        "ts": clock.time(state.ts),
        "ts_title": clock.precise(state.ts),
        "zone": clock.zone,
        "simulator": "simulator" if clock.simulator else "",
        "kill_switch": kill_text(state),
        "engaged": "1" if state.kill_switch else "",  # the switch for everything: what its button does
        "reconciling": "reconciling" if state.reconciling else "",
        "open_orders": str(open_orders(state)),
    }


def kill_text(state: State) -> str:
    """The switch for everything, then each engaged scope with its code (a loss limit's, an operator's)."""
    text = "ENGAGED" + (f": {state.kill_reason}" if state.kill_reason else "") if state.kill_switch else "off"
    scoped = [f"{scope} {code or 'kill_switch'}" for scope, (code, _) in sorted(state.kill_scopes.items())]
    return f"{text}; {', '.join(scoped)}" if scoped else text


def open_orders(state: State) -> int:
    return sum(1 for o in state.orders.values() if o.status not in TERMINAL)


def choices(state: State) -> dict[str, list[str]]:
    """The strategies, symbols and accounts a filter can pick from."""
    return {
        "strategy": sorted({o.strategy_id for o in state.orders.values()}),
        "symbol": sorted({o.contract.symbol for o in state.orders.values()}),
        "account": sorted(state.accounts.keys() | {o.account for o in state.orders.values() if o.account}),
    }
