"""Positions: one reducer over a position's history, its fills and what its working orders were.

`advance(position, input)` is the only function that changes a position's quantity, average price,
money, status and lifecycle. Its input is either a fill or a "working entry": what the working orders on
the key were after an order came, went or was acknowledged (which sides, whether IB has acknowledged
any), with the reason a lifecycle would close. Every key keeps its inputs in `State.position_inputs`, so
a correction, an inferred fill that a real execution replaces, or a restart recomputes the position by
folding `advance` over the same history (`replayed`): live and recomputed positions cannot disagree.

pending -> submitted -> filled <-> closing -> closed (docs/state.md). A fill that brings the quantity
back to 0 closes the lifecycle ("flat"); one that flips the sign closes it and opens the next
("flipped"); an entry whose orders all end without a fill closes it with that order's status
("cancelled", "rejected", "inactive"). IB's own position reports never change any of this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from msgspec.structs import replace

from events.schema import Contract, PositionMismatch, PositionReported, symbol_key
from oms.state.model import Fill, Order, Position, PositionInput, PositionStatus, State
from oms.state.money import ONE, ZERO, Money, add, net, plus, rounded

# What the working orders on a key are, as bits of a working entry. DEFERRED marks an entry that comes
# with the fill after it (the order filled and left the working orders): the status moves once, with
# the fill, as if both were one input.
BUYING, SELLING, ACKED = 1, 2, 4
_WORKING_BITS = 3  # bits for BUYING | SELLING | ACKED
DEFERRED = 1 << 6
_REASONS = ("", "cancelled", "rejected", "inactive", "filled", "pending_cancel")
_REASON_CODE = {r: i for i, r in enumerate(_REASONS)}


def instrument_key(c: Contract, con_ids: Mapping[str, int]) -> str:
    """The conId when known (from the contract or learned for its symbol), else the symbol key."""
    if c.con_id:
        return str(c.con_id)
    sym = symbol_key(c)
    con_id = con_ids.get(sym)
    return str(con_id) if con_id else sym


def position_key(account: str, contract: Contract, con_ids: Mapping[str, int]) -> str:
    """The account-wide key of a position: `account|conId`, or `account|symbol key` until IB names it."""
    return f"{account}|{instrument_key(contract, con_ids)}"


@lru_cache(maxsize=4096)
def multiplier(c: Contract) -> Decimal:
    """IB's multiplier of a contract (1 when it has none, as for stocks and forex)."""
    try:
        value = Decimal(c.multiplier) if c.multiplier else ONE
    except InvalidOperation:
        return ONE
    return value if value > 0 else ONE


def opened(key: str, account: str, contract: Contract, strategy_id: str) -> Position:
    """A position before its first lifecycle."""
    return Position(key=key, account=account, contract=contract, strategy_id=strategy_id)


def working_bits(members: Iterable[str], orders: Mapping[str, Order]) -> int:
    bits = 0
    for coid in members:
        order = orders[coid]
        bits |= BUYING if order.side == "BUY" else SELLING
        if order.status != "pending":
            bits |= ACKED
    return bits


def working_entry(seq: int, reason: str, bits: int, deferred: bool = False) -> int:
    """A working entry of a position's history, packed in one int (its seq, whether it is deferred to
    the fill after it, a reason code, the bits)."""
    return (seq << 7) | (DEFERRED if deferred else 0) | (_REASON_CODE.get(reason, 0) << _WORKING_BITS) | bits


def status_of(qty: Decimal, bits: int) -> PositionStatus:
    """The design card's five states, from the quantity and the working orders on the key."""
    if qty:
        return "closing" if bits & (SELLING if qty > 0 else BUYING) else "filled"
    if not bits & (BUYING | SELLING):
        return "closed"
    return "submitted" if bits & ACKED else "pending"


def advance(pos: Position, entry: PositionInput, fill: Fill | None) -> Position:
    """The position after one input of its history: `fill` (for a fill entry) or the working entry."""
    if fill is None:
        assert isinstance(entry, int)
        bits = entry & 7
        if entry & DEFERRED:
            return pos if bits == pos.working else replace(pos, working=bits)
        return _working(pos, entry >> 7, _REASONS[(entry >> _WORKING_BITS) & 7], bits)
    return _filled(pos, fill)


def _working(pos: Position, seq: int, reason: str, bits: int) -> Position:
    status = status_of(pos.quantity, bits)
    if status == pos.status:
        return pos if bits == pos.working else replace(pos, working=bits)
    if status == "closed":
        return replace(pos, status=status, working=bits, close_reason=reason, closed_seq=seq)
    if pos.status == "closed":  # a new lifecycle: the last one's close reason no longer describes it
        return replace(
            pos, status=status, working=bits, close_reason="", lifecycle=pos.lifecycle + 1, opened_seq=seq
        )
    return replace(pos, status=status, working=bits)


def _filled(pos: Position, fill: Fill) -> Position:
    old = pos.quantity
    signed = fill.shares if fill.side == "BUY" else -fill.shares
    qty = old + signed
    avg = pos.avg_price
    mult = multiplier(fill.contract)
    gross = pos.realized_pnl_gross
    if not old or (old > 0) == (signed > 0):
        avg = rounded((avg * abs(old) + fill.price * abs(signed)) / abs(qty)) if qty else ZERO
    else:
        closed = min(abs(signed), abs(old))
        realized = rounded((fill.price - avg) * closed * mult)
        gross = plus(gross, fill.contract.currency, realized if old > 0 else -realized)
        if not qty:
            avg = ZERO
        elif (qty > 0) != (old > 0):
            avg = fill.price
    commission = add(pos.commission, fill.commission) if fill.commission else pos.commission
    status: PositionStatus = pos.status
    close_reason, closed_seq = pos.close_reason, pos.closed_seq
    lifecycle, opened_seq = pos.lifecycle, pos.opened_seq
    seq = fill.seq
    if old and not qty:
        status, close_reason, closed_seq = "closed", "flat", seq
    elif old and (qty > 0) != (old > 0):
        close_reason, closed_seq, lifecycle, opened_seq = "flipped", seq, lifecycle + 1, seq
    new_status = status_of(qty, pos.working)
    if new_status != status:
        if status == "closed":
            lifecycle, opened_seq, close_reason = lifecycle + 1, seq, ""
        status = new_status
    return replace(
        pos, quantity=qty, avg_price=avg, realized_pnl_gross=gross, commission=commission,
        realized_pnl_net=net(gross, commission), status=status, close_reason=close_reason,
        closed_seq=closed_seq, lifecycle=lifecycle, opened_seq=opened_seq,
    )  # fmt: skip


def replayed(pos: Position, inputs: Iterable[PositionInput], fills: Mapping[str, Fill]) -> Position:
    """`pos` recomputed from its whole history (after a correction or a replaced inferred fill): the
    same `advance`, from a position before its first lifecycle or from the checkpoint at the history's
    head. Its working orders stay as they are."""
    current = opened(pos.key, pos.account, pos.contract, pos.strategy_id)
    for entry in inputs:
        if isinstance(entry, str):
            fill = fills.get(entry)
            if fill is not None:
                current = advance(current, entry, fill)
        elif isinstance(entry, int):
            current = advance(current, entry, None)
        else:  # a checkpoint: where the retired fills before it led
            current = entry
    return replace(current, orders=pos.orders, updated_seq=pos.updated_seq)


def commission_moved(pos: Position, commission: Money) -> Position:
    """`pos` after a commission report changed its fills' commissions by `commission` (a delta)."""
    total = add(pos.commission, commission)
    return replace(pos, commission=total, realized_pnl_net=net(pos.realized_pnl_gross, total))


def reported_mismatch(state: State, ev: PositionReported) -> PositionMismatch | None:
    """For the service: the PositionMismatch to log when IB's report disagrees with the fold."""
    key = position_key(ev.account, ev.contract, state.con_ids)
    pos = state.positions.get(key)
    folded = pos.quantity if pos is not None else ZERO
    if folded == ev.position:
        return None
    return PositionMismatch(
        account=ev.account,
        contract=ev.contract,
        broker_position=ev.position,
        folded_position=folded,
        broker_avg_cost=ev.avg_cost,
    )
