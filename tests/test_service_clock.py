"""The service's clock: wall time, or, when `oms run` embeds the simulator, the simulator's clock, so
time moved with `oms sim clock` passes for the journal and the fold (orders retire) as it does for IB."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from events.reader import JournalReader
from events.schema import OrderRequested
from oms.cli import main as oms_main
from oms.service.clock import ServiceClock
from oms.state.model import State
from tests.client_helpers import request, running_service, service_snapshot
from tests.waiting import wait_until

START = datetime.fromisoformat("2026-12-02T10:00-05:00").timestamp()  # a Wednesday, US markets open
NS = 10**9


def test_wall_time_until_it_follows_a_source_and_never_back() -> None:
    wall = iter([5 * NS, 7 * NS])
    clock = ServiceClock(wall=lambda: next(wall))
    assert clock() == 5 * NS
    clock.floor(6 * NS)
    assert clock() == 7 * NS  # past the floor: wall time as it is
    source = [3.0]
    clock.follow(lambda: source[0])
    assert clock() == 7 * NS  # the source is behind: held, not back
    source[0] = 9.5
    assert clock() == 9_500_000_000
    source[0] = 9.0
    assert clock() == 9_500_000_000
    clock.floor(10 * NS)
    assert clock() == 10 * NS


def _filled_with_commission(router: str, coid: str) -> State | None:
    state = service_snapshot(router)
    order = state.orders.get(coid)
    fills = [f for f in state.fills.values() if f.client_order_id == coid]
    done = order is not None and order.status == "filled" and fills and all(f.commission for f in fills)
    return state if done else None


def _place(router: str, coid: str) -> dict[str, Any]:
    reply = request(router, {"op": "place", "client_order_id": coid, "contract": {"symbol": "AAPL"},
                             "side": "BUY", "quantity": 1})  # fmt: skip
    assert reply is not None and reply.get("ok"), reply
    return reply


def test_embedded_service_journals_at_the_simulators_time_and_retires_when_it_moves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim_config = tmp_path / "sim.toml"
    sim_config.write_text('clock_start = "2026-12-02T10:00-05:00"\n')
    data = tmp_path / "data"
    with running_service(data, "--sim-config", str(sim_config)) as service:
        router = service.endpoints.router
        _place(router, "clk-1")
        wait_until(lambda: _filled_with_commission(router, "clk-1"), timeout=10, what="clk-1 filled")

        assert oms_main(["sim", "clock", "+1h", "--data-dir", str(data)]) == 0
        assert "2026-12-02T16:00" in capsys.readouterr().out  # 10:00 New York + 1 h, in UTC

        _place(router, "clk-2")  # an event an hour later: the fold sweeps, the quiet filled order goes
        wait_until(lambda: _filled_with_commission(router, "clk-2"), timeout=10, what="clk-2 filled")
        status = request(router, {"op": "status"})
        assert status is not None
        assert status["result"]["retired_orders"] == 1
        assert status["result"]["live_orders"] == 1
        first = request(router, {"op": "order", "client_order_id": "clk-1"})
        assert first is not None and first["result"]["retired"] is True

    envs = list(JournalReader(data / "journal").read())
    times = [env.ts for env in envs]
    assert times == sorted(times)  # never back
    assert START * NS <= times[0] < (START + 600) * NS  # the simulator's Wednesday, not today's wall time
    asked = {env.event.client_order_id: env.ts for env in envs if isinstance(env.event, OrderRequested)}
    assert asked["clk-1"] < (START + 600) * NS
    assert (START + 3600) * NS <= asked["clk-2"] < (START + 3600 + 600) * NS


@pytest.mark.parametrize(
    ("text", "says"),
    [(None, "No such file"), ("clock_start = 5\n", "clock_start"), ('reset_at = "25:99"\n', "reset_at")],
)
def test_a_bad_sim_config_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None, says: str
) -> None:
    path = tmp_path / "sim.toml"
    if text is not None:
        path.write_text(text)
    data = tmp_path / "data"
    assert oms_main(["run", "--data-dir", str(data), "--sim-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"--sim-config {path}" in err and says in err, err
    assert not data.exists()  # nothing written
