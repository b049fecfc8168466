"""Snapshots of the folded state as msgpack bytes: a cache that speeds up start-up, never the truth.

Decoding validates into the typed Structs, so a snapshot written by an older version with fewer fields
still loads (new fields take their defaults); one that does not validate, or that another version of the
fold's rules wrote (`FOLD_VERSION`), raises `SnapshotError` and the caller folds from the journal instead.
"""

from __future__ import annotations

import msgspec

from oms.state.model import FOLD_VERSION, State

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(State)


class SnapshotError(ValueError):
    """Bytes that are not a snapshot this version can read."""


def encode_state(state: State) -> bytes:
    return _encoder.encode(state)


def decode_state(data: bytes | memoryview) -> State:
    try:
        state = _decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SnapshotError(f"unreadable snapshot: {exc}") from exc
    if state.fold_version != FOLD_VERSION:
        raise SnapshotError(
            f"a snapshot of fold version {state.fold_version}; this code folds version {FOLD_VERSION}"
        )
    return state
