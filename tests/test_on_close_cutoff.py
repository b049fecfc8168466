"""IB's closing-auction cut-offs, refused by the service before anything is logged or sent: an MOC / LOC
after its primary exchange's cut-off (NYSE 15:50 New York, Nasdaq 15:55; NYSE Arca held to 15:50), and a
cancel or modify of one from 15:50 to the close. The real service with its embedded simulator; the time
moved through the control channel (`oms sim clock`), which the service's clock follows."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.tws_sim.persist import load_state
from events.reader import JournalReader
from oms.cli import main as oms_main
from oms.service.terms import change_error, cutoff_error
from tests.client_helpers import request, running_service, service_snapshot
from tests.waiting import wait_until


def _ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1e9)


@pytest.mark.parametrize(
    ("order_type", "exchange", "at", "refused"),
    [
        ("MOC", "NYSE", "15:49:59", False),
        ("MOC", "NYSE", "15:50:00", True),
        ("LOC", "ARCA", "15:55:00", True),
        ("MOC", "NASDAQ", "15:54:59", False),
        ("LOC", "NASDAQ", "15:55:00", True),
        ("MOC", "NASDAQ", "16:00:00", False),  # from the close on, not this rule
        ("MOC", "IBIS", "15:59:00", False),  # a cut-off not known here: IB's to apply
        ("LMT", "NYSE", "15:55:00", False),
    ],
)
def test_cutoff_by_primary_exchange(order_type: str, exchange: str, at: str, refused: bool) -> None:
    found = cutoff_error(order_type, exchange, _ns(f"2026-07-01T{at}-04:00"))  # summer time too
    assert (found is not None) == refused, found
    if refused:
        assert found is not None and found.startswith("IB error 201: Order rejected - reason:")


def test_no_cancel_or_modify_from_1550_to_the_close() -> None:
    assert change_error("MOC", _ns("2026-12-02T15:49:59-05:00"), cancel=True) is None
    cancel = change_error("MOC", _ns("2026-12-02T15:50:00-05:00"), cancel=True)
    assert cancel is not None and cancel.startswith("IB error 161")
    modify = change_error("LOC", _ns("2026-12-02T15:59:00-05:00"), cancel=False)
    assert modify is not None and modify.startswith("IB error 201")
    assert change_error("LMT", _ns("2026-12-02T15:55:00-05:00"), cancel=True) is None


def _moc(router: str, coid: str, symbol: str) -> dict[str, Any]:
    reply = request(router, {"op": "place", "client_order_id": coid, "contract": {"symbol": symbol},
                             "side": "BUY", "quantity": 5, "order_type": "MOC"})  # fmt: skip
    assert reply is not None, f"no reply to {coid}"
    return reply


def _refused(reply: dict[str, Any], says: str) -> None:
    assert not reply["ok"], reply
    assert reply["error"]["code"] == "invalid", reply
    assert says in reply["error"]["message"], reply


def _accepted_by_ib(router: str, coid: str) -> bool:
    order = service_snapshot(router).orders.get(coid)
    return order is not None and order.status == "submitted"


def test_the_service_refuses_what_ib_refuses_at_the_cutoffs(tmp_path: Path) -> None:
    sim_config = tmp_path / "sim.toml"
    sim_config.write_text('clock_start = "2026-12-02T15:40-05:00"\n')  # a Wednesday
    data = tmp_path / "data"

    def clock(to: str) -> None:
        assert oms_main(["sim", "clock", to, "--data-dir", str(data)]) == 0

    with running_service(data, "--sim-config", str(sim_config)) as service:
        router = service.endpoints.router
        clock("15:49")
        assert _moc(router, "nyse-in-time", "IBM")["ok"]
        wait_until(lambda: _accepted_by_ib(router, "nyse-in-time"), timeout=10, what="IB took the 15:49 MOC")

        clock("15:51")
        _refused(_moc(router, "nyse-late", "IBM"), "IB error 201: Order rejected - reason:The MOC order "
                 "cannot be placed after the 15:50 ET cut-off of the NYSE closing auction")  # fmt: skip
        _refused(_moc(router, "arca-late", "SPY"), "15:50 ET cut-off of the ARCA closing auction")
        cancel = request(router, {"op": "cancel", "client_order_id": "nyse-in-time"})
        assert cancel is not None
        _refused(cancel, "IB error 161: Cancel attempted when order is not in a cancellable state")
        modify = request(router, {"op": "modify", "client_order_id": "nyse-in-time", "quantity": 7})
        assert modify is not None
        _refused(modify, "IB error 201: Order rejected - reason:The MOC order cannot be modified")

        clock("15:54")
        assert _moc(router, "nasdaq-in-time", "AAPL")["ok"]
        wait_until(lambda: _accepted_by_ib(router, "nasdaq-in-time"), timeout=10, what="IB took it")
        clock("15:56")
        _refused(_moc(router, "nasdaq-late", "AAPL"), "15:55 ET cut-off of the NASDAQ closing auction")

        state = service_snapshot(router)
        assert state.orders["nyse-in-time"].status == "submitted"  # neither cancelled nor changed
        assert state.orders["nyse-in-time"].quantity == 5

    late = {"nyse-late", "arca-late", "nasdaq-late"}
    journal = list(JournalReader(data / "journal").read())
    logged = {getattr(env.event, "client_order_id", None) for env in journal}
    assert {"nyse-in-time", "nasdaq-in-time"} <= logged
    assert not late & logged  # nothing journaled
    kinds = {type(env.event).__name__ for env in journal}
    assert "CancelRequested" not in kinds and "ModifyRequested" not in kinds
    saved = load_state(str(data / "sim"))
    assert saved is not None
    sent = {o.order_ref for o in saved.orders}
    assert {"nyse-in-time", "nasdaq-in-time"} <= sent  # the simulator's own record: what IB got
    assert not late & sent
