"""`oms check --acceptance` against the simulator (as a TWS on its own thread): every step, with and
without fills; refused on live ports and live accounts whatever the flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.ib.acceptance import STEPS
from adapters.ib.wire import read_messages
from adapters.tws_sim import FaultConfig, SimConfig, run_simulator_in_thread
from oms.cli import main


def acceptance(tmp_path: Path, *flags: str, config: SimConfig | None = None) -> tuple[int, list[str]]:
    sim, port, stop = run_simulator_in_thread(config or SimConfig())
    try:
        code = main(["check", "--port", str(port), "--timeout", "5", "--data-dir", str(tmp_path), *flags])
        return code, [o.status for o in sim.orders]
    finally:
        stop()


def step_lines(out: str) -> dict[str, str]:
    return {name: line for line in out.splitlines() for name in STEPS if line[7:].startswith(name + " ")}


@pytest.mark.parametrize("fills", [False, True], ids=["no-fills", "allow-fills"])
def test_every_step_passes_against_the_simulator(
    fills: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, statuses = acceptance(tmp_path, "--acceptance", *(["--allow-fills"] if fills else []))
    out = capsys.readouterr().out
    lines = step_lines(out)
    assert list(lines) == list(STEPS), out  # one line per step, in order
    assert code == 0, out
    for name in STEPS[:-2]:
        assert lines[name].startswith("ok "), lines[name]
    assert "DU123456" in lines["accounts"] and "conId 265598" in lines["contract details (stock)"]
    assert "ESZ6" in lines["contract details (future)"] and "EUR.USD" in lines["contract details (forex)"]
    if fills:
        assert lines["MKT buy 1 share"].startswith("ok ") and "commission 1 USD" in lines["MKT buy 1 share"]
        assert lines["MKT sell 1 share"].startswith("ok ")
        assert statuses.count("Filled") == 2
    else:
        assert lines["MKT buy 1 share"].startswith("skip ") and "--allow-fills" in lines["MKT buy 1 share"]
        assert "Filled" not in statuses
    assert statuses.count("Cancelled") == 4  # the limit order and the bracket's three
    (capture,) = (tmp_path / "wire").iterdir()
    assert f"wire capture: {capture}" in out
    names = [m.name for m in read_messages(capture)]
    assert names.count("placeOrder") == (7 if fills else 5) and names.count("cancelOrder") == 2


@pytest.mark.parametrize("port", ["7496", "4001"])
def test_live_ports_are_refused_whatever_the_flags(
    port: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", "--port", port, "--acceptance", "--allow-fills", "--data-dir", str(tmp_path)])
    assert code == 2
    assert "live-trading port" in capsys.readouterr().err
    assert not (tmp_path / "wire").exists()  # nothing was even connected


def test_live_accounts_are_refused_before_any_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, statuses = acceptance(
        tmp_path, "--acceptance", "--allow-fills", config=SimConfig(accounts=("U1234567",))
    )
    captured = capsys.readouterr()
    assert code == 2 and statuses == []
    assert "U1234567" in captured.err and "paper" in captured.err
    (capture,) = (tmp_path / "wire").iterdir()
    assert "placeOrder" not in {m.name for m in read_messages(capture)}


def test_a_failed_step_says_what_ib_answered_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = acceptance(tmp_path, "--acceptance", config=SimConfig(faults=FaultConfig(reject=1.0)))
    out = capsys.readouterr().out
    lines = step_lines(out)
    assert code == 1
    assert lines["LMT placed"].startswith("FAILED ") and "IB 201" in lines["LMT placed"], lines["LMT placed"]
    assert lines["LMT modified"].startswith("skip ") and "LMT placed failed" in lines["LMT modified"]
    assert lines["bracket placed"].startswith("FAILED ") and lines["bracket cancelled"].startswith("skip ")
    assert list(lines) == list(STEPS)  # still one line per step
    assert lines["reconciliation after disconnect"].startswith("ok ")  # the other steps still ran


def test_nothing_listening_fails_the_connect_and_skips_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["check", "--port", str(port), "--timeout", "2", "--acceptance", "--data-dir", str(tmp_path)])
    lines = step_lines(capsys.readouterr().out)
    assert code == 1 and list(lines) == list(STEPS)
    assert lines["connect"].startswith("FAILED ") and str(port) in lines["connect"]
    assert all(lines[name].startswith("skip ") for name in STEPS[1:])
