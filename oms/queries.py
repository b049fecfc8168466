"""Read-only requests answered from a `State` alone, so the service and a replay answer them alike."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from oms.protocol import (
    OrdersRequest,
    OrdersResult,
    PositionsRequest,
    PositionsResult,
    SnapshotRequest,
    SnapshotResult,
)
from oms.snapshot_codec import encode_state
from oms.state import TERMINAL, Order, Position, State

StateQuery = SnapshotRequest | OrdersRequest | PositionsRequest
StateResult = SnapshotResult | OrdersResult | PositionsResult
STATE_QUERIES = (SnapshotRequest, OrdersRequest, PositionsRequest)


def answer(state: State, request: StateQuery) -> StateResult:
    if isinstance(request, SnapshotRequest):
        return SnapshotResult(seq=state.seq, state=msgspec.Raw(encode_state(state)))
    if isinstance(request, OrdersRequest):
        return OrdersResult(orders=select_orders(state, request.strategy_id, request.open_only))
    return PositionsResult(positions=select_positions(state, request.strategy_id, request.open_only))


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
