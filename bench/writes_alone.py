"""A baseline for `bench fold`: the writes alone of `bench_fold.stream`'s session, no rules.

Each event builds or replaces the same entities the fold writes for it (the order; the fill; both views
of the position, with its history entry; the account), with the arithmetic of a fill and a commission,
into plain dicts: no lookups beyond the one an event names its order by, no transition table, no dedupe,
no checks, no plan. It only serves `bench_fold.stream`'s session (every order requested, acknowledged,
filled once and commissioned); the fold can do no less for that session, so its speed is a ceiling on
the fold's.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from msgspec.structs import replace

from events.schema import (
    CommissionReported,
    Envelope,
    ExecutionReported,
    OpenOrderReported,
    OrderRequested,
    OrderSent,
    OrderStatusReported,
)
from oms.state.model import Account, Fill, Order, Position
from oms.state.money import ZERO, Money, add, net

_PLACES = Decimal("1e-10")


class _Tables:
    """The state's tables, plain dicts."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.views: tuple[dict[str, Position], dict[str, Position]] = ({}, {})
        self.fills: dict[str, Fill] = {}
        self.accounts: dict[str, Account] = {}
        self.order_ids: dict[str, str] = {}
        self.perm_ids: dict[int, str] = {}
        self.inputs: dict[str, list[str | int]] = {}

    def keys(self, order: Order) -> tuple[str, str]:
        key = f"{order.account}|{order.contract.symbol}"
        return key, f"{order.strategy_id}|{key}"


def writes_alone(envs: Iterable[Envelope]) -> None:
    t = _Tables()
    for env in envs:
        ev, seq = env.event, env.seq
        if isinstance(ev, OrderRequested):
            _requested(t, ev, seq, env.ts)
        elif isinstance(ev, OrderSent):
            o = t.orders[ev.client_order_id]
            t.orders[o.client_order_id] = replace(
                o, order_id=ev.order_id, client_id=ev.client_id, updated_seq=seq, updated_ts=env.ts
            )
            t.order_ids[f"{ev.client_id}:{ev.order_id}"] = o.client_order_id
        elif isinstance(ev, OpenOrderReported):
            coid = t.perm_ids.get(ev.perm_id) or ev.order_ref
            o = t.orders[coid]
            if ev.perm_id not in o.perm_ids:
                t.perm_ids[ev.perm_id] = coid
                t.orders[coid] = replace(o, perm_ids=(ev.perm_id,), updated_seq=seq, updated_ts=env.ts)
        elif isinstance(ev, OrderStatusReported):
            _status(t, ev, seq, env.ts)
        elif isinstance(ev, ExecutionReported):
            _execution(t, ev, seq, env.ts)
        elif isinstance(ev, CommissionReported):
            _commission(t, ev, seq)


def _requested(t: _Tables, ev: OrderRequested, seq: int, ts: int) -> None:
    o = Order(
        client_order_id=ev.client_order_id,
        strategy_id=ev.strategy_id,
        account=ev.account,
        contract=ev.contract,
        side=ev.side,
        quantity=ev.quantity,
        order_type=ev.order_type,
        limit_price=ev.limit_price,
        remaining=ev.quantity,
        created_seq=seq,
        created_ts=ts,
        updated_seq=seq,
        updated_ts=ts,
    )
    t.orders[o.client_order_id] = o
    for table, key, strategy in zip(t.views, t.keys(o), ("", o.strategy_id), strict=True):
        p = table.get(key) or Position(key=key, account=o.account, contract=o.contract, strategy_id=strategy)
        coids = (*p.orders, o.client_order_id)
        table[key] = replace(p, status="pending", orders=coids, working=1, updated_seq=seq)
        t.inputs.setdefault(key, []).append(seq << 7)


def _status(t: _Tables, ev: OrderStatusReported, seq: int, ts: int) -> None:
    o = t.orders[t.perm_ids[ev.perm_id]]
    status = "submitted" if ev.status == "Submitted" else o.status
    t.orders[o.client_order_id] = replace(
        o,
        status=status,
        broker_filled=ev.filled,
        broker_status=ev.status,
        broker_seq=seq,
        updated_seq=seq,
        updated_ts=ts,
    )
    if status != o.status:
        for table, key in zip(t.views, t.keys(o), strict=True):
            table[key] = replace(table[key], status="submitted", working=5, updated_seq=seq)
            t.inputs[key].append(seq << 7)


def _execution(t: _Tables, ev: ExecutionReported, seq: int, ts: int) -> None:
    o = t.orders[t.perm_ids[ev.perm_id]]
    base, price, shares = ev.exec_id.rpartition(".")[0], Decimal(repr(ev.price)), ev.shares
    t.fills[base] = Fill(
        exec_id=ev.exec_id,
        client_order_id=o.client_order_id,
        strategy_id=o.strategy_id,
        account=ev.account,
        position_key=o.account,
        contract=ev.contract,
        side="BUY" if ev.side == "BOT" else "SELL",
        shares=shares,
        price=price,
        seq=seq,
        ts=ts,
        updated_seq=seq,
    )
    qty, value = o.filled + shares, o.fill_value + shares * price
    t.orders[o.client_order_id] = replace(
        o,
        filled=qty,
        remaining=o.quantity - qty,
        fill_value=value,
        avg_fill_price=(value / qty).quantize(_PLACES),
        status="filled",
        updated_seq=seq,
        updated_ts=ts,
    )
    signed = shares if o.side == "BUY" else -shares
    for table, key in zip(t.views, t.keys(o), strict=True):
        p = table[key]
        old, q, avg, gross = p.quantity, p.quantity + signed, p.avg_price, p.realized_pnl_gross
        if not old or (old > ZERO) == (signed > ZERO):
            avg = ((avg * abs(old) + price * shares) / abs(q)).quantize(_PLACES)
        else:
            gross = add(
                gross, {ev.contract.currency: ((price - avg) * min(shares, abs(old))).quantize(_PLACES)}
            )
            avg = avg if q else ZERO
        table[key] = replace(
            p,
            quantity=q,
            avg_price=avg,
            realized_pnl_gross=gross,
            realized_pnl_net=net(gross, p.commission),
            status="filled",
            orders=(),
            working=0,
            updated_seq=seq,
        )
        t.inputs[key].append(base)
    a = t.accounts.get(ev.account) or Account(account=ev.account)
    t.accounts[ev.account] = replace(a, updated_seq=seq)


def _commission(t: _Tables, ev: CommissionReported, seq: int) -> None:
    base = ev.exec_id.rpartition(".")[0]
    f = t.fills[base]
    money: Money = {ev.currency: Decimal(repr(ev.commission))}
    t.fills[base] = replace(f, commission=money, updated_seq=seq)
    o = t.orders[f.client_order_id]
    t.orders[o.client_order_id] = replace(o, commission=add(o.commission, money), updated_seq=seq)
    for table, key in zip(t.views, t.keys(o), strict=True):
        p = table[key]
        c = add(p.commission, money)
        table[key] = replace(p, commission=c, realized_pnl_net=net(p.realized_pnl_gross, c), updated_seq=seq)
    a = t.accounts[f.account]
    c = add(a.commission, money)
    t.accounts[f.account] = replace(
        a, commission=c, realized_pnl_net=net(a.realized_pnl_gross, c), updated_seq=seq
    )
