"""One step's plan: every value an event changes, computed before anything is written; and `Link`,
whom an execution is for, which the owners hand on.

`oms.state.fold.step` hands the plan to the owners (orders, fills, positions, accounts, links); each
computes the new values of its own tables and writes them into the plan, never into the state:
`plan.w["orders", coid] = order`, `None` for a removal. A read through the plan sees this event's
earlier decisions over the state: `plan.w.get(("orders", coid), state.orders.get(coid))`. `commit`
then assigns the plan into the state, so nothing is written before it: an event that raises leaves
the state exactly as it was, with nothing to undo. The entities the plan writes (orders, positions,
accounts, fold errors, and `Removed` for a position key that moved) are the step's changes, in the
order they were first written.
"""

from __future__ import annotations

from typing import Any, Literal

from msgspec import Struct, field

from events.schema import Contract
from oms.state.model import Changed, Order, PositionInput, State

# A plan's writes are keyed (State field, key); these fields' values are the step's changes.
_CHANGES = frozenset({"orders", "positions", "strategy_positions", "accounts", "fold_errors"})
REMOVED = "removed"  # a change only, no field: the position key that moved, with its `Removed`


class Plan(Struct):
    """The writes of one step: `w` by (State field, key), history entries added per position key, and
    State's scalar fields. A (mutable) Struct, not a class of our own: one is made for every event, and
    msgspec builds it without running Python code."""

    state: State
    seq: int
    ts: int
    w: dict[tuple[str, Any], Any] = field(default_factory=dict)
    appended: dict[str, list[PositionInput]] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)


class Link(Struct, frozen=True, gc=False):
    """Whom an execution (or an inferred fill) is for, as its ids say, computed once and handed on: the
    order before (None when this event makes it) and with what the event taught about it (IB's ids, its
    account and side, its instrument's conId); the shared Contract of that conId; the fill's side and
    account-wide position key; the order's key now and, when its account or instrument became known,
    before; and the symbol keys the conId newly names (their positions move to it)."""

    old: Order | None
    order: Order
    contract: Contract
    side: Literal["BUY", "SELL"] | None  # the execution's; None for an order change without one
    key: str
    order_key: str | None
    moved: bool
    old_key: str | None
    named: tuple[str, ...]


def keys_after(plan: Plan, tag: str) -> list[Any]:
    """Every key a table holds after this step (for the rare scans: renames, superseded reports)."""
    w = plan.w
    kept = [k for k in getattr(plan.state, tag) if (tag, k) not in w]
    return kept + [k for (t, k), v in w.items() if t == tag and v is not None]


def commit(plan: Plan) -> None:
    """Write the plan into its state: assignments only, so it cannot stop half-way."""
    state = plan.state
    for (tag, key), value in plan.w.items():
        if value is None:
            getattr(state, tag).pop(key, None)
        elif tag != REMOVED:  # a change only, no field
            getattr(state, tag)[key] = value
    if plan.appended:
        inputs = state.position_inputs
        for key, entries in plan.appended.items():
            current = inputs.get(key)
            if current is None:
                inputs[key] = entries
            else:
                current.extend(entries)
    if plan.fields:
        for name, value in plan.fields.items():
            setattr(state, name, value)


def changed(plan: Plan) -> tuple[Changed, ...]:
    """The step's changes: the entities it wrote and the position keys that moved, in the order first
    written (a removed entity is no change: it left the state, as a retired order does)."""
    return tuple(
        value
        for (tag, _), value in plan.w.items()
        if tag == REMOVED or (value is not None and tag in _CHANGES)
    )
