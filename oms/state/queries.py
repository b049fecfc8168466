"""Selections of the state that the service, a replay and a client answer alike."""

from __future__ import annotations

from collections.abc import Iterable

from events.schema import Envelope
from oms.state.fold import step
from oms.state.model import TERMINAL, Order, Position, State, initial_state


def select_orders(state: State, strategy_id: str | None, open_only: bool) -> list[Order]:
    return [
        o
        for o in state.orders.values()
        if (strategy_id is None or o.strategy_id == strategy_id) and not (open_only and o.status in TERMINAL)
    ]


def select_positions(state: State, strategy_id: str | None, open_only: bool) -> list[Position]:
    source: Iterable[Position] = (
        state.positions.values()
        if strategy_id is None
        else (p for p in state.strategy_positions.values() if p.strategy_id == strategy_id)
    )
    return [p for p in source if not (open_only and p.status == "closed")]


def every_order(events: Iterable[Envelope]) -> dict[str, Order]:
    """Each order's latest value over a fold of `events`, whether or not it is still live at the end
    (finished orders retire from the state: oms.state.history)."""
    state, seen = initial_state(), dict[str, Order]()
    for env in events:
        state, changes = step(state, env)
        seen.update((c.client_order_id, c) for c in changes if isinstance(c, Order))
    return seen
