"""`oms check` against the simulator (run in its own thread, as a TWS would be) and against nothing."""

from __future__ import annotations

import socket

import pytest

from adapters.tws_sim import run_simulator_in_thread
from oms.cli import main


@pytest.mark.parametrize("library", ["ib_async", "ib_insync"])
def test_check_reports_server_version_accounts_and_sync(
    library: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _sim, port, stop = run_simulator_in_thread()
    try:
        code = main(
            ["check", "--port", str(port), "--client-id", "5", "--library", library, "--timeout", "5"]
        )
    finally:
        stop()
    out = capsys.readouterr().out
    assert code == 0, out
    newest = {"ib_async": "178", "ib_insync": "176"}[library]  # the simulator's default is 178
    assert newest in out and "DU123456" in out and "0 open orders" in out


def test_check_says_what_failed_when_nothing_listens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("IBKR_PORT", str(port))  # the default comes from the environment
    code = main(["check", "--timeout", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED" in out and str(port) in out
