"""Entities carry every field when encoded (snapshots, PUB, replies): a client in any language reads a
pending order's `status` without a table of defaults (docs/protocol.md section 2)."""

from __future__ import annotations

import msgspec

from events.schema import Contract
from oms.state.codec import decode_state, encode_state
from oms.state.fold import fold
from oms.state.model import Account, Fill, Order, Position
from tests.fold_strategies import AAPL, commission, execution, log, requested, sent

ENTITIES: dict[str, type[msgspec.Struct]] = {
    "orders": Order,
    "positions": Position,
    "strategy_positions": Position,
    "accounts": Account,
    "fills": Fill,
}


def _names(struct: type[msgspec.Struct]) -> set[str]:
    return {f.encode_name for f in msgspec.structs.fields(struct)}


def test_a_pending_order_is_encoded_with_its_status_and_every_default() -> None:
    order = fold(log(requested(contract=AAPL))).orders["c1"]
    assert order.status == "pending"
    encoded = msgspec.msgpack.decode(msgspec.msgpack.encode(order))
    assert set(encoded) == _names(Order)
    assert (encoded["status"], encoded["filled"], encoded["perm_ids"], encoded["external"]) == (
        "pending",
        "0",  # quantities travel as exact decimal strings
        [],
        False,
    )


def test_every_entity_in_a_snapshot_carries_every_field() -> None:
    state = fold(log(requested(), sent(), requested("c2"), execution("e1.01", 4), commission("e1.01", 1.0)))
    raw = msgspec.msgpack.decode(encode_state(state))
    for table, struct in ENTITIES.items():
        assert raw[table], table
        for key, entity in raw[table].items():
            assert set(entity) == _names(struct), f"{table}[{key}]"
    assert decode_state(encode_state(state)) == state


def test_equal_contracts_encode_alike_whichever_a_process_saw_first() -> None:
    """msgspec leaves a default out of the bytes only when it is that very object: an order's contract
    is the canonical one, so a request decoded with an explicit `strike` of 0.0 encodes as one without."""
    explicit = msgspec.json.decode(b'{"symbol":"AAPL","strike":0.0}', type=Contract)
    assert b"strike" in msgspec.json.encode(explicit)
    state = fold(log(requested("c1", contract=explicit)))
    assert b"strike" not in msgspec.json.encode(state.orders["c1"].contract)
