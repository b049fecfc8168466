"""The exit codes documented in docs/operations.md, each produced by the command it is documented for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from oms.cli import client, main
from oms.cli import replay as replay_commands

REPO = Path(__file__).resolve().parents[1]


def documented() -> dict[str, list[str]]:
    """Command cell -> the cells of its row (0, 1, 2, 130) in the exit code table."""
    section = (REPO / "docs" / "operations.md").read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| `oms")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


def codes_of(command: str) -> set[int]:
    row = next(cells for name, cells in documented().items() if f"`{command}`" in name)
    return {code for code, cell in zip((0, 1, 2, 130), row, strict=True) if cell}


def test_the_constants_are_the_documented_codes() -> None:
    assert (client.EXIT_REFUSED, client.EXIT_NO_SERVICE) == (1, 2)
    assert (replay_commands.EXIT_NO, replay_commands.EXIT_REFUSED) == (1, 2)
    assert codes_of("oms order") == {0, 1, 2, 130} and codes_of("oms run") == {0, 1, 2}


def test_each_documented_failure_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing")
    cases = [
        ("oms order", ["orders", "--data-dir", missing], 2),
        ("oms replay", ["replay", missing], 2),
        ("oms replay", ["query", str(tmp_path / "x.duckdb")], 2),
        ("oms keys", ["keys", str(tmp_path / "k")], 0),
        ("oms keys", ["keys", str(tmp_path / "k")], 2),
    ]
    for command, argv, code in cases:
        assert code in codes_of(command), (command, code)
        assert main(argv) == code, argv
    capsys.readouterr()
    with pytest.raises(SystemExit) as usage:
        main(["tail", "--kind", "bogus"])
    assert usage.value.code == 2


def test_oms_run_refuses_a_bad_configuration_with_2(tmp_path: Path) -> None:
    assert 2 in codes_of("oms run")
    proc = subprocess.run(
        [sys.executable, "-m", "oms", "run", "--data-dir", str(tmp_path / "d"), "--max-quantity", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "risk.max_quantity = 0" in proc.stderr
    assert not (tmp_path / "d").exists()
