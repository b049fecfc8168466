"""A real service over a journal that holds an order finished long ago: the order has retired from the
live state (and its snapshot), the `order` op still answers it from the journal, and its id stays taken."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from events.journal import JournalWriter
from oms.state.history import RETIRE_AFTER_NS
from tests.client_helpers import request, running_service, service_snapshot
from tests.test_fold_history import _filled_order
from tests.test_service_support import place

SIM_START = "2026-12-02T10:00-05:00"  # the embedded simulator's clock, the service's too: a Wednesday


def _an_hour_ago(data: Path) -> None:
    """c1: requested, filled and its commission in, all an hour before the simulator's clock starts."""
    start = int(datetime.fromisoformat(SIM_START).timestamp() * 1e9) - 4 * RETIRE_AFTER_NS
    with JournalWriter.open(data / "journal") as writer:
        for i, event in enumerate(_filled_order()):
            writer.append(event, ts=start + i * 1_000_000)  # type: ignore[arg-type]


def test_a_retired_order_is_answered_from_the_journal_and_its_id_stays_taken(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    _an_hour_ago(data)
    sim_config = tmp_path / "sim.toml"
    sim_config.write_text(f'clock_start = "{SIM_START}"\n')
    with running_service(data, "--sim-config", str(sim_config)) as service:
        router = service.endpoints.router
        state = service_snapshot(router)
        assert "c1" not in state.orders and state.history.orders == 1
        status = request(router, {"op": "status", "id": 0})
        assert status is not None and status["result"]["retired_orders"] == 1
        assert status["result"]["live_orders"] == len(state.orders)

        reply = request(router, {"op": "order", "id": 1, "client_order_id": "c1"})
        assert reply is not None and reply["ok"], reply
        assert reply["result"]["retired"] is True
        order = reply["result"]["order"]
        assert (order["client_order_id"], order["status"], order["filled"]) == ("c1", "filled", "10")

        unknown = request(router, {"op": "order", "id": 2, "client_order_id": "nobody"})
        assert unknown is not None and unknown["error"]["code"] == "unknown_order"

        again = request(router, {**place(client_order_id="c1"), "id": 3})
        assert again is not None and not again["ok"]
        assert again["error"]["code"] == "duplicate_client_order_id"
        assert "retired" in again["error"]["message"]

        fresh = request(router, {**place(client_order_id="c2"), "id": 4})
        assert fresh is not None and fresh["ok"], fresh
        live = request(router, {"op": "order", "id": 5, "client_order_id": "c2"})
        assert live is not None and live["result"]["retired"] is False
