"""events.codec round-trips every event kind, keeps unknown kinds verbatim, and refuses garbage."""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.codec import CodecError, decode, encode, encode_into, to_builtins, to_json
from events.schema import (
    EVENT_TYPES,
    Envelope,
    Event,
    ModifyRequested,
    OpenOrderReported,
    OrderRequested,
    UnknownEvent,
    kind_of,
)

KNOWN = [t for t in EVENT_TYPES if t is not UnknownEvent]


def _strategy(t: mi.Type) -> st.SearchStrategy[Any]:
    """Values of a msgspec field type (finite floats: NaN never equals itself)."""
    if isinstance(t, mi.StrType):
        return st.text(max_size=12)
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.IntType):
        return st.integers(-(2**63), 2**64 - 1)
    if isinstance(t, mi.FloatType):
        return st.floats(allow_nan=False)
    if isinstance(t, mi.DecimalType):
        return st.decimals(allow_nan=False, allow_infinity=False)
    if isinstance(t, mi.BytesType):
        return st.binary(max_size=16)
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, mi.UnionType):
        return st.one_of([_strategy(u) for u in t.types])
    if isinstance(t, mi.VarTupleType):
        return st.lists(_strategy(t.item_type), max_size=3).map(tuple)
    if isinstance(t, mi.StructType):
        return _struct(t.cls)
    raise AssertionError(f"no strategy for {t}")


def _struct(cls: type) -> st.SearchStrategy[Any]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    required = {f.name: _strategy(f.type) for f in info.fields if f.required}
    optional = {f.name: _strategy(f.type) for f in info.fields if not f.required}
    return st.fixed_dictionaries(required, optional=optional).map(lambda kw: cls(**kw))


def envelopes_of(cls: type[Event]) -> st.SearchStrategy[Envelope]:
    return st.builds(Envelope, st.integers(1, 2**63 - 1), st.integers(0, 2**63 - 1), _struct(cls))


@pytest.mark.parametrize("cls", KNOWN, ids=[t.__struct_config__.tag for t in KNOWN])  # type: ignore[misc]
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_event_kind_round_trips(cls: type[Event], data: st.DataObject) -> None:
    env = data.draw(envelopes_of(cls))
    raw = encode(env)
    assert decode(raw) == env
    assert kind_of(decode(raw).event) == cls.__struct_config__.tag
    buffer = bytearray(b"head")
    encode_into(env, buffer, 4)
    assert decode(bytes(buffer[4:])) == env
    assert msgspec.json.decode(to_json(env))["event"]["kind"] == kind_of(env.event)
    assert to_builtins(env)["seq"] == env.seq


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=5).filter(lambda k: k != "kind"), st.integers(-(2**63), 2**63), max_size=4
    )
)
def test_unknown_kind_decodes_as_unknown_event_and_encodes_back_unchanged(fields: dict[str, int]) -> None:
    raw = msgspec.msgpack.encode({"seq": 3, "ts": 4, "event": {"kind": "from_the_future", **fields}, "v": 9})
    env = decode(raw)
    assert isinstance(env.event, UnknownEvent)
    assert (env.seq, env.ts, env.v, kind_of(env.event)) == (3, 4, 9, "from_the_future")
    assert decode(encode(env)) == env
    assert msgspec.msgpack.decode(encode(env)) == msgspec.msgpack.decode(raw)


@pytest.mark.parametrize("garbage", [b"", b"\xc1", b"\x93\x01\x02", msgspec.msgpack.encode([1, 2, 3, 4])])
def test_garbage_raises_codec_error(garbage: bytes) -> None:
    with pytest.raises(CodecError):
        decode(garbage)


def test_a_version_2_log_decodes_with_the_order_terms_of_version_3_at_their_defaults() -> None:
    """Schema 3 added the trailing, touch, good-till, OCA and algo fields; a log written before them
    decodes to the same values, the new fields at their defaults."""
    contract = {"symbol": "AAPL"}
    written = [
        {"kind": "order_requested", "client_order_id": "c1", "strategy_id": "s", "account": "DU1",
         "contract": contract, "side": "BUY", "quantity": "10", "order_type": "STP", "stop_price": 90.0},
        {"kind": "modify_requested", "client_order_id": "c1", "stop_price": 91.0},
        {"kind": "open_order", "order_id": 1, "perm_id": 2, "client_id": 7, "order_ref": "c1",
         "account": "DU1", "contract": contract, "side": "BUY", "quantity": "10", "order_type": "STP",
         "stop_price": 91.0},
    ]  # fmt: skip
    for n, event in enumerate(written, 1):
        env = decode(msgspec.msgpack.encode({"seq": n, "ts": n, "event": event, "v": 2}))
        assert env.v == 2 and to_builtins(env)["event"] == event  # nothing more, nothing changed
        assert isinstance(env.event, OrderRequested | ModifyRequested | OpenOrderReported)
        assert env.event.trailing_amount is None and env.event.good_till == ""
    requested = decode(msgspec.msgpack.encode({"seq": 1, "ts": 1, "event": written[0], "v": 2})).event
    assert isinstance(requested, OrderRequested)
    assert (requested.oca_group, requested.oca_type, requested.algo, requested.touch_price) == (
        "",
        0,
        "",
        None,
    )
