"""Position lifecycle: quantity and average price from fills, status from quantity and working orders.

pending -> submitted -> filled <-> closing -> closed (see docs/state.md). A fill that brings the quantity
back to 0 closes the lifecycle ("flat"); one that flips the sign closes it and opens the next
("flipped"); an entry whose orders all end without a fill closes it with that order's status
("cancelled", "rejected", "inactive"). IB's own position reports never change any of this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

from msgspec.structs import replace

from events.schema import Contract, PositionMismatch, PositionReported
from oms.state.model import Fill, Order, Position, Removed, State
from oms.state.orders import EPS


@lru_cache(maxsize=4096)
def symbol_key(c: Contract) -> str:
    """How an instrument is named before IB has given its conId (memoized: a pure function of a frozen,
    hashable value, asked for every order requested by symbol; bounded by instruments)."""
    strike = f"{c.strike:g}" if c.strike else ""
    return ":".join((c.sec_type, c.symbol, c.currency, c.last_trade_date, c.right, strike)).rstrip(":")


def instrument_key(c: Contract, con_ids: Mapping[str, int]) -> str:
    """The conId when known (from the contract or learned for its symbol), else the symbol key."""
    if c.con_id:
        return str(c.con_id)
    sym = symbol_key(c)
    con_id = con_ids.get(sym)
    return str(con_id) if con_id else sym


def multiplier(c: Contract) -> float:
    try:
        return float(c.multiplier) if c.multiplier else 1.0
    except ValueError:
        return 1.0


def opened(key: str, account: str, contract: Contract, strategy_id: str) -> Position:
    """A position before its first lifecycle: `update` opens it."""
    return Position(key=key, account=account, contract=contract, strategy_id=strategy_id, status="closed")


def _trade(qty: float, avg: float, realized: float, signed: float, price: float, mult: float):
    """(quantity, avg price, realized P&L) after one fill of `signed` shares at `price`."""
    new = qty + signed
    if abs(new) < EPS:
        new = 0.0
    if qty == 0 or (qty > 0) == (signed > 0):
        avg = (avg * abs(qty) + price * abs(signed)) / abs(new) if new else 0.0
    else:
        closed = min(abs(signed), abs(qty))
        realized += (price - avg) * closed * (mult if qty > 0 else -mult)
        if new == 0:
            avg = 0.0
        elif (new > 0) != (qty > 0):
            avg = price
    return new, avg, realized


def update(
    pos: Position,
    orders: Mapping[str, Order],
    seq: int,
    reason: str = "",
    coid: str = "",
    working: bool = False,
    signed: float = 0.0,
    price: float = 0.0,
    mult: float = 1.0,
) -> Position:
    """`pos` after a fill of `signed` shares (if any) and with `coid` in or out of its working orders (if
    given); then the status these give, opening or closing the lifecycle. One new value, or `pos`
    itself when nothing changes. A lifecycle closes on flat ("flat"), on a flip ("flipped": the next
    opens at once) or, without a fill, with `reason` (the status of the order that ended)."""
    members = pos.orders
    if coid and (coid in members) != working:
        if working:
            members = (*members, coid)
        else:
            i = members.index(coid)
            members = members[:i] + members[i + 1 :]
    if not signed:  # the common case (an order came, went or changed status): only the status may move
        new_status = _status(pos.quantity, members, orders)
        if new_status == pos.status:
            return pos if members is pos.orders else replace(pos, orders=members, updated_seq=seq)
        if new_status == "closed":
            return replace(
                pos, status=new_status, close_reason=reason, closed_seq=seq, orders=members, updated_seq=seq
            )
        if pos.status == "closed":
            return replace(
                pos,
                status=new_status,
                lifecycle=pos.lifecycle + 1,
                opened_seq=seq,
                orders=members,
                updated_seq=seq,
            )
        return replace(pos, status=new_status, orders=members, updated_seq=seq)
    old = pos.quantity
    qty, avg, realized = _trade(old, pos.avg_price, pos.realized_pnl, signed, price, mult)
    status: str = pos.status
    close_reason, closed_seq = pos.close_reason, pos.closed_seq
    lifecycle, opened_seq = pos.lifecycle, pos.opened_seq
    if old and not qty:
        status, close_reason, closed_seq = "closed", "flat", seq
    elif old and (qty > 0) != (old > 0):
        close_reason, closed_seq, lifecycle, opened_seq = "flipped", seq, lifecycle + 1, seq
    new_status = _status(qty, members, orders)
    if new_status != status:
        if new_status == "closed":
            close_reason, closed_seq = reason, seq
        elif status == "closed":
            lifecycle, opened_seq = lifecycle + 1, seq
        status = new_status
    return replace(
        pos, quantity=qty, avg_price=avg, realized_pnl=realized, status=status, close_reason=close_reason,
        closed_seq=closed_seq, lifecycle=lifecycle, opened_seq=opened_seq, orders=members, updated_seq=seq,
    )  # fmt: skip


def _status(qty: float, members: tuple[str, ...], orders: Mapping[str, Order]) -> str:
    """The design card's five states, from the quantity and the working orders on the key."""
    if qty:
        closing_side = "SELL" if qty > 0 else "BUY"
        for c in members:
            if orders[c].side == closing_side:
                return "closing"
        return "filled"
    if not members:
        return "closed"
    for c in members:
        if orders[c].status != "pending":
            return "submitted"
    return "pending"


def rebuilt(pos: Position, fills: Iterable[Fill], seq: int) -> Position:
    """Quantity, average price and realized P&L recomputed from all fills (after a correction); `update`
    then gives the status."""
    qty = avg = realized = 0.0
    for f in fills:
        signed = f.shares if f.side == "BUY" else -f.shares
        qty, avg, realized = _trade(qty, avg, realized, signed, f.price, multiplier(f.contract))
    if (qty, avg, realized) == (pos.quantity, pos.avg_price, pos.realized_pnl):
        return pos
    if pos.quantity and not qty:
        return replace(
            pos, quantity=qty, avg_price=avg, realized_pnl=realized, status="closed", close_reason="flat",
            closed_seq=seq, updated_seq=seq,
        )  # fmt: skip
    return replace(pos, quantity=qty, avg_price=avg, realized_pnl=realized, updated_seq=seq)


def migrate(state: State, sym: str, con_id: int, seq: int) -> list[Position | Removed]:
    """Move every position keyed by symbol `sym` to its conId key, now that IB has named it.
    A position keyed by symbol has no fills (executions always carry the conId), so merging keeps the
    target's quantities and adds the working orders."""
    changes: list[Position | Removed] = []
    suffix = "|" + sym
    for table in (state.positions, state.strategy_positions):
        for key in [k for k in table if k.endswith(suffix)]:
            pos = table.pop(key)
            new_key = key[: -len(sym)] + str(con_id)
            existing = table.get(new_key)
            target = existing or replace(pos, key=new_key, contract=replace(pos.contract, con_id=con_id))
            for coid in pos.orders:
                target = update(target, state.orders, seq, coid=coid, working=True)
            table[new_key] = target
            changes.append(Removed(key, new_key))
            if target is not existing:
                changes.append(target)
    return changes


def reported_mismatch(state: State, ev: PositionReported) -> PositionMismatch | None:
    """For the service: the PositionMismatch to log when IB's report disagrees with the fold."""
    key = f"{ev.account}|{instrument_key(ev.contract, state.con_ids)}"
    pos = state.positions.get(key)
    folded = pos.quantity if pos is not None else 0.0
    if abs(folded - ev.position) <= EPS:
        return None
    return PositionMismatch(
        account=ev.account,
        contract=ev.contract,
        broker_position=ev.position,
        folded_position=folded,
        broker_avg_cost=ev.avg_cost,
    )
