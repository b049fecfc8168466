"""Frames: the unit of the journal, and the pure scan that tells a torn tail from corruption.

A frame is a 16-byte header then the msgpack envelope (events.codec):

    offset 0  u32 LE  payload length (1 .. MAX_PAYLOAD)
    offset 4  u32 LE  CRC-32 (zlib) of the 8 seq bytes followed by the payload
    offset 8  u64 LE  seq (duplicated from the envelope so readers can seek and filter without decoding)

Everything here works on bytes already in memory; no I/O.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

HEADER = struct.Struct("<IIQ")
HEADER_SIZE = HEADER.size
MAX_PAYLOAD = 16 << 20

_SEQ = struct.Struct("<Q")
_pack_header = HEADER.pack
_unpack_header = HEADER.unpack_from
_crc32 = zlib.crc32
_pack_seq = _SEQ.pack


def frame_header(seq: int, payload: bytes) -> bytes:
    """The header of the frame holding `payload` (CRC-32 of seq bytes + payload, chained: no copy)."""
    return _pack_header(len(payload), _crc32(payload, _crc32(_pack_seq(seq))), seq)


def iter_frames(data: bytes, pos: int, seq: int) -> Iterator[tuple[int, int, int]]:
    """(seq, payload start, payload end) of each good frame from `pos` whose seq is `seq`, `seq + 1`, ...

    Stops silently at the first frame that is not good; `diagnose` says why."""
    end = len(data)
    view = memoryview(data)
    while pos + HEADER_SIZE <= end:
        length, crc, frame_seq = _unpack_header(data, pos)
        start = pos + HEADER_SIZE
        stop = start + length
        if frame_seq != seq or not 0 < length <= MAX_PAYLOAD or stop > end:
            return
        if _crc32(view[pos + 8 : stop]) != crc:
            return
        yield seq, start, stop
        seq += 1
        pos = stop


@dataclass(frozen=True, slots=True)
class Damage:
    """Why scanning stopped before the end of the data, and whether that looks like a torn write."""

    offset: int
    reason: str
    torn: bool


def diagnose(data: bytes, pos: int, seq: int) -> Damage | None:
    """None at a clean end; else the damage at `pos` where a frame with `seq` was expected.

    Rule: damage is a torn tail (the unsynced end of a write that never finished) when no good frame
    with a seq >= `seq` follows it anywhere in `data`. A good frame after the damage means bytes in the
    middle were lost or altered, and so does a good frame with the wrong seq: both are corruption."""
    end = len(data)
    if pos >= end:
        return None
    if end - pos < HEADER_SIZE:
        return Damage(pos, f"partial frame header ({end - pos} of {HEADER_SIZE} bytes)", True)
    length, crc, frame_seq = _unpack_header(data, pos)
    start = pos + HEADER_SIZE
    if not 0 < length <= MAX_PAYLOAD:
        reason = f"bad frame length {length}"
    elif start + length > end:
        reason = f"partial frame ({end - start} of {length} payload bytes)"
    elif not _crc_ok(data, pos, length, crc):
        reason = "bad CRC"
    else:
        return Damage(pos, f"frame has seq {frame_seq} where seq {seq} was expected", False)
    after = _next_good_frame(data, pos + 1, seq)
    if after is None:
        return Damage(pos, reason, True)
    return Damage(pos, f"{reason}, yet a good frame follows at byte {after}", False)


def _crc_ok(data: bytes, pos: int, length: int, crc: int) -> bool:
    return _crc32(memoryview(data)[pos + 8 : pos + HEADER_SIZE + length]) == crc


def _next_good_frame(data: bytes, pos: int, min_seq: int) -> int | None:
    """Offset of the first CRC-valid frame at or after `pos` with seq >= min_seq (a byte-wise search:
    this runs only on damage, over the rest of one segment)."""
    end = len(data)
    for offset in range(pos, end - HEADER_SIZE + 1):
        length, crc, frame_seq = _unpack_header(data, offset)
        if (
            0 < length <= MAX_PAYLOAD
            and offset + HEADER_SIZE + length <= end
            and frame_seq >= min_seq
            and _crc_ok(data, offset, length, crc)
        ):
            return offset
    return None
