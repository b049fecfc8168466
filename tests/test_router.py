"""Bad input on the ROUTER: each request gets one error reply with the right code; the log is unchanged."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms.protocol import ERROR_CODES, MAX_MESSAGE_BYTES, OPS
from oms.service.router import LIBZMQ_MAX_MESSAGE, decode_request, split_frames
from tests.test_service_support import Wire, last_seq, place, running

enc = msgspec.msgpack.encode

BOTH_SCOPES = {"strategy_id": "alpha", "account": "DU1"}
BAD_REQUESTS: list[tuple[str, bytes, str]] = [
    ("garbage bytes", b"\xc1\xff\x00garbage", "malformed"),
    ("empty frame", b"", "malformed"),
    ("array not map", enc([1, 2, 3]), "malformed"),
    ("string not map", enc("place"), "malformed"),
    ("trailing bytes", enc({"op": "ping"}) + b"\x00", "malformed"),
    ("no op", enc({"id": 1}), "invalid"),
    ("op not a string", enc({"op": 5}), "invalid"),
    ("unknown op", enc({"op": "launch_rockets", "id": 3}), "unknown_op"),
    ("unknown field", enc({"op": "ping", "extra": 1}), "invalid"),
    ("quantity as text that is no number", enc(place(quantity="ten")), "invalid"),
    ("quantity below the size increment", enc(place(quantity=5e-324)), "invalid"),
    ("fractional stock quantity", enc(place(quantity=1.5)), "invalid"),
    ("quantity NaN", enc(place(quantity=math.nan)), "invalid"),
    ("quantity inf", enc(place(quantity=math.inf)), "invalid"),
    ("quantity -inf", enc(place(quantity=-math.inf)), "invalid"),
    ("quantity negative", enc(place(quantity=-5)), "invalid"),
    ("quantity zero", enc(place(quantity=0)), "invalid"),
    ("quantity 1e28", enc(place(quantity="1e28")), "invalid"),
    ("quantity of 17 digits", enc(place(quantity="1.0000000000000001")), "invalid"),
    ("limit above the bound", enc(place(order_type="LMT", limit_price=1e13)), "invalid"),
    ("limit NaN", enc(place(order_type="LMT", limit_price=math.nan)), "invalid"),
    ("limit negative", enc(place(order_type="LMT", limit_price=-1.0)), "invalid"),
    ("limit zero", enc(place(order_type="LMT", limit_price=0.0)), "invalid"),
    ("stop inf", enc(place(order_type="STP", stop_price=math.inf)), "invalid"),
    ("LMT without price", enc(place(order_type="LMT")), "invalid"),
    ("MKT with a price", enc(place(limit_price=10.0)), "invalid"),
    ("bad side", enc(place(side="HOLD")), "invalid"),
    ("bad order type", enc(place(order_type="MOO")), "invalid"),
    ("MOC with a limit price", enc(place(order_type="MOC", limit_price=10.0)), "invalid"),
    ("bad contract", enc({**place(), "contract": {"symbol": "AAPL", "evil": True}}), "invalid"),
    ("bool quantity", enc(place(quantity=True)), "invalid"),
    ("modify NaN", enc({"op": "modify", "client_order_id": "x", "limit_price": math.nan}), "invalid"),
    ("events limit too big", enc({"op": "events", "from_seq": 1, "limit": 10**6}), "invalid"),
    ("kill switch of both scopes", enc({"op": "kill_switch", "engaged": True, **BOTH_SCOPES}), "invalid"),
    ("events from 0", enc({"op": "events", "from_seq": 0}), "invalid"),
    ("cancel unknown id", enc({"op": "cancel", "client_order_id": "nope"}), "unknown_order"),
    ("modify unknown id", enc({"op": "modify", "client_order_id": "nope", "quantity": 1}), "unknown_order"),
    ("unknown parent", enc(place(parent_client_order_id="ghost")), "unknown_order"),
    ("too large", enc({"op": "ping", "pad": "x" * (MAX_MESSAGE_BYTES + 1)}), "too_large"),
]


def nested(
    depth: int, op: str | None = "place", field: str = "contract", container: bytes = b"\x91"
) -> bytes:
    """A msgpack request whose `field` is `depth` arrays (or single-key maps) deep."""
    inner = (b"\x81\xa1a" if container == b"\x81" else container) * depth + b"\x01"
    if op is None:
        return inner
    return b"\x82\xa2op" + enc(op) + enc(field) + inner


DEEP_REQUESTS = [
    nested(1000, None),
    nested(1000, None, container=b"\x81"),
    nested(1000, "place", "contract"),
    nested(1000, "ping", "id", container=b"\x81"),
    nested(5000, "ping", "unknown"),
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running(tmp_path_factory.mktemp("router")) as svc:
        yield svc


class _Problems(logging.Handler):
    """Every ERROR record or traceback the service logs while the module's tests run."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)


@pytest.fixture(scope="module")
def problems(service: Any) -> Iterator[_Problems]:
    handler = _Problems()
    logging.getLogger("oms").addHandler(handler)
    yield handler
    logging.getLogger("oms").removeHandler(handler)


@pytest.fixture(scope="module")
def shared_wire(service: Any) -> Any:
    """One DEALER for all hypothesis examples (connecting is the slow part)."""
    wire = Wire(service.endpoints.router)
    yield wire
    wire.close()


REQUEST_KINDS = {
    "order_requested",
    "modify_requested",
    "cancel_requested",
    "order_denied",
    "order_sent",
    "kill_switch",
}


def requested_since(service: Any, seq: int) -> list[str]:
    """The kinds journaled after `seq` that a request can cause (IB's own reports, such as the account
    values the simulator keeps sending, may arrive meanwhile and change nothing a request did)."""
    from events.reader import JournalReader
    from events.schema import kind_of

    service.call(lambda: service.service.pipeline.drain())  # what the loop accepted is in the file
    kinds = (
        kind_of(env.event) for env in JournalReader(Path(service.config.data_dir) / "journal").read(seq + 1)
    )
    return [kind for kind in kinds if kind in REQUEST_KINDS]


def test_every_bad_request_gets_its_error_code_and_changes_nothing(service: Any) -> None:
    wire = Wire(service.endpoints.router)
    before = last_seq(service)
    for name, payload, code in BAD_REQUESTS:
        reply = wire.request(payload)
        assert reply["ok"] is False, name
        assert reply["error"]["code"] == code, (name, reply)
        assert reply["error"]["message"], name
        assert code in ERROR_CODES
        assert "`" not in reply["error"]["message"] and "$." not in reply["error"]["message"], reply
    assert wire.request(enc({"op": "launch_rockets", "id": 3}))["id"] == 3  # the id is echoed even then
    assert wire.request(enc({"id": 4}))["id"] == 4  # a map without op too
    empty_symbol = wire.request(enc({**place(), "contract": {"symbol": ""}}))["error"]["message"]
    assert empty_symbol == "contract.symbol: expected text of at least 1 character"
    huge = wire.request(enc(place(quantity=2e9)))["error"]["message"]
    assert huge == "quantity 2000000000 is above 1000000000, the most an order may have"
    assert requested_since(service, before) == []
    assert wire.ok({"op": "ping"})["ready"] is True
    wire.close()


def test_extra_frames_and_req_envelope(service: Any) -> None:
    wire = Wire(service.endpoints.router)
    before = last_seq(service)
    wire.send_frames([enc({"op": "ping"}), b"extra"])
    reply = wire.recv()
    assert reply is not None and reply["error"]["code"] == "bad_frames"
    wire.send_frames([b"", enc({"op": "ping", "id": 9})])  # REQ-style envelope is answered the same way
    dealer_reply = wire.dealer.recv_multipart()
    assert dealer_reply[0] == b"" and msgspec.msgpack.decode(dealer_reply[1])["id"] == 9
    assert requested_since(service, before) == []
    wire.close()


def test_message_beyond_libzmq_limit_drops_only_that_peer(service: Any) -> None:
    wire = Wire(service.endpoints.router)
    wire.dealer.send(b"\x00" * (LIBZMQ_MAX_MESSAGE + 1))
    assert wire.recv(timeout=0.5) is None  # libzmq disconnected the peer: no reply is possible
    other = Wire(service.endpoints.router)
    assert other.ok({"op": "ping"})["ready"] is True
    wire.close()
    other.close()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
requests_like = st.fixed_dictionaries(
    {"op": st.sampled_from(sorted(set(OPS) - {"kill_switch"})) | st.text(max_size=8)},
    optional={
        "id": json_values,
        "quantity": json_values,
        "limit_price": json_values,
        "client_order_id": json_values,
        "contract": json_values,
        "side": json_values,
        "engaged": json_values,
    },
).map(enc)
deep = st.builds(
    nested,
    st.integers(200, 3000),
    st.none() | st.sampled_from(sorted(OPS)),
    st.sampled_from(["contract", "id", "quantity", "x"]),
    st.sampled_from([b"\x91", b"\x81"]),
)
garbage = st.binary(max_size=200) | json_values.map(enc) | requests_like | deep


@settings(max_examples=150, deadline=None)
@given(payloads=st.lists(garbage, min_size=1, max_size=5))
def test_generated_garbage_is_always_answered_and_never_logged(
    service: Any, shared_wire: Wire, problems: _Problems, payloads: list[bytes]
) -> None:
    wire = shared_wire
    before = last_seq(service)
    for payload in payloads:
        reply = wire.request(payload, timeout=5)
        assert isinstance(reply, dict) and reply["ok"] in (True, False)
        if not reply["ok"]:
            assert reply["error"]["code"] in ERROR_CODES
            assert reply["error"]["code"] != "internal", reply
        else:
            assert reply["op"] not in {"place", "modify", "cancel"}, reply  # cancel_all: nothing working
    assert requested_since(service, before) == []
    assert not problems.records, [r.getMessage() for r in problems.records]  # no traceback, no error


def test_deep_nesting_is_malformed_with_nothing_on_stderr(
    service: Any, problems: _Problems, capfd: pytest.CaptureFixture[str]
) -> None:
    wire = Wire(service.endpoints.router)
    before = last_seq(service)
    for payload in DEEP_REQUESTS:
        reply = wire.request(payload)
        assert reply["error"]["code"] == "malformed", reply
        assert "nested too deeply" in reply["error"]["message"]
    assert wire.ok({"op": "ping"})["ready"] is True
    assert requested_since(service, before) == []
    assert not problems.records, [r.getMessage() for r in problems.records]
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "RecursionError" not in captured.err
    wire.close()


def test_decode_request_pure() -> None:
    assert decode_request(enc({"op": "ping", "id": "a"})).id == "a"  # type: ignore[union-attr]
    assert split_frames([b"peer", b"x", b"y"])[1].error.code == "bad_frames"  # type: ignore[union-attr]
    assert split_frames([b"peer", b"", b"x"]) == ([b"peer", b""], b"x")
    assert split_frames([b"peer", b"x"]) == ([b"peer"], b"x")
