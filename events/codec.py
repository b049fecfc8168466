"""Envelope codec: msgpack for the journal and the wire, JSON for people.

Decoding never crashes on a kind this code does not know: such an event comes back as `UnknownEvent`
holding its raw bytes, and encoding writes those bytes back unchanged.
"""

from __future__ import annotations

from typing import Any

import msgspec

from events.schema import Envelope, UnknownEvent


class CodecError(ValueError):
    """Bytes that are not a valid envelope (as opposed to a valid envelope of an unknown kind)."""

    code = "bad_envelope"


class _LooseEnvelope(msgspec.Struct, frozen=True):
    seq: int
    ts: int
    event: msgspec.Raw
    v: int = 1


class _KindOnly(msgspec.Struct):
    kind: str


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope)
_loose_decoder = msgspec.msgpack.Decoder(_LooseEnvelope)
_kind_decoder = msgspec.msgpack.Decoder(_KindOnly)
_json_encoder = msgspec.json.Encoder()


def encode(env: Envelope) -> bytes:
    if isinstance(env.event, UnknownEvent):
        loose = _LooseEnvelope(env.seq, env.ts, msgspec.Raw(env.event.raw), env.v)
        return _encoder.encode(loose)
    return _encoder.encode(env)


def encode_into(env: Envelope, buffer: bytearray, offset: int) -> None:
    """Encode straight into `buffer` at `offset` (the journal's hot path avoids a copy)."""
    if isinstance(env.event, UnknownEvent):
        data = encode(env)
        del buffer[offset:]
        buffer.extend(data)
    else:
        _encoder.encode_into(env, buffer, offset)


def decode(data: bytes | memoryview) -> Envelope:
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as exc:
        return _decode_unknown(data, exc)
    except msgspec.DecodeError as exc:
        raise CodecError(f"not a msgpack envelope: {exc}") from exc


def _decode_unknown(data: bytes | memoryview, original: msgspec.ValidationError) -> Envelope:
    """A valid envelope whose event is of a kind (or a field) this version does not know."""
    try:
        loose = _loose_decoder.decode(data)
        kind = _kind_decoder.decode(loose.event).kind
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise CodecError(f"invalid envelope: {original}") from exc
    return Envelope(loose.seq, loose.ts, UnknownEvent(original_kind=kind, raw=bytes(loose.event)), loose.v)


def to_builtins(env: Envelope) -> dict[str, Any]:
    """Plain dicts and lists, for JSON output, tables and DuckDB."""
    if isinstance(env.event, UnknownEvent):
        event: Any = msgspec.msgpack.decode(env.event.raw)
        return {"seq": env.seq, "ts": env.ts, "event": event, "v": env.v}
    result: dict[str, Any] = msgspec.to_builtins(env)
    return result


def to_json(env: Envelope) -> bytes:
    """One line of JSON, readable by people and by `jq`."""
    return _json_encoder.encode(to_builtins(env))
