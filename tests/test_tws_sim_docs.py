"""The documentation's examples run: the README script against a simulator, and `oms sim` itself."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from adapters.tws_sim import SimConfig, run_simulator_in_thread

DOC = Path(__file__).resolve().parents[1] / "docs" / "simulator.md"


def readme_script() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- readme-script -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "docs/simulator.md lost its readme-script block"
    return match.group(1)


def test_readme_script_fills_an_order(tmp_path: Path) -> None:
    script = tmp_path / "buy.py"
    script.write_text(readme_script())
    assert len(readme_script().strip().splitlines()) <= 14
    sim, port, stop = run_simulator_in_thread(SimConfig())
    try:
        env = {**os.environ, "IBKR_HOST": "127.0.0.1", "IBKR_PORT": str(port)}
        done = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        status, filled, price = done.stdout.split()[-3:]
        assert (status, float(filled)) == ("Filled", 10.0)
        assert float(price) == sim.executions[0].price
    finally:
        stop()


def test_oms_sim_command_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "oms", "sim", "--port", "0", "--seed", "3", "--server-version", "176",
         "--fault", "duplicate_exec=1", "--state-dir", str(tmp_path / "st"), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert match, line
        script = tmp_path / "buy.py"
        script.write_text(readme_script())
        done = subprocess.run(
            [sys.executable, str(script), match.group(1)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[-3] == "Filled"
        moved = subprocess.run(
            [sys.executable, "-m", "oms", "sim", "price", "AAPL", "123.456", "--data-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert moved.returncode == 0 and moved.stdout.startswith("AAPL 123.46 at "), moved  # on the tick grid
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "clientId 1" in out
        assert (tmp_path / "st" / "tws_sim_state.json").exists()
        assert not (tmp_path / "sim-control.json").exists()  # the control file goes with the simulator
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_oms_sim_rejects_bad_flags(tmp_path: Path) -> None:
    for flags in (["--server-version", "179"], ["--fault", "nonsense=1"]):
        done = subprocess.run(
            [sys.executable, "-m", "oms", "sim", "--port", "0", "--data-dir", str(tmp_path), *flags],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 2, (flags, done.stdout, done.stderr)
