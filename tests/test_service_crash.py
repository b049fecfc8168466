"""`python -m oms run` as a real process: SIGKILL under load and restart, SIGTERM shutdown.

The simulator runs in this test process (its own loop thread), so it keeps trading while the service is
dead, and counts what it received."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from adapters.tws_sim.config import SimConfig
from adapters.tws_sim.server import TwsSimulator, run_simulator_in_thread
from events.reader import JournalReader
from events.snapshots import latest_snapshot
from oms.protocol import ENDPOINTS_FILE, Endpoints
from oms.state.codec import decode_state
from oms.state.fold import fold
from tests.test_service_support import Wire, place
from tests.waiting import wait_until


@pytest.fixture
def sim() -> Iterator[TwsSimulator]:
    simulator, _port, stop = run_simulator_in_thread(SimConfig())
    yield simulator
    stop()


def start_service(data_dir: Path, sim: TwsSimulator) -> tuple[subprocess.Popen[bytes], Endpoints]:
    endpoints_file = data_dir / ENDPOINTS_FILE
    endpoints_file.unlink(missing_ok=True)  # a SIGKILLed service leaves its file behind
    args = ["--data-dir", str(data_dir), "--ib", f"127.0.0.1:{sim.port}", "--client-id", "7"]
    args += ["--pub", "tcp://127.0.0.1:0", "--router", "tcp://127.0.0.1:0", "--max-quantity", "1000"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "oms", "run", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_until(lambda: endpoints_file.exists() or proc.poll() is not None, timeout=30, what="endpoints.json")
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    endpoints = msgspec.json.decode(endpoints_file.read_bytes(), type=Endpoints)
    wire = Wire(endpoints.router)
    wait_until(lambda: wire.ok({"op": "ping"})["ready"], timeout=30, what="service ready")
    wire.close()
    return proc, endpoints


def stop_process(proc: subprocess.Popen[bytes], sig: int) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=30)


def state_over_wire(wire: Wire) -> tuple[int, object]:
    result = wire.ok({"op": "snapshot"})
    return result["seq"], decode_state(msgspec.msgpack.encode(result["state"]))


def test_sigkill_under_load_then_restart_recovers_durable_prefix(tmp_path: Path, sim: TwsSimulator) -> None:
    proc, endpoints = start_service(tmp_path, sim)
    wire = Wire(endpoints.router)
    sim.set_price("MSFT", 400.0)
    working = wire.ok(place("MSFT", order_type="LMT", limit_price=350.0, client_order_id="lmt-while-down"))
    assert working["seq"] > 0
    wait_until(lambda: any(o.order_ref == "lmt-while-down" for o in sim.orders), what="limit at the sim")

    total = 60
    for i in range(total):  # a burst: the pacer (50 msg/s) keeps many logged but not yet sent
        wire.dealer.send(msgspec.msgpack.encode(place("AAPL", quantity=1, client_order_id=f"load-{i}", id=i)))
    acked: set[str] = set()
    while len(acked) < 20:
        reply = wire.recv(timeout=10)
        assert reply is not None and reply["ok"], reply
        acked.add(reply["result"]["client_order_id"])
    wait_until(lambda: sum(o.order_ref.startswith("load-") for o in sim.orders) >= 5, what="some sent")
    assert stop_process(proc, signal.SIGKILL) == -signal.SIGKILL  # mid-burst: some sent, most not yet
    wire.close()

    sim.set_price("MSFT", 300.0)  # the limit fills while the service is down
    wait_until(lambda: any(e.order_ref == "lmt-while-down" for e in sim.executions), what="fill while down")

    proc, endpoints = start_service(tmp_path, sim)
    try:
        wire = Wire(endpoints.router)
        seq, state = state_over_wire(wire)
        assert acked <= set(state.orders)  # type: ignore[attr-defined]  # every acknowledged intent survived
        assert state.orders["lmt-while-down"].status == "filled"  # type: ignore[attr-defined]
        sent = Counter(o.order_ref for o in sim.orders)
        assert max(sent.values()) == 1, "an order reached the simulator twice"
        loads = {c: o.status for c, o in state.orders.items() if c.startswith("load-")}  # type: ignore[attr-defined]
        assert set(loads.values()) == {"filled", "rejected"}  # sent ones filled, unsent ones ended
        for coid, status in loads.items():
            assert (status == "filled") == (sent[coid] == 1), coid
        envs = list(JournalReader(tmp_path / "journal").read(to_seq=seq))
        assert [e.seq for e in envs] == list(range(1, seq + 1))
        assert fold(envs) == state
    finally:
        assert stop_process(proc, signal.SIGTERM) == 0


def test_sigterm_writes_snapshot_and_exits_zero(tmp_path: Path, sim: TwsSimulator) -> None:
    proc, endpoints = start_service(tmp_path, sim)
    wire = Wire(endpoints.router, endpoints.pub)
    wire.ok(place(client_order_id="before-term"))
    wire.wait_order("before-term", "filled")
    wire.close()
    assert stop_process(proc, signal.SIGTERM) == 0
    assert not (tmp_path / ENDPOINTS_FILE).exists()
    last = JournalReader(tmp_path / "journal").last_seq()
    snapshot = latest_snapshot(tmp_path / "journal")
    assert snapshot is not None and snapshot[0] == last
    assert decode_state(snapshot[1]) == fold(JournalReader(tmp_path / "journal").read())
    assert oct(os.stat(next((tmp_path / "journal" / "snapshots").iterdir())).st_mode & 0o777) == "0o600"


def test_oms_run_defaults_to_embedded_simulator_and_oms_data_in_cwd(tmp_path: Path) -> None:
    endpoints_file = tmp_path / "oms-data" / ENDPOINTS_FILE
    proc = subprocess.Popen(
        [sys.executable, "-m", "oms", "run", "--pub", "tcp://127.0.0.1:0", "--router", "tcp://127.0.0.1:0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("IBKR_")},
    )
    try:
        wait_until(lambda: endpoints_file.exists() or proc.poll() is not None, timeout=30, what="endpoints")
        endpoints = msgspec.json.decode(endpoints_file.read_bytes(), type=Endpoints)
        wire = Wire(endpoints.router, endpoints.pub)
        wait_until(lambda: wire.ok({"op": "ping"})["ready"], timeout=30, what="ready")
        wire.ok(place(client_order_id="default-run"))
        wire.wait_order("default-run", "filled")
        wire.close()
        assert (tmp_path / "oms-data" / "sim").is_dir()
        assert stat.S_IMODE((tmp_path / "oms-data").stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "oms-data" / "sim").stat().st_mode) == 0o700
    finally:
        assert stop_process(proc, signal.SIGTERM) == 0
    out = proc.stdout.read().decode() if proc.stdout else ""
    (ready,) = [line for line in out.splitlines() if line.startswith("ready: ")]  # one line, every address
    assert f"PUB {endpoints.pub}  ROUTER {endpoints.router}  IB 127.0.0.1:" in ready
    assert ready.endswith(f"  data {(tmp_path / 'oms-data').resolve()}")
