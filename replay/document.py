"""The folded state as one JSON document, for scripts and people debugging a session (`oms replay
--json`): `{"seq", "ts", "orders", "positions", "strategy_positions", "accounts", "fills"}`, each a
list of entities with every field. Quantities, prices and money are exact decimal strings (`"1.08005"`,
`"0"`: oms.client.render's exact text); money is a `{currency: amount}` map (docs/state.md, "The JSON
document")."""

from __future__ import annotations

import msgspec

from oms.client.render import json_text
from oms.state.model import Account, Fill, Order, Position, State


class StateDocument(msgspec.Struct, frozen=True):
    seq: int
    ts: int
    orders: list[Order]
    positions: list[Position]
    strategy_positions: list[Position]
    accounts: list[Account]
    fills: list[Fill]


def state_document(state: State) -> bytes:
    return json_text(
        StateDocument(
            seq=state.seq,
            ts=state.ts,
            orders=list(state.orders.values()),
            positions=list(state.positions.values()),
            strategy_positions=list(state.strategy_positions.values()),
            accounts=list(state.accounts.values()),
            fills=list(state.fills.values()),
        )
    ).encode()
