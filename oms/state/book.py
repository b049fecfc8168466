"""Storing an order, a fill or a conId with everything that depends on it: the positions (account-wide
and the order's strategy's), each position's history, and the account's money, recording every changed
entity in the transaction for `oms.state.fold.step` to return.

Keys: a position is keyed `account|conId` (`strategy|account|conId` for a strategy's view). An order
requested by symbol is keyed by its symbol key until IB names the conId (`name_instrument` moves those
positions), and an order without an account by the empty account until it learns one (`put` moves it).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from msgspec.structs import replace

from events.schema import Contract, symbol_key
from oms.state import positions
from oms.state.model import WORKING, Account, Fill, Order, Position, Removed, State
from oms.state.money import ZERO, Money, add, net
from oms.state.tx import Tx


def key_of(state: State, order: Order) -> str | None:
    """The account-wide position key of `order`; None while its instrument is unknown (an external order
    first seen by its status)."""
    contract = order.contract
    if not (contract.con_id or contract.symbol):
        return None
    return positions.position_key(order.account, contract, state.con_ids)


def put(state: State, tx: Tx, old: Order | None, order: Order, deferred: bool = False) -> None:
    """Store `order` and bring its positions up to date: its place among the working orders of its key
    (moving it when its key changed) and, when that changes what is working, the position's history
    (`deferred`: the change comes with the fill that `add_fill` records next)."""
    if order is old:
        return
    coid = order.client_order_id
    tx.put(state.orders, coid, order)
    tx.changes[("o", coid)] = order
    if old is not None and old.status == order.status and old.side == order.side and _same_key(old, order):
        return  # nothing a position depends on has changed
    new_key = key_of(state, order)
    if old is not None and not _same_key(old, order):
        old_key = key_of(state, old)
        if old_key is not None and new_key is not None and old_key != new_key:
            _leave(state, tx, old_key, new_key, order)
    if new_key is not None:
        reason = "" if order.status in WORKING else order.status
        for table, pkey, strategy in views(state, new_key, order.strategy_id):
            _member(state, tx, table, pkey, strategy, order, reason, order.status in WORKING, deferred)


def _same_key(a: Order, b: Order) -> bool:
    return a.contract is b.contract and a.account == b.account


def views(state: State, key: str, strategy: str) -> tuple[tuple[dict[str, Position], str, str], ...]:
    """The two views of an account-wide key: (table, position key, strategy) for the account and for
    `strategy`."""
    return (state.positions, key, ""), (state.strategy_positions, f"{strategy}|{key}", strategy)


def store(state: State, tx: Tx, table: dict[str, Position], pos: Position, before: Position | None) -> None:
    """Store a changed position (and, for an account-wide one, move its money into the account)."""
    if pos is before:
        return
    account_wide = table is state.positions
    tx.put(table, pos.key, pos)
    tx.changes[("p" if account_wide else "s", pos.key)] = pos
    if not account_wide:
        return
    gross, commission = pos.realized_pnl_gross, pos.commission
    if before is not None:  # maps are replaced, never changed: the same object means the same money
        if gross is before.realized_pnl_gross and commission is before.commission:
            return
        gross, commission = add(gross, before.realized_pnl_gross, -1), add(commission, before.commission, -1)
    if gross or commission:
        add_to_account(state, tx, pos.account, pos.updated_seq, gross, commission, {})


def _member(state: State, tx: Tx, table: dict[str, Position], pkey: str, strategy: str, order: Order,
            reason: str, working: bool, deferred: bool = False) -> None:  # fmt: skip
    """`order` in or out of the working orders of position `pkey`; a new working entry in the key's
    history when what is working changed."""
    before = pos = table.get(pkey)
    if pos is None:
        if not working:
            return
        pos = positions.opened(pkey, order.account, order.contract, strategy)
    coid = order.client_order_id
    members = pos.orders
    if (coid in members) != working:
        members = (*members, coid) if working else tuple(c for c in members if c != coid)
    bits = positions.working_bits(members, state.orders)
    moved = bits != pos.working or before is None
    if not moved and members is pos.orders:
        return
    seq = order.updated_seq
    pos = replace(pos, orders=members, updated_seq=seq)
    if moved:
        entry = positions.working_entry(seq, reason, bits, deferred and before is not None)
        _record(state, tx, pkey, entry)
        pos = positions.advance(pos, entry, None)
    store(state, tx, table, pos, before)


def _record(state: State, tx: Tx, pkey: str, entry: int | str) -> None:
    inputs = state.position_inputs.get(pkey)
    if inputs is None:
        tx.put(state.position_inputs, pkey, [entry])
    else:
        tx.append(inputs, entry)


def add_fill(state: State, tx: Tx, base: str, fill: Fill, seq: int, replaces: bool) -> None:
    """A fill into its positions (account-wide and its strategy's): appended to each key's history and
    applied by the reducer, or, when it `replaces` an earlier fill of that history (a correction, an
    inferred fill resized or removed), each position recomputed from its whole history."""
    for table, pkey, strategy in views(state, fill.position_key, fill.strategy_id):
        before = table.get(pkey)
        if replaces:
            if before is None:
                continue
            pos = positions.replayed(before, state.position_inputs.get(pkey, ()), state.fills)
        else:
            pos = before or positions.opened(pkey, fill.account, fill.contract, strategy)
            _record(state, tx, pkey, base)
            pos = positions.advance(pos, base, fill)
        if pos != before:
            store(state, tx, table, replace(pos, updated_seq=seq), before)


def commission_changed(state: State, tx: Tx, fill: Fill, delta: Money, seq: int) -> None:
    """A commission report moved a fill's commission by `delta`: its order, positions and account."""
    order = state.orders.get(fill.client_order_id)
    if order is not None:
        put(state, tx, order, replace(order, commission=add(order.commission, delta), updated_seq=seq))
    for table, pkey, _ in views(state, fill.position_key, fill.strategy_id):
        before = table.get(pkey)
        if before is not None:
            store(
                state, tx, table, replace(positions.commission_moved(before, delta), updated_seq=seq), before
            )


def add_to_account(state: State, tx: Tx, account: str, seq: int, gross: Money, commission: Money,
                   broker: Money) -> None:  # fmt: skip
    """Money deltas into the account, currency by currency."""
    old = state.accounts.get(account) or Account(account=account)
    gross_total = add(old.realized_pnl_gross, gross)
    commission_total = add(old.commission, commission)
    new_net = net(gross_total, commission_total)
    new = replace(
        old,
        realized_pnl_gross=gross_total,
        commission=commission_total,
        realized_pnl_net=new_net,
        broker_realized_pnl=add(old.broker_realized_pnl, broker),
        realized_pnl_net_base=in_base(old.values, new_net),
        updated_seq=seq,
    )
    tx.put(state.accounts, account, new)
    tx.changes[("a", account)] = new


def in_base(values: dict[str, str], money: Money) -> Decimal | None:
    """`money` in the account's base currency by IB's `ExchangeRate` values; None where a rate is
    missing (never a guess)."""
    total = ZERO
    for currency, amount in money.items():
        rate = values.get(f"ExchangeRate:{currency}")
        if rate is None:
            return None
        try:
            total += amount * Decimal(rate)
        except InvalidOperation:
            return None
    return total


def name_instrument(state: State, tx: Tx, contract: Contract, con_id: int) -> None:
    """Remember the conId of the symbol `contract` names, moving positions keyed by that symbol to it.
    A position keyed by symbol has no fills (executions always carry the conId): it moves whole, or,
    when the conId key already has a position, its working orders join that one."""
    sym = symbol_key(contract)
    if state.con_ids.get(sym) == con_id:
        return
    tx.put(state.con_ids, sym, con_id)
    suffix = "|" + sym
    for table, kind in ((state.positions, "p"), (state.strategy_positions, "s")):
        for key in [k for k in table if k.endswith(suffix)]:
            new_key = key[: -len(sym)] + str(con_id)
            pos = table[key]
            _move(state, tx, table, kind, key, new_key, pos.account, replace(pos.contract, con_id=con_id))


def _move(state: State, tx: Tx, table: dict[str, Position], kind: str, key: str, new_key: str,
          account: str, contract: Contract) -> None:  # fmt: skip
    """Position `key` (no fills) goes to `new_key`: whole with its history, or its working orders join
    the position already there."""
    pos = tx.pop(table, key)
    inputs = tx.pop(state.position_inputs, key)
    tx.changes.pop((kind, key), None)
    for rkey, change in list(tx.changes.items()):  # moved here earlier in this event: follow on
        if isinstance(change, Removed) and change.moved_to == key:
            tx.changes[rkey] = Removed(change.key, new_key)
    tx.changes[("r", key)] = Removed(key, new_key)
    target = table.get(new_key)
    if target is None:
        moved = replace(
            pos, key=new_key, account=account, contract=contract if contract.con_id else pos.contract
        )
        tx.put(table, new_key, moved)
        tx.changes[(kind, new_key)] = moved
        if inputs is not None:
            tx.put(state.position_inputs, new_key, inputs)
        return
    strategy = pos.strategy_id
    for coid in pos.orders:
        _member(state, tx, table, new_key, strategy, state.orders[coid], "", True)


def _leave(state: State, tx: Tx, old_key: str, new_key: str, order: Order) -> None:
    """`order`'s account became known: what it contributed leaves the old key. A position left with
    nothing else (no quantity, no other working order) moves whole to the new key; one still shared with
    other orders only loses this one from its working orders. Fills never move: executions always carry
    IB's account and conId, so they are keyed right from the start."""
    coid = order.client_order_id
    for table, kind, old_pkey, new_pkey in (
        (state.positions, "p", *_pair(old_key, new_key, "")),
        (state.strategy_positions, "s", *_pair(old_key, new_key, order.strategy_id)),
    ):
        pos = table.get(old_pkey)
        if pos is None:
            continue
        if pos.quantity or any(c != coid for c in pos.orders):
            _member(state, tx, table, old_pkey, pos.strategy_id, order, "", False)
            continue
        _move(state, tx, table, kind, old_pkey, new_pkey, order.account, order.contract)


def _pair(old_key: str, new_key: str, strategy: str) -> tuple[str, str]:
    return (f"{strategy}|{old_key}", f"{strategy}|{new_key}") if strategy else (old_key, new_key)
