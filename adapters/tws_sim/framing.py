"""Bytes <-> fields: the 4-byte length prefix, NUL-terminated fields, and the `API\\0` handshake."""

from __future__ import annotations

import struct
from collections.abc import Iterable

API_PREFIX = b"API\0"
MAX_FRAME = 16 * 1024 * 1024
_LEN = struct.Struct(">I")

Field = str | int | float | bool | None


class FramingError(ValueError):
    """The peer sent bytes that are not the TWS API framing; the session drops the connection."""


def field_text(value: Field) -> str:
    """One field as TWS writes it: bools as 0/1, None as empty, floats without a trailing `.0` for ints."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def encode_frame(fields: Iterable[Field]) -> bytes:
    """A length-prefixed frame in which every field, including the last, ends with NUL."""
    payload = "".join(field_text(f) + "\0" for f in fields).encode()
    return _LEN.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> list[str]:
    """Split a frame's payload into fields; the NUL after the last field yields no extra field."""
    text = payload.decode("utf-8", errors="backslashreplace")
    parts = text.split("\0")
    if parts and parts[-1] == "":
        parts.pop()
    return parts


class FrameBuffer:
    """Accumulates received bytes and yields complete frames' fields."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[list[str]]:
        self._buf += data
        frames: list[list[str]] = []
        while len(self._buf) >= 4:
            (size,) = _LEN.unpack_from(self._buf)
            if size > MAX_FRAME:
                raise FramingError(f"frame of {size} bytes exceeds {MAX_FRAME}")
            if len(self._buf) < 4 + size:
                break
            frames.append(decode_payload(bytes(self._buf[4 : 4 + size])))
            del self._buf[: 4 + size]
        return frames


def parse_version_range(fields: list[str]) -> tuple[int, int]:
    """The client's `v157..176` (optionally followed by ` +PACEAPI`) as (min, max)."""
    if len(fields) != 1 or not fields[0].startswith("v"):
        raise FramingError(f"bad version announcement {fields!r}")
    spec = fields[0][1:].split(" ")[0]
    low, sep, high = spec.partition("..")
    try:
        lo = int(low)
        hi = int(high) if sep else lo
    except ValueError as exc:
        raise FramingError(f"bad version range {spec!r}") from exc
    if lo > hi:
        raise FramingError(f"empty version range {spec!r}")
    return lo, hi
