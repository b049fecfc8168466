"""docs/protocol.md is the contract: its example client runs against a real service, and every op, field,
error code, topic and entity field the code defines is documented there."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# --- the corrected statements, each checked against a running service ------------------------------


def said(doc: str, *phrases: str) -> None:
    """Each phrase is in the document (whitespace-insensitive): the statement tested below is made."""
    flat = " ".join(doc.split())
    for phrase in phrases:
        assert " ".join(phrase.split()) in flat, phrase


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.test_service_support import running

    with running(tmp_path_factory.mktemp("protocol-doc")) as service:
        yield service


def test_framing_and_the_echoed_id(doc: str, live: Any) -> None:
    from tests.test_service_support import Wire

    said(doc, "An empty payload frame is one frame that is not msgpack: it is answered with `malformed`",
         "answered with `bad_frames`", "a map without `op` included", "1,000 levels deep")  # fmt: skip
    wire = Wire(live.endpoints.router)
    assert (wire.request(b"")["error"]["code"], wire.request(b"")["id"]) == ("malformed", None)
    no_op = wire.request(msgspec.msgpack.encode({"id": 41}))
    assert (no_op["error"]["code"], no_op["id"]) == ("invalid", 41)
    deep = wire.request(b"\x82\xa2op\xa4ping\xa2id" + b"\x91" * 1000 + b"\x01")
    assert (deep["error"]["code"], deep["id"]) == ("malformed", None)
    wire.send_frames([b"{}", b"{}"])
    assert wire.recv()["error"]["code"] == "bad_frames"  # type: ignore[index]
    wire.close()


def test_contracts_keys_posmove_integer_keys_and_64_bit_ts(doc: str, live: Any) -> None:
    from tests.test_service_support import Wire, place

    said(
        doc,
        "a `contract` may carry `strike: 0.0`",
        "carries `sec_type`, `exchange` and `currency` even at their defaults",
        "`DU123456|STK:AAPL:USD`", "`DU123456|265598`", "`s1|DU123456|265598`",
        "`pos.DU123456.AAPL:0`, then `pos.DU123456.AAPL:265598`",
        "**before** the entity under its new key, once for the account position and once for each strategy's",
        "`perm_ids` (permId -> client order id) and `instruments` (conId -> contract)",
        "are keyed by msgpack ints",
        "beyond 2^53", "`BigInt`",
    )  # fmt: skip
    wire = Wire(live.endpoints.router, live.endpoints.pub)
    wire.ok(place(client_order_id="doc-1", strategy_id="s1"))
    wire.wait_order("doc-1", "filled")
    wire.wait_pub(lambda t, m: t.startswith("spos.s1.DU123456.AAPL:265598") and m["data"]["quantity"] == "10")
    entities = [(t, m) for t, m in wire.seen if t.split(".")[0] in ("pos", "spos", "posmove")]
    topics = [t for t, _ in entities]
    assert topics.index("pos.DU123456.AAPL:0") < topics.index("pos.DU123456.AAPL:265598")
    moves = [(i, m["data"]) for i, (t, m) in enumerate(entities) if t == "posmove"]
    assert [data for _, data in moves] == [
        {"key": "DU123456|STK:AAPL:USD", "moved_to": "DU123456|265598"},
        {"key": "s1|DU123456|STK:AAPL:USD", "moved_to": "s1|DU123456|265598"},
    ]
    for index, data in moves:  # each move comes before the entity under its new key, same seq
        following = next(m for t, m in entities[index + 1 :] if t != "posmove")
        assert following["data"]["key"] == data["moved_to"]
        assert following["seq"] == entities[index][1]["seq"]
    described = next(m["data"]["contract"] for t, m in wire.seen if t == "evt.execution")
    assert (described["sec_type"], described["exchange"], described["currency"]) == ("STK", "SMART", "USD")
    state = wire.ok({"op": "snapshot"})["state"]
    assert all(isinstance(k, int) for k in (*state["perm_ids"], *state["instruments"]))
    assert state["perm_ids"] and state["instruments"]
    assert state["ts"] > 2**53 and set(state["positions"]) >= {"DU123456|265598"}
    wire.close()


def test_which_error_wins(doc: str, live: Any) -> None:
    from tests.test_service_support import Wire, place

    said(doc, "**Which error wins**", "`unknown_op`, then `invalid`", "an existing client order id first",
         "risk checks in the order of section 4 (`kill_switch` first)")  # fmt: skip
    wire = Wire(live.endpoints.router, live.endpoints.pub)
    reply = wire.request({"op": "launch", "quantity": -1})
    assert reply["error"]["code"] == "unknown_op"
    wire.ok(place(client_order_id="win-1", quantity=1))
    reply = wire.request(place(client_order_id="win-1", quantity=10**6, side="SELL"))  # also > max_quantity
    assert reply["error"]["code"] == "duplicate_client_order_id"
    wire.ok({"op": "kill_switch", "engaged": True})
    try:
        reply = wire.request(place(client_order_id="win-2", quantity=10**6))  # also > max_quantity
        assert (reply["error"]["code"], reply["error"]["reason"]) == ("risk_denied", "kill_switch")
    finally:
        wire.ok({"op": "kill_switch", "engaged": False})
    wire.close()
