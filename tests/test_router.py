"""Bad input on the ROUTER: each request gets one error reply with the right code; the log is unchanged."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms.protocol import ERROR_CODES, MAX_MESSAGE_BYTES, OPS
from oms.service.router import LIBZMQ_MAX_MESSAGE, decode_request, split_frames
from tests.test_service_support import Wire, last_seq, place, running

enc = msgspec.msgpack.encode

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
    ("quantity as string", enc(place(quantity="10")), "invalid"),
    ("quantity NaN", enc(place(quantity=math.nan)), "invalid"),
    ("quantity inf", enc(place(quantity=math.inf)), "invalid"),
    ("quantity -inf", enc(place(quantity=-math.inf)), "invalid"),
    ("quantity negative", enc(place(quantity=-5)), "invalid"),
    ("quantity zero", enc(place(quantity=0)), "invalid"),
    ("limit NaN", enc(place(order_type="LMT", limit_price=math.nan)), "invalid"),
    ("limit negative", enc(place(order_type="LMT", limit_price=-1.0)), "invalid"),
    ("limit zero", enc(place(order_type="LMT", limit_price=0.0)), "invalid"),
    ("stop inf", enc(place(order_type="STP", stop_price=math.inf)), "invalid"),
    ("LMT without price", enc(place(order_type="LMT")), "invalid"),
    ("MKT with a price", enc(place(limit_price=10.0)), "invalid"),
    ("bad side", enc(place(side="HOLD")), "invalid"),
    ("bad order type", enc(place(order_type="MOC")), "invalid"),
    ("bad contract", enc({**place(), "contract": {"symbol": "AAPL", "evil": True}}), "invalid"),
    ("bool quantity", enc(place(quantity=True)), "invalid"),
    ("modify NaN", enc({"op": "modify", "client_order_id": "x", "limit_price": math.nan}), "invalid"),
    ("events limit too big", enc({"op": "events", "from_seq": 1, "limit": 10**6}), "invalid"),
    ("events from 0", enc({"op": "events", "from_seq": 0}), "invalid"),
    ("cancel unknown id", enc({"op": "cancel", "client_order_id": "nope"}), "unknown_order"),
    ("modify unknown id", enc({"op": "modify", "client_order_id": "nope", "quantity": 1}), "unknown_order"),
    ("unknown parent", enc(place(parent_client_order_id="ghost")), "unknown_order"),
    ("too large", enc({"op": "ping", "pad": "x" * (MAX_MESSAGE_BYTES + 1)}), "too_large"),
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running(tmp_path_factory.mktemp("router")) as svc:
        yield svc


@pytest.fixture(scope="module")
def shared_wire(service: Any) -> Any:
    """One DEALER for all hypothesis examples (connecting is the slow part)."""
    wire = Wire(service.endpoints.router)
    yield wire
    wire.close()


def test_every_bad_request_gets_its_error_code_and_changes_nothing(service: Any) -> None:
    wire = Wire(service.endpoints.router)
    before = last_seq(service)
    for name, payload, code in BAD_REQUESTS:
        reply = wire.request(payload)
        assert reply["ok"] is False, name
        assert reply["error"]["code"] == code, (name, reply)
        assert reply["error"]["message"], name
        assert code in ERROR_CODES
    assert wire.request(enc({"op": "launch_rockets", "id": 3}))["id"] == 3  # the id is echoed even then
    assert last_seq(service) == before
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
    assert last_seq(service) == before
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
garbage = st.binary(max_size=200) | json_values.map(enc) | requests_like


@settings(max_examples=150, deadline=None)
@given(payloads=st.lists(garbage, min_size=1, max_size=5))
def test_generated_garbage_is_always_answered_and_never_logged(
    service: Any, shared_wire: Wire, payloads: list[bytes]
) -> None:
    wire = shared_wire
    before = last_seq(service)
    for payload in payloads:
        reply = wire.request(payload, timeout=5)
        assert isinstance(reply, dict) and reply["ok"] in (True, False)
        if not reply["ok"]:
            assert reply["error"]["code"] in ERROR_CODES
        else:
            assert reply["op"] not in {"place", "modify", "cancel"}, reply  # cancel_all: nothing working
    assert last_seq(service) == before


def test_decode_request_pure() -> None:
    assert decode_request(enc({"op": "ping", "id": "a"})).id == "a"  # type: ignore[union-attr]
    assert split_frames([b"peer", b"x", b"y"])[1].error.code == "bad_frames"  # type: ignore[union-attr]
    assert split_frames([b"peer", b"", b"x"]) == ([b"peer", b""], b"x")
    assert split_frames([b"peer", b"x"]) == ([b"peer"], b"x")
