"""docs/protocol.md is the contract: its example client runs against a real service, and every op, field,
error code, topic and entity field the code defines is documented there."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from oms import protocol
from oms.state.model import Account, Order, Position, State
from tests.client_helpers import REPO, running_service

DOC = REPO / "docs" / "protocol.md"
EXAMPLE = REPO / "docs" / "examples" / "strategy_client.py"


def test_the_documented_example_client_places_follows_and_prints_the_position(tmp_path: Path) -> None:
    with running_service(tmp_path / "data") as service:
        run = subprocess.run(
            [sys.executable, str(EXAMPLE), "--data-dir", str(service.data_dir), "--symbol", "AAPL",
             "--quantity", "10", "--strategy", "doc"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    coid = next(line.split()[1] for line in lines if line.startswith("placed "))
    assert coid.startswith("doc-")
    statuses = [line.split()[2] for line in lines if line.startswith(f"order {coid} ")]
    assert statuses == ["pending", "submitted", "filled"], run.stdout
    assert re.search(rf"^order {coid} filled 10 @ \d", run.stdout, re.M)
    assert re.search(r"^position AAPL 10 @ [\d.]+ \(filled\)$", run.stdout, re.M), run.stdout


def test_the_example_uses_only_pyzmq_msgspec_and_the_standard_library() -> None:
    tree = ast.parse(EXAMPLE.read_text())
    roots = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    roots |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert roots - sys.stdlib_module_names - {"__future__"} == {"zmq", "msgspec"}


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text()


def test_every_op_and_each_of_its_fields_is_documented(doc: str) -> None:
    for op, request in protocol.OPS.items():
        assert f"**`{op}`**" in doc, op
        section = doc.split(f"**`{op}`**", 1)[1].split("\n**`", 1)[0]
        for field in msgspec.structs.fields(request):
            if field.name != "id":
                assert f"`{field.name}`" in section, f"{op}.{field.name}"


def test_every_error_code_risk_reason_and_published_type_is_documented(doc: str) -> None:
    for code in protocol.ERROR_CODES:
        assert f"| `{code}` |" in doc, code
    assert set(protocol.ERROR_CODES) == set(protocol.ErrorCode.__args__)  # type: ignore[attr-defined]
    for reason in protocol.RISK_REASONS:
        assert f"| `{reason}` |" in doc, reason
    for kind in protocol.PublishedType.__args__:  # type: ignore[attr-defined]
        assert f"`{kind}`" in doc, kind
    for topic in (protocol.HEARTBEAT_TOPIC, protocol.POSITION_MOVED_TOPIC, protocol.event_topic("<kind>")):
        assert f"`{topic}`" in doc, topic
    assert f"{protocol.MAX_EVENTS_BATCH}" in doc and "64 KiB" in doc


def test_every_entity_and_state_field_is_documented(doc: str) -> None:
    for struct in (Order, Position, Account, State, protocol.Endpoints):
        for field in msgspec.structs.fields(struct):
            assert f"`{field.name}`" in doc or f'"{field.name}"' in doc, f"{struct.__name__}.{field.name}"
