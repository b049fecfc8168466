"""Positions: one reducer over a position's history, and the two views it keeps of each instrument.

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

Two views: every account-wide position (`account|conId`, in `State.positions`) has a strategy's view
(`strategy|account|conId`, in `State.strategy_positions`). `advanced` brings both views of every
position an order change and its fills touched up to date, and `commissioned` those of a fill whose
commission moved, each view in one pass; they return how the account-wide positions moved, for
`accounts`. `renamed` and `left` move positions when IB names an instrument's conId or an order's
account. This module writes only the positions and their histories, and only into
the step's plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from msgspec.structs import replace

from events.schema import Contract
from oms.state.fills import FillChange
from oms.state.model import WORKING, Fill, Order, Position, PositionInput, PositionStatus, Removed
from oms.state.money import ONE, ZERO, Money, add, net, plus, rounded
from oms.state.plan import REMOVED, Link, Plan, keys_after

# What the working orders on a key are, as bits of a working entry. DEFERRED marks an entry that comes
# with the fill after it (the order filled and left the working orders): the status moves once, with
# the fill, as if both were one input.
BUYING, SELLING, ACKED = 1, 2, 4
_WORKING_BITS = 3  # bits for BUYING | SELLING | ACKED
DEFERRED = 1 << 6
_REASONS = ("", "cancelled", "rejected", "inactive", "filled", "pending_cancel")
_REASON_CODE = {r: i for i, r in enumerate(_REASONS)}


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


def _views(key: str, strategy: str) -> tuple[tuple[bool, str, str], tuple[bool, str, str]]:
    """The two views of an account-wide key, as (account-wide?, position key, strategy)."""
    return (True, key, ""), (False, f"{strategy}|{key}", strategy)


def _view(plan: Plan, account_wide: bool) -> tuple[str, dict[str, Position]]:
    """A view's tag in the plan and its table in the state: account-wide, or the strategies'."""
    if account_wide:
        return "positions", plan.state.positions
    return "strategy_positions", plan.state.strategy_positions


def working_entry(seq: int, reason: str, bits: int, deferred: bool = False) -> int:
    """A working entry of a position's history, packed in one int (its seq, whether it is deferred to
    the fill after it, a reason code, the bits): a 28-byte int instead of a Struct, for memory. Only
    this module packs and reads it (`advance`)."""
    return (seq << 7) | (DEFERRED if deferred else 0) | (_REASON_CODE.get(reason, 0) << _WORKING_BITS) | bits


def _apply(plan: Plan, account_wide: bool, pkey: str, strategy: str, order: Order | None, base: str = "",
          fill: Fill | None = None, replaces: bool = False, commission: Money | None = None,
          deferred: bool = False) -> tuple[Position | None, Position | None]:  # fmt: skip
    """One view of one position through one event, in one pass, stored once in the plan: `fill` (under
    `base` in `State.fills`) added to its history, or, when it `replaces` an earlier fill, the history
    recomputed; `order` (already in the plan) joining or leaving its working orders; `commission` moved
    by a report. A new fill and the move of its order out of the working orders are one input, as if
    they came together (`deferred`: that fill is on another key). Returns (before, after); after is
    before when nothing changed."""
    tag, table = _view(plan, account_wide)
    w = plan.w
    at = (tag, pkey)  # its place in the plan, read and written
    before = pos = w.get(at, table.get(pkey))
    seq = plan.seq
    if fill is not None and replaces:
        if pos is not None:
            fills = plan.state.fills
            again = replayed(
                pos, history_after(plan, pkey), lambda key: w.get(("fills", key), fills.get(key))
            )
            if again != pos:
                pos = replace(again, updated_seq=seq)
        fill = None
    if order is not None:
        pos = _member(plan, pos, pkey, strategy, order, (deferred or fill is not None) and pos is not None)
    if fill is not None:
        if pos is None:
            pos = opened(pkey, fill.account, fill.contract, strategy)
        plan.appended.setdefault(pkey, []).append(base)
        pos = _filled(pos, fill, seq)
    if commission and pos is not None:
        pos = commission_moved(pos, commission, seq)
    if pos is not before and pos is not None:
        w[at] = pos
    return before, pos


Moved = tuple[str, Position | None, Position | None]  # an account-wide position's (account, before, after)


def advanced(plan: Plan, link: Link, steps: Sequence[Order] = (), changes: Sequence[FillChange] = ()
           ) -> list[Moved]:  # fmt: skip
    """Both views of every position an order change and its fills touched, in one pass: the positions
    keyed by a symbol its conId now names move to the conId; then, for each fill change with the order
    after it (`steps`), the order's place among the working orders of its key (leaving the key it had
    before its account or instrument was known) and the fill, new (added to the key's history) or
    replacing one (the history recomputed). With no fill change, only the order's place. Returns how the
    account-wide positions the fills touched moved, for their accounts."""
    for sym in link.named:
        renamed(plan, sym, link.contract.con_id)
    if not changes:
        _stepped(plan, link.old, link.order, link.order_key, link.moved, link.old_key, None)
        return []
    old, moved, moves = link.old, link.moved, []
    for order, change in zip(steps, changes, strict=True):
        move = _stepped(plan, old, order, link.order_key, moved, link.old_key, change)
        if move is not None:
            moves.append(move)
        old, moved = order, False
    return moves


def changes_place(old: Order | None, order: Order, moved: bool) -> bool:
    """Whether an order's change from `old` may change its place among the working orders of its key:
    new, another status or side, or `moved` (`rekeyed`)."""
    return order is not old and (old is None or old.status != order.status or old.side != order.side or moved)


def rekeyed(old: Order | None, order: Order) -> bool:
    """Whether the order's account or instrument changed, so its positions may move with it."""
    return old is not None and not (old.contract is order.contract and old.account == order.account)


def _stepped(plan: Plan, old: Order | None, order: Order, order_key: str | None, moved: bool,
             old_key: str | None, change: FillChange | None) -> Moved | None:  # fmt: skip
    """One order change (from `old`) and the fill change with it, through both views."""
    member = changes_place(old, order, moved)
    key = order_key if member else None
    if moved and old_key is not None and key is not None and old_key != key:
        left(plan, old_key, key, order)
    fill = None if change is None else change.after or change.before
    fill_key = fill.position_key if fill is not None else None
    replaces = change is not None and change.before is not None
    if key is not None and key != fill_key:  # the order's positions alone
        for account_wide, pkey, strategy in _views(key, order.strategy_id):
            _apply(plan, account_wide, pkey, strategy, order, deferred=fill is not None and not replaces)
    if change is None or fill is None:
        return None
    with_order = order if key == fill_key else None
    move = None
    for account_wide, pkey, strategy in _views(fill.position_key, fill.strategy_id):
        before, after = _apply(plan, account_wide, pkey, strategy, with_order, change.base, fill, replaces)
        if account_wide:
            move = (fill.account, before, after)
    return move


def commissioned(plan: Plan, fill: Fill, moved: Money) -> list[Moved]:
    """Both views of a fill's position after its commission moved by `moved`."""
    moves = []
    for account_wide, pkey, strategy in _views(fill.position_key, fill.strategy_id):
        before, after = _apply(plan, account_wide, pkey, strategy, None, commission=moved)
        if account_wide:
            moves.append((fill.account, before, after))
    return moves


def _member(plan: Plan, pos: Position | None, pkey: str, strategy: str, order: Order, deferred: bool,
            working: bool | None = None) -> Position | None:  # fmt: skip
    """`order` in or out of the working orders of `pos` (by its status, unless `working` says); a working
    entry in the key's history when what is working changed (`deferred`: it comes with the fill that
    follows it)."""
    reason = ""
    if working is None:
        working = order.status in WORKING
        reason = "" if working else order.status
    created = pos is None
    if pos is None:
        if not working:
            return None
        pos = opened(pkey, order.account, order.contract, strategy)
    coid = order.client_order_id
    members = pos.orders
    was = coid in members
    if was != working:
        if working:
            members = (*members, coid)
        else:
            at = members.index(coid)
            members = members[:at] + members[at + 1 :]
    mine = _contribution(order) if working else 0
    # what the working orders are: which sides, and whether IB has acknowledged any. `pos.working` is
    # that of the orders before, so an order joining only adds to it; otherwise the others' are looked
    # up, until they give all they could (at most `pos.working`): rarely more than one of them
    bits = pos.working | mine if not was else _with_others(plan, pos, coid, mine)
    moved = bits != pos.working or created
    if not moved and members is pos.orders:
        return pos
    seq = order.updated_seq
    if not moved:
        return replace(pos, orders=members, updated_seq=seq)
    plan.appended.setdefault(pkey, []).append(working_entry(seq, reason, bits, deferred))
    if deferred:
        return replace(pos, orders=members, working=bits, updated_seq=seq)
    return _working(pos, seq, reason, bits, members, seq)


def _contribution(order: Order) -> int:
    """What one working order adds to its position's working bits: its side, and whether IB has it."""
    return (BUYING if order.side == "BUY" else SELLING) | (ACKED if order.status != "pending" else 0)


def _with_others(plan: Plan, pos: Position, coid: str, mine: int) -> int:
    """`mine` with the working bits of the other working orders of `pos` (those before `coid` changed)."""
    full, bits = pos.working | mine, mine
    w, orders = plan.w, plan.state.orders
    for member in pos.orders:
        if bits == full:
            break
        if member != coid:
            other = w.get(("orders", member), orders.get(member))
            assert other is not None, member
            bits |= _contribution(other)
    return bits


def _store(plan: Plan, account_wide: bool, pkey: str, before: Position | None, pos: Position | None) -> None:
    if pos is not before and pos is not None:
        plan.w["positions" if account_wide else "strategy_positions", pkey] = pos


def renamed(plan: Plan, sym: str, con_id: int) -> None:
    """IB named the conId of the symbol key `sym`: positions keyed by the symbol move to the conId key.
    A position keyed by symbol has no fills (executions always carry the conId): it moves whole, or,
    when the conId key already has a position, its working orders join that one."""
    suffix = "|" + sym
    for account_wide in (True, False):
        tag, table = _view(plan, account_wide)
        for key in [k for k in keys_after(plan, tag) if k.endswith(suffix)]:
            pos = plan.w.get((tag, key), table.get(key))
            assert pos is not None
            contract = replace(pos.contract, con_id=con_id)
            _move(plan, account_wide, key, key[: -len(sym)] + str(con_id), pos, pos.account, contract)


def left(plan: Plan, old_key: str, new_key: str, order: Order) -> None:
    """`order`'s account became known: what it contributed leaves the old key. A position left with
    nothing else (no quantity, no other working order) moves whole to the new key; one still shared with
    other orders only loses this one from its working orders. Fills never move: executions always carry
    IB's account and conId, so they are keyed right from the start."""
    coid, strategy = order.client_order_id, order.strategy_id
    strategy_keys = (f"{strategy}|{old_key}", f"{strategy}|{new_key}") if strategy else (old_key, new_key)
    for account_wide, old_pkey, new_pkey in ((True, old_key, new_key), (False, *strategy_keys)):
        tag, table = _view(plan, account_wide)
        pos = plan.w.get((tag, old_pkey), table.get(old_pkey))
        if pos is None:
            continue
        if pos.quantity or any(c != coid for c in pos.orders):
            kept = _member(plan, pos, old_pkey, pos.strategy_id, order, False, working=False)
            _store(plan, account_wide, old_pkey, pos, kept)
            continue
        _move(plan, account_wide, old_pkey, new_pkey, pos, order.account, order.contract)


def _move(plan: Plan, account_wide: bool, key: str, new_key: str, pos: Position, account: str,
          contract: Contract) -> None:  # fmt: skip
    """Position `key` (no fills) goes to `new_key`: whole with its history, or its working orders join
    the position already there."""
    tag, table = _view(plan, account_wide)
    w = plan.w
    had_history = (
        w.get(("position_inputs", key), plan.state.position_inputs.get(key)) is not None
        or key in plan.appended
    )
    inputs = history_after(plan, key)
    w[tag, key] = None
    set_history(plan, key, None)
    for wkey, change in list(w.items()):  # moved here earlier in this event: follow on
        if wkey[0] == REMOVED and change.moved_to == key:
            w[wkey] = Removed(change.key, new_key)
    w[REMOVED, key] = Removed(key, new_key)
    target = w.get((tag, new_key), table.get(new_key))
    if target is None:
        moved = replace(
            pos, key=new_key, account=account, contract=contract if contract.con_id else pos.contract
        )
        _store(plan, account_wide, new_key, None, moved)
        if had_history:
            set_history(plan, new_key, inputs)
        return
    orders = plan.state.orders
    for coid in pos.orders:
        order = w.get(("orders", coid), orders.get(coid))
        assert order is not None, coid
        joined = _member(plan, target, new_key, pos.strategy_id, order, False, working=True)
        _store(plan, account_wide, new_key, target, joined)
        target = joined


def history_after(plan: Plan, key: str) -> list[PositionInput]:
    """A position's history as it will stand after this step (a fresh list: read, never kept)."""
    base = plan.w.get(("position_inputs", key), plan.state.position_inputs.get(key)) or ()
    return [*base, *plan.appended.get(key, ())]


def set_history(plan: Plan, key: str, inputs: list[PositionInput] | None) -> None:
    """Replace a position's whole history (a checkpoint, a moved key); None removes it."""
    plan.appended.pop(key, None)
    plan.w["position_inputs", key] = inputs


def status_of(qty: Decimal, bits: int) -> PositionStatus:
    """The design card's five states, from the quantity and the working orders on the key."""
    if qty:
        return "closing" if bits & (SELLING if qty > ZERO else BUYING) else "filled"
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


def _working(pos: Position, seq: int, reason: str, bits: int, orders: tuple[str, ...] | None = None,
             updated_seq: int = 0) -> Position:  # fmt: skip
    """A working entry: the status from the quantity and what works now, a lifecycle closed or opened.
    `orders` and `updated_seq` come along when the entry is new (not replayed), in the same replace."""
    if orders is None:
        orders, updated_seq = pos.orders, pos.updated_seq
    status = status_of(pos.quantity, bits)
    if status == pos.status:
        if bits == pos.working and orders is pos.orders and updated_seq == pos.updated_seq:
            return pos
        return replace(pos, working=bits, orders=orders, updated_seq=updated_seq)
    if status == "closed":
        return replace(
            pos, status=status, working=bits, close_reason=reason, closed_seq=seq, orders=orders,
            updated_seq=updated_seq,
        )  # fmt: skip
    if pos.status == "closed":  # a new lifecycle: the last one's close reason no longer describes it
        return replace(
            pos, status=status, working=bits, close_reason="", lifecycle=pos.lifecycle + 1, opened_seq=seq,
            orders=orders, updated_seq=updated_seq,
        )  # fmt: skip
    return replace(pos, status=status, working=bits, orders=orders, updated_seq=updated_seq)


def _filled(pos: Position, fill: Fill, updated_seq: int | None = None) -> Position:
    """A fill: quantity, average, realized P&L in the instrument's currency, commission, lifecycle; the
    position describes its instrument as IB does (multiplier, local symbol) from its first fill on."""
    old = pos.quantity
    signed = fill.shares if fill.side == "BUY" else -fill.shares
    qty = old + signed
    avg = pos.avg_price
    gross = pos.realized_pnl_gross
    if not old or (old > ZERO) == (signed > ZERO):
        avg = rounded((avg * abs(old) + fill.price * abs(signed)) / abs(qty)) if qty else ZERO
    else:
        closed = min(abs(signed), abs(old))
        realized = rounded((fill.price - avg) * closed * multiplier(fill.contract))
        gross = plus(gross, fill.contract.currency, realized if old > ZERO else -realized)
        if not qty:
            avg = ZERO
        elif (qty > ZERO) != (old > ZERO):
            avg = fill.price
    commission = add(pos.commission, fill.commission) if fill.commission else pos.commission
    # net follows from gross and commission (maps are replaced, never changed): recomputed only when one
    # of them is a new map
    unchanged = gross is pos.realized_pnl_gross and commission is pos.commission
    net_pnl = pos.realized_pnl_net if unchanged else net(gross, commission)
    status: PositionStatus = pos.status
    close_reason, closed_seq = pos.close_reason, pos.closed_seq
    lifecycle, opened_seq = pos.lifecycle, pos.opened_seq
    seq = fill.seq
    if old and not qty:
        status, close_reason, closed_seq = "closed", "flat", seq
    elif old and (qty > ZERO) != (old > ZERO):
        close_reason, closed_seq, lifecycle, opened_seq = "flipped", seq, lifecycle + 1, seq
    new_status = status_of(qty, pos.working)
    if new_status != status:
        if status == "closed":
            lifecycle, opened_seq, close_reason = lifecycle + 1, seq, ""
        status = new_status
    return replace(
        pos, quantity=qty, avg_price=avg, realized_pnl_gross=gross, commission=commission,
        realized_pnl_net=net_pnl, status=status, close_reason=close_reason,
        closed_seq=closed_seq, lifecycle=lifecycle, opened_seq=opened_seq,
        contract=fill.contract if fill.contract.con_id else pos.contract,  # IB's description, once filled
        updated_seq=pos.updated_seq if updated_seq is None else updated_seq,
    )  # fmt: skip


def replayed(pos: Position, inputs: Iterable[PositionInput], fill_of: Callable[[str], Fill | None]
             ) -> Position:  # fmt: skip
    """`pos` recomputed from its whole history (after a correction or a replaced inferred fill): the
    same `advance`, from a position before its first lifecycle or from the checkpoint at the history's
    head. Its working orders stay as they are."""
    current = opened(pos.key, pos.account, pos.contract, pos.strategy_id)
    for entry in inputs:
        if isinstance(entry, str):
            fill = fill_of(entry)
            if fill is not None:
                current = advance(current, entry, fill)
        elif isinstance(entry, int):
            current = advance(current, entry, None)
        else:  # a checkpoint: where the retired fills before it led
            current = entry
    return replace(current, orders=pos.orders, updated_seq=pos.updated_seq)


def commission_moved(pos: Position, commission: Money, seq: int) -> Position:
    """`pos` after a commission report changed its fills' commissions by `commission` (a delta)."""
    total = add(pos.commission, commission)
    return replace(
        pos, commission=total, realized_pnl_net=net(pos.realized_pnl_gross, total), updated_seq=seq
    )
