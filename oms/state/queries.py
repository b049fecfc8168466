"""Selections of the state that the service, a replay and a client answer alike."""

from __future__ import annotations

from collections.abc import Iterable

from oms.state.model import TERMINAL, Order, Position, State


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
