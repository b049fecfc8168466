"""Read-only requests answered from a `State` alone, so the service and a replay answer them alike."""

from __future__ import annotations

import msgspec

from oms.protocol import (
    OrdersRequest,
    OrdersResult,
    PositionsRequest,
    PositionsResult,
    SnapshotRequest,
    SnapshotResult,
)
from oms.state.codec import encode_state
from oms.state.model import State
from oms.state.queries import select_orders, select_positions

StateQuery = SnapshotRequest | OrdersRequest | PositionsRequest
StateResult = SnapshotResult | OrdersResult | PositionsResult
STATE_QUERIES = (SnapshotRequest, OrdersRequest, PositionsRequest)


def answer(state: State, request: StateQuery) -> StateResult:
    if isinstance(request, SnapshotRequest):
        return SnapshotResult(seq=state.seq, state=msgspec.Raw(encode_state(state)))
    if isinstance(request, OrdersRequest):
        return OrdersResult(orders=select_orders(state, request.strategy_id, request.open_only))
    return PositionsResult(positions=select_positions(state, request.strategy_id, request.open_only))
