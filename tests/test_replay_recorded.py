"""A session recorded by the real service (the real IB client against the TWS simulator), replayed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from oms.state.model import State
from replay.archive import archive_journal
from replay.queries import connect, run
from replay.source import JournalSource
from replay.states import state_at, states_at
from replay.timeline import order_timelines
from replay.verify import verify
from tests.test_service_support import Wire, place, running, state_of

ENTITY_TABLES = {"order": "orders", "position": "positions", "strategy_position": "strategy_positions"}


def _wire(value: object) -> Any:
    return msgspec.msgpack.decode(msgspec.msgpack.encode(value))


def _entity(state: State, kind: str, data: dict[str, Any]) -> Any:
    if kind == "account":
        return state.accounts[data["account"]]
    key = data["client_order_id"] if kind == "order" else data["key"]
    return getattr(state, ENTITY_TABLES[kind])[key]


def test_a_recorded_session_replays_to_what_the_live_service_published(tmp_path: Path) -> None:
    with running(tmp_path) as service:
        wire = Wire(service.endpoints.router, service.endpoints.pub)
        wire.ok(place(strategy_id="s1", client_order_id="buy-1"))
        wire.wait_order("buy-1", "filled")
        wire.ok(place(side="SELL", quantity=4, strategy_id="s1", client_order_id="sell-1"))
        wire.wait_order("sell-1", "filled")
        wire.ok(place(order_type="LMT", limit_price=1.0, strategy_id="s2", client_order_id="lmt-1"))
        wire.wait_order("lmt-1", "submitted")
        wire.ok({"op": "cancel", "client_order_id": "lmt-1"})
        wire.wait_order("lmt-1", "cancelled")
        live = state_of(service)
        last = live.seq  # one read: IB's account values may arrive between two
        wire.wait_pub(lambda t, m: t == "hb" and m["seq"] >= last, what="the heartbeat after the last event")
        published = [
            m for _, m in wire.seen if m.get("type") in ("order", "position", "strategy_position", "account")
        ]
        wire.close()

    source = JournalSource(tmp_path)
    assert state_at(source, last, use_snapshots=False) == live
    # every entity the live service published is, field for field, the replayed one at that seq
    by_seq: dict[int, list[dict[str, Any]]] = {}
    for message in published:
        by_seq.setdefault(message["seq"], []).append(message)
    seqs = sorted(by_seq)
    for seq, state in zip(seqs, states_at(source, seqs, use_snapshots=False), strict=True):
        for message in by_seq[seq]:
            assert _wire(_entity(state, message["type"], message["data"])) == message["data"], (seq, message)

    # the order's timeline changes exactly where the service published the order
    for coid in ("buy-1", "sell-1", "lmt-1"):
        (timeline,) = order_timelines(source, coid)
        changed = [e.env.seq for e in timeline.entries if e.changed]
        pushed = sorted(
            {m["seq"] for m in published if m["type"] == "order" and m["data"]["client_order_id"] == coid}
        )
        assert changed == [s for s in pushed if s <= source.last_seq()]
        assert timeline.entries[-1].order == live.orders[coid]

    report = verify(source.path)  # the snapshot the service wrote on stop matches a refold
    assert report.checks and report.ok

    archive_journal(tmp_path, tmp_path / "s.duckdb")
    final = state_at(source, source.last_seq())
    con = connect(tmp_path / "s.duckdb")
    try:
        rows = run(con, "SELECT client_order_id, status, filled, avg_fill_price FROM orders ORDER BY 1").rows
        positions = run(con, "SELECT key, quantity, avg_price, status FROM positions ORDER BY 1").rows
    finally:
        con.close()
    assert rows == sorted((c, o.status, o.filled, o.avg_fill_price) for c, o in final.orders.items())
    assert positions == sorted((p.key, p.quantity, p.avg_price, p.status) for p in final.positions.values())
