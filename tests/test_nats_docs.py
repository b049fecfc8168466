"""docs/scaling.md as written: its Python snippet follows a mirrored service, its commands parse."""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
import sys
from pathlib import Path

from oms.cli import build_parser
from oms.client import AsyncClient
from tests.client_helpers import REPO, running_service
from tests.nats_helpers import nats_server, wait_mirrored

DOC = (REPO / "docs" / "scaling.md").read_text()


def test_the_quick_start_follows_orders_and_positions_through_jetstream(tmp_path: Path) -> None:
    snippet = re.search(r"```python\n(.*?)```", DOC, re.S)
    assert snippet is not None
    code = snippet.group(1)
    with (
        nats_server(tmp_path / "nats") as server,
        running_service(tmp_path / "oms-data", "--mirror", server.url) as service,
    ):

        async def place() -> tuple[str, int]:
            async with await AsyncClient.connect(service.data_dir, strategy_id="doc") as client:
                coid = await client.place("AAPL", "BUY", 10)
                await client.wait_for_order(coid, "filled", timeout=10)
                return coid, client.seq

        coid, seq = asyncio.run(place())
        wait_mirrored(server.url, "OMS", seq)
        command = [sys.executable, "-c", code.replace("nats://127.0.0.1:4222", server.url)]
        run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert f"order {coid} filled" in run.stdout
    assert "position AAPL 10" in run.stdout


def test_every_oms_command_in_the_doc_parses() -> None:
    lines = [line.split("  #")[0] for line in re.findall(r"^(?:\.venv/bin/)?(oms .*)$", DOC, re.M)]
    assert len(lines) >= 5
    for line in lines:
        build_parser().parse_args(shlex.split(line)[1:])
