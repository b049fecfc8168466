"""The README's examples run as written: the strategy snippet against a real service, the ib_async
snippet against the simulator."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from adapters.tws_sim import SimConfig, run_simulator_in_thread
from tests.client_helpers import REPO, running_service

README = (REPO / "README.md").read_text()


def python_block(after_heading: str) -> str:
    section = README.split(after_heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block after {after_heading!r}"
    return match.group(1)


def test_the_strategy_snippet_places_an_order_and_sees_it_filled(tmp_path: Path) -> None:
    code = python_block("## A strategy in Python")
    with running_service(tmp_path / "oms-data"):
        run = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("filled 10 "), run.stdout
    assert "mean-revert" in run.stdout and "quantity=Decimal('10')" in run.stdout, run.stdout


def test_the_ib_async_snippet_fills_against_the_simulator(tmp_path: Path) -> None:
    code = python_block("## Trading against the simulator with plain ib_async")
    _sim, port, stop = run_simulator_in_thread(SimConfig())
    try:
        run = subprocess.run(
            [sys.executable, "-c", code, str(port)], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
    finally:
        stop()
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.fullmatch(r"Filled 10\.0 \d+\.\d+\n", run.stdout), run.stdout
