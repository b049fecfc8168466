"""Wire captures: every byte exchanged with TWS / IB Gateway, both directions, each message timed.

So a user can send us what their TWS really said, and we can replay it (adapters/tws_sim/playback.py).
The tap wraps the client library's socket protocol object (`client.conn`, the same class in ib_async and
ib_insync): `sendMsg` (every request leaves through it, one whole message per call), `data_received`
(every byte from TWS, before the library sees it), `connection_lost` and `disconnect`. Received bytes are
cut into whole messages here, so each record is one message and a segment can be read alone; nothing is
parsed beyond the length prefix.

A capture is a directory `DATA_DIR/wire/<UTC start>/` of segments `00000001.wire`, ... (mode 0600, the
directory 0700). A segment is `MAGIC` then records: kind (1 byte), time ns, connection number, length
(big-endian Q, I, I), then the bytes. Kinds: `>` a message to TWS (the first of a connection starts with
`API\\0`), `<` a message from TWS (the first is the handshake reply: server version, connection time),
`o` a connection opened (JSON: host, port, client id, library, and, for a connection continued from an
earlier segment, its server version), `x` closed (reason text), `~` bytes of an unfinished message left
when the socket closed. A segment rolls at `segment_bytes`; past `max_bytes` the oldest segments go.
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from adapters.ib.wire_names import name_of

MAGIC = b"OMSWIRE1"
API_PREFIX = b"API\0"
_RECORD = struct.Struct(">cQII")
_LEN = struct.Struct(">I")
TO_TWS, FROM_TWS, OPENED, CLOSED, PARTIAL = b">", b"<", b"o", b"x", b"~"
KINDS = (TO_TWS, FROM_TWS, OPENED, CLOSED, PARTIAL)
SEGMENT_SUFFIX = ".wire"
SEGMENT_BYTES = 16 << 20
MAX_BYTES = 256 << 20
MAX_MESSAGE = 16 << 20  # TWS's own frame limit; a larger length means the stream is not TWS framing


class CaptureError(ValueError):
    """The path is not a wire capture, or a segment is damaged."""


@dataclass(frozen=True, slots=True)
class Record:
    kind: bytes
    time_ns: int
    connection: int
    data: bytes


# -- recording --------------------------------------------------------------------------------------


class _Stream:
    """One connection's state in the recorder: its number and the unfinished bytes from TWS."""

    def __init__(self, number: int, meta: dict[str, Any]) -> None:
        self.number = number
        self.meta = meta
        self.pending = b""
        self.server_version: int | None = None
        self.conn_time = ""


class WireRecorder:
    """Writes one capture directory. Records go to the OS at once (os.write, no user-space buffer), so a
    crash loses nothing written; `close()` fsyncs. Never on unless asked for (`--record-wire`)."""

    def __init__(
        self,
        directory: Path,
        segment_bytes: int = SEGMENT_BYTES,
        max_bytes: int = MAX_BYTES,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if segment_bytes <= len(MAGIC) or max_bytes < segment_bytes:
            raise ValueError("segment_bytes must exceed the header and max_bytes must be >= segment_bytes")
        self.directory = Path(directory)
        self.segment_bytes, self.max_bytes, self.clock = segment_bytes, max_bytes, clock
        self._fd: int | None = None
        self._size = 0
        self._index = 0
        self._connections = 0
        self._open: dict[int, _Stream] = {}

    @classmethod
    def in_data_dir(cls, data_dir: str | Path, **kw: Any) -> WireRecorder:
        """A new capture under DATA_DIR/wire/, named by its UTC start time."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        return cls(Path(data_dir) / "wire" / stamp, **kw)

    def tap(self, conn: Any, meta: dict[str, Any]) -> None:
        """Record everything that passes through the library's connection object `conn`. `meta` (host,
        port, client id, library) is written with each connection it opens."""
        send, receive, lost, hang_up = conn.sendMsg, conn.data_received, conn.connection_lost, conn.disconnect
        stream: list[_Stream | None] = [None]

        def send_msg(msg: bytes) -> None:
            current = stream[0]
            if msg.startswith(API_PREFIX) or current is None:
                current = stream[0] = self._opened(meta)
            self.write(TO_TWS, current.number, bytes(msg))
            send(msg)

        def data_received(data: bytes) -> None:
            if stream[0] is not None:
                self._received(stream[0], bytes(data))
            receive(data)

        def connection_lost(exc: BaseException | None) -> None:
            if stream[0] is not None:
                self._closed(stream[0], str(exc) if exc else "")
                stream[0] = None
            lost(exc)

        def disconnect() -> None:
            if stream[0] is not None and conn.transport is not None:
                self._closed(stream[0], "closed by the client")
                stream[0] = None
            hang_up()

        conn.sendMsg, conn.data_received = send_msg, data_received
        conn.connection_lost, conn.disconnect = connection_lost, disconnect

    def close(self) -> None:
        """fsync and close the segment; a later record opens a new one."""
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def _opened(self, meta: dict[str, Any]) -> _Stream:
        self._connections += 1
        stream = _Stream(self._connections, dict(meta))
        self.write(OPENED, stream.number, json.dumps(stream.meta, sort_keys=True).encode())
        self._open[stream.number] = stream  # after its record: a roll it causes must not continue it
        return stream

    def _closed(self, stream: _Stream, reason: str) -> None:
        if stream.pending:
            self.write(PARTIAL, stream.number, stream.pending)
        self.write(CLOSED, stream.number, reason.encode())
        self._open.pop(stream.number, None)

    def _received(self, stream: _Stream, data: bytes) -> None:
        buffer = stream.pending + data
        start = 0
        while len(buffer) - start >= 4:
            (size,) = _LEN.unpack_from(buffer, start)
            end = start + 4 + size
            if size > MAX_MESSAGE:  # not TWS framing: keep every byte anyway, as one raw record
                end = len(buffer)
            elif end > len(buffer):
                break
            message = buffer[start:end]
            if stream.server_version is None:
                stream.server_version, stream.conn_time = _handshake(message)
            self.write(FROM_TWS, stream.number, message)
            start = end
        stream.pending = buffer[start:]

    def write(self, kind: bytes, connection: int, data: bytes, time_ns: int | None = None) -> None:
        """Append one record (timed now unless `time_ns` is given: a copy keeps the original times)."""
        stamp = self.clock() if time_ns is None else time_ns
        record = _RECORD.pack(kind, stamp, connection, len(data)) + data
        if self._fd is None or (self._size + len(record) > self.segment_bytes and self._size > len(MAGIC)):
            self._roll()
        assert self._fd is not None
        os.write(self._fd, record)
        self._size += len(record)

    def _roll(self) -> None:
        """Start the next segment; it opens with every live connection (so it reads alone), and the
        oldest segments go once the capture passes `max_bytes`."""
        self.close()
        _private_dir(self.directory)
        self._index += 1
        path = self.directory / f"{self._index:08d}{SEGMENT_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        os.write(self._fd, MAGIC)
        self._size = len(MAGIC)
        for stream in self._open.values():
            continued = {**stream.meta, "continued": True, "server_version": stream.server_version}
            continued["conn_time"] = stream.conn_time
            record = json.dumps(continued, sort_keys=True).encode()
            packed = _RECORD.pack(OPENED, self.clock(), stream.number, len(record)) + record
            os.write(self._fd, packed)
            self._size += len(packed)
        self._trim()

    def _trim(self) -> None:
        segments = segment_files(self.directory)
        total = sum(p.stat().st_size for p in segments)
        for old in segments[:-1]:
            if total <= self.max_bytes:
                break
            total -= old.stat().st_size
            old.unlink()


def _private_dir(directory: Path) -> None:
    """Create `directory` and each missing parent owner-only (mkdir's `parents` would make them 0755)."""
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


def _handshake(message: bytes) -> tuple[int | None, str]:
    fields = _fields(message[4:])
    try:
        return int(fields[0]), fields[1] if len(fields) > 1 else ""
    except (ValueError, IndexError):
        return None, ""


# -- reading ----------------------------------------------------------------------------------------


def segment_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix == SEGMENT_SUFFIX and p.name[0] != ".")


def capture_segments(path: Path) -> list[Path]:
    """The segments of CAPTURE: a segment file, a capture directory, or DATA_DIR/wire (its newest capture)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CaptureError(f"no wire capture at {path}")
    segments = segment_files(path)
    if segments:
        return segments
    captures = sorted(p for p in path.iterdir() if p.is_dir() and segment_files(p))
    if captures:
        return segment_files(captures[-1])
    raise CaptureError(f"{path} holds no wire capture (no *{SEGMENT_SUFFIX} segments)")


def read_records(path: Path) -> Iterator[Record]:
    for segment in capture_segments(path):
        yield from _segment_records(segment)


def _segment_records(segment: Path) -> Iterator[Record]:
    data = segment.read_bytes()
    if not data.startswith(MAGIC):
        raise CaptureError(f"{segment} is not a wire capture segment")
    at = len(MAGIC)
    while at < len(data):
        if len(data) - at < _RECORD.size:
            return  # a torn tail (the process died mid-write): everything before it stands
        kind, time_ns, connection, size = _RECORD.unpack_from(data, at)
        at += _RECORD.size
        if kind not in KINDS:
            raise CaptureError(f"{segment}: unknown record kind {kind!r} at byte {at - _RECORD.size}")
        if len(data) - at < size:
            return
        yield Record(kind, time_ns, connection, data[at : at + size])
        at += size


Direction = Literal["to_tws", "from_tws", "opened", "closed", "partial"]
_DIRECTIONS: dict[bytes, Direction] = {
    TO_TWS: "to_tws",
    FROM_TWS: "from_tws",
    OPENED: "opened",
    CLOSED: "closed",
    PARTIAL: "partial",
}


@dataclass(slots=True)
class Message:
    """One record read as IB's API: the message id and name (by direction), its fields as text."""

    time_ns: int
    connection: int
    direction: Direction
    server_version: int | None
    msg_id: int | None = None
    name: str = ""
    fields: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    raw: bytes = b""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "time": _iso(self.time_ns),
            "time_ns": self.time_ns,
            "connection": self.connection,
            "direction": self.direction,
            "server_version": self.server_version,
        }
        if self.direction in ("to_tws", "from_tws"):
            out |= {"id": self.msg_id, "name": self.name, "fields": self.fields}
        elif self.direction == "opened":
            out["meta"] = self.meta
        else:
            out["detail"] = self.raw.decode("utf-8", errors="backslashreplace")
        return out

    def line(self) -> str:
        head = f"{_iso(self.time_ns)} #{self.connection}"
        if self.direction == "opened":
            m = self.meta
            what = "continued" if m.get("continued") else "connect"
            where = f"{m.get('host')}:{m.get('port')}"
            return f"{head} {what} {where} client {m.get('client_id')} {m.get('library')}"
        if self.direction == "closed":
            return f"{head} closed {self.raw.decode(errors='backslashreplace')}".rstrip()
        if self.direction == "partial":
            return f"{head} unfinished message at close: {len(self.raw)} bytes"
        arrow = ">" if self.direction == "to_tws" else "<"
        name = self.name if self.msg_id is None else f"{self.name}({self.msg_id})"
        return f"{head} {arrow} {name} " + "|".join(self.fields)


def messages(records: Iterable[Record]) -> Iterator[Message]:
    """Records read as IB's messages; the first of each direction is the handshake (to TWS: `API` and
    the client's version range; from TWS: server version and connection time)."""
    versions: dict[int, int | None] = {}
    started: set[tuple[int, bytes]] = set()
    for r in records:
        msg = Message(r.time_ns, r.connection, _DIRECTIONS[r.kind], versions.get(r.connection), raw=r.data)
        if r.kind == OPENED:
            msg.meta = json.loads(r.data)
            versions[r.connection] = msg.meta.get("server_version")
            if msg.meta.get("continued"):
                started.update({(r.connection, TO_TWS), (r.connection, FROM_TWS)})
            else:
                started.difference_update({(r.connection, TO_TWS), (r.connection, FROM_TWS)})
            msg.server_version = versions[r.connection]
        elif r.kind in (TO_TWS, FROM_TWS):
            first = (r.connection, r.kind) not in started
            started.add((r.connection, r.kind))
            data = r.data
            if r.kind == TO_TWS and data.startswith(API_PREFIX):
                msg.fields = ["API", *_fields(data[len(API_PREFIX) + 4 :])]
                msg.name = "handshake"
            elif r.kind == FROM_TWS and first:
                msg.fields = _fields(data[4:])
                msg.name = "handshake"
                version, _ = _handshake(data)
                versions[r.connection] = msg.server_version = version
            else:
                msg.fields = _fields(data[4:])
                msg.msg_id = _int(msg.fields[0]) if msg.fields else None
                msg.name = name_of(msg.msg_id, r.kind == TO_TWS)
        yield msg


def read_messages(path: Path) -> list[Message]:
    return list(messages(read_records(path)))


def _fields(payload: bytes) -> list[str]:
    parts = payload.decode("utf-8", errors="backslashreplace").split("\0")
    if parts and parts[-1] == "":
        parts.pop()
    return parts


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _iso(time_ns: int) -> str:
    seconds, ns = divmod(time_ns, 10**9)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ns // 1000:06d}Z"


def encode_message(fields: Iterable[str]) -> bytes:
    payload = "".join(f + "\0" for f in fields).encode()
    return _LEN.pack(len(payload)) + payload


# -- redaction --------------------------------------------------------------------------------------

# IB account ids: U / F / I (individual, advisor, broker master) and their paper twins DU / DF / DI
ACCOUNT = re.compile(r"(?<![A-Za-z0-9])(D?[UFI])(\d{4,10})(?![A-Za-z0-9])")


class AccountMask:
    """Replaces each account number by a stand-in, the same one everywhere: the prefix (paper or live,
    individual or advisor) and the length kept, the digits a counter (DU1234567 -> DU0000001)."""

    def __init__(self) -> None:
        self.mapping: dict[str, str] = {}

    def text(self, text: str) -> str:
        return ACCOUNT.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        account = match.group(0)
        if account not in self.mapping:
            prefix, digits = match.group(1), match.group(2)
            self.mapping[account] = f"{prefix}{len(self.mapping) + 1:0{len(digits)}d}"
        return self.mapping[account]


def redact(source: Path, target: Path) -> AccountMask:
    """Write a copy of capture `source` to the new directory `target` with every account number masked
    (messages re-framed, so the copy stays a valid byte stream to play back)."""
    target = Path(target)
    if target.exists():
        raise CaptureError(f"{target} exists; redact writes a new capture directory")
    mask = AccountMask()
    recorder = WireRecorder(target)
    try:
        for r in read_records(source):
            recorder.write(r.kind, r.connection, _redacted(r, mask), r.time_ns)
    finally:
        recorder.close()
    return mask


def _redacted(r: Record, mask: AccountMask) -> bytes:
    if r.kind in (OPENED, CLOSED, PARTIAL):
        return mask.text(r.data.decode("utf-8", errors="surrogateescape")).encode(
            "utf-8", errors="surrogateescape"
        )
    if r.data.startswith(API_PREFIX):
        return r.data
    payload = r.data[4:].decode("utf-8", errors="surrogateescape")
    masked = mask.text(payload).encode("utf-8", errors="surrogateescape")
    return _LEN.pack(len(masked)) + masked
