"""Recorded TWS traffic: the ib-captures formats as server->client frames (and the version they need),
and wire captures (`--record-wire`, adapters/ib/wire.py) played back as the TWS that was recorded.

Formats (see ib-captures/README.md):
- nautilus `*.txt`: one frame per file, fields separated by the literal 4-character text `\\x00`;
- rust-ibapi `*.txt`: one frame per line, each field followed by `|`; in files where every line ends in
  `||`, the last empty field is a test-string artifact and is stripped;
- rust-ibapi `*.yaml`: request/response pairs; the responses' `raw` strings (YAML escapes, `\\0` = NUL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from adapters.ib import wire
from adapters.tws_sim.framing import API_PREFIX, FrameBuffer, FramingError, parse_version_range

log = logging.getLogger(__name__)

NAUTILUS_SEPARATOR = "\\x00"
_RESPONSE_RAW = re.compile(r'^\s*- raw: "(.*)"\s*$')
_YAML_ESCAPES = {"0": "\0", '"': '"', "\\": "\\", "n": "\n", "t": "\t", "/": "/"}
_VERSION_IN_NAME = re.compile(r"_v(\d{3})\b")
_VERSION_IN_YAML = re.compile(r"^\s*server_version:\s*(\d+)", re.MULTILINE)
NAUTILUS_VERSION = 176  # their captures follow the v170-176 layouts


def _terminated(fields: list[str]) -> list[str]:
    """Drop the empty string after the final terminator."""
    return fields[:-1] if fields and fields[-1] == "" else fields


def parse_nautilus(text: str) -> list[list[str]]:
    body = text.strip("\r\n")
    return [_terminated(body.split(NAUTILUS_SEPARATOR))] if body else []


def parse_rust_lines(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.strip()]
    artifact = bool(lines) and all(line.endswith("||") for line in lines)
    frames = []
    for line in lines:
        fields = _terminated(line.split("|"))
        frames.append(fields[:-1] if artifact else fields)
    return frames


def parse_yaml_responses(text: str) -> list[list[str]]:
    frames = []
    for line in text.splitlines():
        match = _RESPONSE_RAW.match(line)
        if match:
            raw = re.sub(r"\\(.)", lambda m: _YAML_ESCAPES.get(m.group(1), m.group(1)), match.group(1))
            frames.append(_terminated(raw.split("\0")))
    return frames


def read_capture(path: Path) -> list[list[str]]:
    """The server->client frames of a capture file, as field lists."""
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        return parse_yaml_responses(text)
    if NAUTILUS_SEPARATOR in text:
        return parse_nautilus(text)
    return parse_rust_lines(text)


def capture_version(path: Path) -> int:
    """The server version whose layouts the capture follows (a client must connect at that version)."""
    named = _VERSION_IN_NAME.search(path.name)
    if named:
        return int(named.group(1))
    if path.suffix in (".yaml", ".yml"):
        header = _VERSION_IN_YAML.search(path.read_text())
        if header:
            return int(header.group(1))
    return NAUTILUS_VERSION


def is_frame_capture(path: Path) -> bool:
    """Whether the file holds TWS frames (not JSON snapshots or documentation)."""
    return path.suffix in (".txt", ".yaml", ".yml") and path.name.lower() != "readme.md"


# -- playing a wire capture back (`oms sim --playback`) ---------------------------------------------

# where a request carries the id its replies echo (an orderId or a reqId; the libraries draw both from one
# counter), by request id; and where replies carry it, by reply id (contractDetails moved at v164)
REQUEST_ID_AT: dict[int, tuple[int, ...]] = {
    1: (2,), 2: (2,), 3: (1,), 4: (2,), 7: (2,), 9: (2,), 62: (2,), 63: (2,), 74: (2,), 75: (2,),
    76: (2,), 77: (2,),
}  # fmt: skip
REPLY_ID_AT: dict[int, tuple[int, ...]] = {
    1: (2,), 2: (2,), 3: (1,), 4: (2,), 5: (1,), 11: (1, 2), 21: (1,), 45: (2,), 46: (2,), 47: (2,),
    52: (2,), 55: (2,), 57: (2,), 58: (2,), 63: (2,), 64: (2,), 71: (2,), 72: (2,), 73: (2,), 74: (2,),
    81: (1,),
}  # fmt: skip
CLIENT_CLOSED = "closed by the client"


@dataclass(slots=True)
class Step:
    """One recorded message of a conversation after the handshake."""

    to_tws: bool
    time_ns: int
    msg_id: int | None
    fields: list[str]
    raw: bytes


@dataclass(slots=True)
class Conversation:
    """One recorded connection: the handshake TWS answered, then every message either way, in order."""

    number: int
    server_version: int
    handshake: bytes
    handshake_ns: int
    steps: list[Step] = field(default_factory=list)
    closed_by_tws: bool = False
    close_ns: int | None = None


def conversations(path: Path) -> list[Conversation]:
    """A wire capture's connections in order. A connection that began in a deleted segment starts at
    its restated version and connection time (its start-up requests are gone with that segment)."""
    found: dict[int, Conversation] = {}
    for msg in wire.messages(wire.read_records(path)):
        conv = found.get(msg.connection)
        if msg.direction == "opened" and msg.meta.get("continued") and conv is None:
            version = msg.meta.get("server_version")
            if version is not None:
                hello = wire.encode_message([str(version), str(msg.meta.get("conn_time", ""))])
                found[msg.connection] = Conversation(msg.connection, version, hello, msg.time_ns)
        elif msg.direction == "from_tws" and msg.name == "handshake" and msg.server_version is not None:
            found[msg.connection] = Conversation(msg.connection, msg.server_version, msg.raw, msg.time_ns)
        elif conv is None or msg.name == "handshake":
            continue
        elif msg.direction in ("to_tws", "from_tws"):
            conv.steps.append(Step(msg.direction == "to_tws", msg.time_ns, msg.msg_id, msg.fields, msg.raw))
        elif msg.direction == "closed":
            conv.closed_by_tws = msg.raw.decode(errors="replace") != CLIENT_CLOSED
            conv.close_ns = msg.time_ns
    if not found:
        raise wire.CaptureError(f"{path}: no connection with a handshake to play back")
    return [found[n] for n in sorted(found)]


class WirePlayback:
    """A TWS that answers as a recorded one did: the k-th client to connect gets the k-th recorded
    connection. Handshake at the recorded server version; each recorded request waits for the client's
    request of the same kind (in any order among those pending), and the replies recorded after it follow
    at their recorded offsets from it (`speed` > 1 plays faster), with the ids the client used in place of
    the recorded ones; TWS's own closes happen at their recorded offsets."""

    def __init__(self, capture: Path, speed: float = 1.0, patience: float | None = None) -> None:
        if speed <= 0 or (patience is not None and patience < 0):
            raise ValueError("speed must be positive and patience not negative")
        self.patience = patience  # seconds to wait for a recorded request; None: as long as it takes
        self.conversations = conversations(Path(capture))
        self.speed = speed
        self.host, self.port = "127.0.0.1", 0
        self.served = 0  # connections accepted
        self.completed = 0  # conversations played to their end
        self.sent = 0  # messages sent, handshakes included
        self.unmatched: list[list[str]] = []  # client requests the recording has no counterpart for
        self.skipped: list[list[str]] = []  # recorded requests the client did not send within `patience`
        self.ids: dict[str, str] = {}  # recorded order / request id -> the client's, over all connections
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def server_version(self) -> int:
        return self.conversations[0].server_version

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._on_client, host, port)
        self.host, self.port = self._server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()  # each replay sees its client gone and ends
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=5)
            for task in pending:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self.served >= len(self.conversations):
                log.warning("playback: connection %d has no recording left; closing it", self.served + 1)
                return
            self.served += 1
            replay = _Replay(self, self.conversations[self.served - 1], reader, writer)
            try:
                await replay.run()
                self.completed += 1
                await replay.until_closed()
            except (ConnectionError, asyncio.IncompleteReadError, FramingError) as exc:
                log.info("playback: client gone (%r)", exc)
            finally:
                self.unmatched += replay.leftover()
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()


class _Replay:
    """One recorded connection played to one client."""

    def __init__(
        self,
        owner: WirePlayback,
        conv: Conversation,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.owner, self.conv, self.reader, self.writer = owner, conv, reader, writer
        self.speed, self.ids = owner.speed, owner.ids
        self.inbox: list[tuple[float, list[str]]] = []
        self.arrived = asyncio.Event()
        self.gone = asyncio.Event()  # the client's side of the socket has closed
        self._reading: asyncio.Task[None] | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        if await self.reader.readexactly(len(API_PREFIX)) != API_PREFIX:
            raise FramingError("expected API\\0")
        frames = FrameBuffer()
        pending: list[list[str]] = []
        while not pending:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("closed during the handshake")
            pending = frames.feed(data)
        low, high = parse_version_range(pending.pop(0))
        if not low <= self.conv.server_version <= high:
            raise FramingError(
                f"the recording is at server version {self.conv.server_version}; the client speaks "
                f"{low}..{high}"
            )
        self.writer.write(self.conv.handshake)
        self.owner.sent += 1
        anchor_live, anchor_rec = loop.time(), self.conv.handshake_ns
        now = loop.time()
        self.inbox += [(now, f) for f in pending]
        self._reading = asyncio.ensure_future(self._read(frames))
        steps = self.conv.steps
        for i, step in enumerate(steps):
            try:
                if step.to_tws:
                    anchor_live, anchor_rec = await self._take(step), step.time_ns
                    continue
                await self._at(anchor_live, anchor_rec, step.time_ns)
                self.writer.write(self._answer(step))
                self.owner.sent += 1
                await self.writer.drain()
            except ConnectionError:
                if self.conv.closed_by_tws or any(s.to_tws for s in steps[i:]):
                    raise
                return  # the client hung up, as the recorded one did, a little sooner: played out
        if self.conv.closed_by_tws and self.conv.close_ns is not None:
            await self._at(anchor_live, anchor_rec, self.conv.close_ns)
            self.writer.close()

    async def until_closed(self) -> None:
        if self._reading is not None:
            await asyncio.wait({self._reading})

    def leftover(self) -> list[list[str]]:
        if self._reading is not None:
            self._reading.cancel()
        return [fields for _t, fields in self.inbox]

    async def _at(self, anchor_live: float, anchor_rec: int, time_ns: int) -> None:
        """Wait for a recorded moment, measured from the last request matched (the playback's clock, not
        a synchronization: this is when TWS spoke)."""
        delay = anchor_live + (time_ns - anchor_rec) / 1e9 / self.speed - asyncio.get_running_loop().time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.gone.wait(), delay)
        if self.gone.is_set():
            raise ConnectionError("the client has gone")

    async def _read(self, frames: FrameBuffer) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await self.reader.read(65536):
                now = loop.time()
                self.inbox += [(now, f) for f in frames.feed(data)]
                self.arrived.set()
        except (ConnectionError, FramingError):
            pass
        finally:
            self.arrived.set()
            self.gone.set()

    async def _take(self, step: Step) -> float:
        """When the client's first pending request of the recorded request's kind arrived (its ids
        learnt); ConnectionError once the client has gone without sending one. With `patience`, a
        request the client does not send in time is skipped: what TWS said after it follows anyway (a
        capture replayed to a service without the recorded strategy)."""
        kind = str(step.msg_id)
        loop = asyncio.get_running_loop()
        patience = self.owner.patience
        deadline = None if patience is None else loop.time() + patience
        while True:
            for i, (arrived, fields) in enumerate(self.inbox):
                if fields and fields[0] == kind:
                    del self.inbox[i]
                    self._learn(step, fields)
                    return arrived
            if self.gone.is_set():
                raise ConnectionError("the client has gone")
            self.arrived.clear()
            if deadline is None:
                await self.arrived.wait()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), max(deadline - loop.time(), 0.0))
            if not self.arrived.is_set():
                self.owner.skipped.append(step.fields)
                return loop.time()

    def _learn(self, step: Step, live: list[str]) -> None:
        for at in REQUEST_ID_AT.get(step.msg_id or 0, ()):
            if at < len(step.fields) and at < len(live) and step.fields[at] != live[at]:
                self.ids[step.fields[at]] = live[at]

    def _answer(self, step: Step) -> bytes:
        """The recorded bytes, exactly, unless they carry a recorded id the client knows by another."""
        at: tuple[int, ...] = REPLY_ID_AT.get(step.msg_id or 0, ())
        if step.msg_id == 10:
            at = (2,) if self.conv.server_version < 164 else (1,)
        fields = list(step.fields)
        changed = False
        for i in at:
            if i < len(fields) and fields[i] in self.ids:
                fields[i], changed = self.ids[fields[i]], True
        return wire.encode_message(fields) if changed else step.raw
