"""Start-up refusals that must be fast, clear and harmless: a taken port, a locked data directory."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from events.journal_errors import JournalLocked
from oms.protocol import ENDPOINTS_FILE
from tests.test_service_support import Wire, running

REPO = Path(__file__).resolve().parents[1]


def oms(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oms", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("which", ["pub", "router"])
def test_a_taken_port_fails_fast_naming_the_endpoint_and_the_fix(tmp_path: Path, which: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        ports = {"pub": "tcp://127.0.0.1:0", "router": "tcp://127.0.0.1:0", which: endpoint}
        proc = oms(
            "run", "--data-dir", str(tmp_path), "--pub", ports["pub"], "--router", ports["router"], timeout=30
        )
    assert proc.returncode == 1, proc.stderr
    assert f"cannot bind the {which.upper()} socket to {endpoint}" in proc.stderr
    assert f"--{which}" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / ENDPOINTS_FILE).exists()


def test_a_refused_second_service_writes_nothing_into_the_running_ones_data_dir(tmp_path: Path) -> None:
    with running(tmp_path) as service:
        before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
        endpoints = (tmp_path / ENDPOINTS_FILE).read_bytes()
        with pytest.raises(JournalLocked, match=str(tmp_path / "journal")), running(tmp_path):
            pass
        proc = oms(
            "run", "--data-dir", str(tmp_path), "--pub", "tcp://127.0.0.1:0", "--router", "tcp://127.0.0.1:0"
        )
        assert proc.returncode == 1
        assert "is locked by pid" in proc.stderr and "--data-dir" in proc.stderr
        sim_files = {p for p in tmp_path.rglob("*") if p.is_file() and "sim" in p.parts}
        after = {p: p.stat().st_mtime_ns for p in sim_files}
        assert after == {p: t for p, t in before.items() if p in sim_files}  # the simulator never started
        assert (tmp_path / ENDPOINTS_FILE).read_bytes() == endpoints
        wire = Wire(service.endpoints.router)
        assert wire.ok({"op": "ping"})["ready"] is True
        wire.close()
