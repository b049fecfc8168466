"""Following the service's state live: the ZeroMQ Guide's Clone pattern over the PUB and ROUTER sockets.

Decision: the client subscribes to every logged event (`evt.` topics) plus heartbeats and folds the
events itself with `oms.state.fold.step`, the very function the service folds with. Its state therefore equals
the service's state at the same seq by construction, and the entity updates the service also publishes
(`order.`, `pos.`, ...) are not needed. The steps:

1. subscribe first (so nothing published from now on is missed), then ask the ROUTER for a snapshot:
   the state and the seq it reflects;
2. drop updates at or below that seq, hold an update that is not the next seq, apply the rest in seq
   order (`oms.client.clone.Sequencer`);
3. a gap (an update or a heartbeat beyond the next seq) is repaired by `events` requests from the
   first missing seq, in bounded batches, never by failing;
4. no message at all for `heartbeat_timeout` seconds (heartbeats come at least once a second) marks the
   service dead; the first message after that triggers a fresh snapshot (step 1) and the client carries
   on. When the endpoints came from a data directory, the file is re-read while the service is away,
   so a restarted service on new ports is found again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import msgspec
import zmq
import zmq.asyncio

from events.schema import Envelope
from oms.client.clone import Sequencer
from oms.client.transport import CurveKeys, RequestChannel, read_endpoints
from oms.client.wire import ServiceUnavailable, decode_events, decode_published
from oms.protocol import HEARTBEAT_TOPIC, MAX_EVENTS_BATCH, EventsRequest, Heartbeat, SnapshotRequest
from oms.state.codec import decode_state
from oms.state.fold import step
from oms.state.model import State

log = logging.getLogger(__name__)

Applied = Callable[[Envelope, tuple[object, ...]], None]


class _RawSnapshot(msgspec.Struct, frozen=True):
    seq: int
    state: msgspec.Raw


class Follower:
    """Keeps `state` equal to the service's, calling `on_applied(envelope, changes)` per applied event
    and `on_resync(old, new)` when a snapshot replaces the state."""

    def __init__(
        self,
        context: zmq.asyncio.Context,
        pub_endpoint: str,
        channel: RequestChannel,
        *,
        curve: CurveKeys | None,
        heartbeat_timeout: float,
        rcvhwm: int,
        data_dir: Path | None,
        on_applied: Applied,
        on_resync: Callable[[State | None, State], None],
        on_connection: Callable[[bool], None],
    ) -> None:
        self.state: State | None = None
        self.connected = False
        self.repaired = 0  # events fetched over the ROUTER to fill gaps
        self.resyncs = 0  # snapshots taken
        self.pub_endpoint = pub_endpoint
        self._context = context
        self._channel = channel
        self._curve = curve
        self._heartbeat_timeout = heartbeat_timeout
        self._rcvhwm = rcvhwm
        self._data_dir = data_dir
        self._on_applied = on_applied
        self._on_resync = on_resync
        self._on_connection = on_connection
        self._sequencer = Sequencer(0)
        self._subscribe()

    @property
    def seq(self) -> int:
        return self._sequencer.applied

    def _subscribe(self) -> None:
        """A SUB socket on `pub_endpoint`, and a plain (non-asyncio) view of it for draining in bulk."""
        socket = self._context.socket(zmq.SUB)
        socket.linger = 0
        if self._rcvhwm:
            socket.rcvhwm = self._rcvhwm
        if self._curve is not None:
            self._curve.apply(socket)
        socket.subscribe(b"evt.")
        socket.subscribe(HEARTBEAT_TOPIC.encode())
        socket.connect(self.pub_endpoint)
        self._socket = socket
        self._reader: zmq.Socket[bytes] = zmq.Socket.shadow(socket.underlying)

    async def start(self) -> None:
        """Subscribed already; take the first snapshot (raises `ServiceUnavailable` if none comes)."""
        await self._resync()

    async def run(self) -> None:
        """The follow loop; runs until cancelled. Whatever goes wrong in one turn (a message that does not
        decode, an unreadable snapshot) is logged and answered by a fresh snapshot, never a silent stop."""
        while True:
            try:
                await self._turn()
            except Exception:
                log.exception("following the service failed; taking a new snapshot")
                self._set_connected(False)

    async def _turn(self) -> None:
        if not self.connected:
            await self._wait_for_service()
            return
        if not await self._socket.poll(self._heartbeat_timeout * 1000):
            self._set_connected(False)
            return
        for payload in self._drain():
            self._handle(decode_published(payload))
        if self._sequencer.missing() is not None:
            await self._repair()

    def _drain(self, most: int = 10_000) -> list[bytes]:
        """Everything already queued, read without a trip through the event loop per message."""
        payloads: list[bytes] = []
        with contextlib.suppress(zmq.Again):
            while len(payloads) < most:
                payloads.append(self._reader.recv_multipart(zmq.NOBLOCK)[-1])
        return payloads

    def close(self) -> None:
        self._socket.close(linger=0)

    def _handle(self, item: Envelope | Heartbeat | None) -> None:
        if isinstance(item, Heartbeat):
            self._sequencer.saw_seq(item.seq)
        elif item is not None:
            self._apply(self._sequencer.offer(item))

    def _apply(self, envelopes: list[Envelope]) -> None:
        state = self.state
        assert state is not None  # a snapshot always comes first
        for env in envelopes:
            state, changes = step(state, env)
            self.state = state
            self._on_applied(env, changes)

    async def _repair(self) -> None:
        """Fetch the missing seqs over the ROUTER until nothing is known to be missing."""
        while (gap := self._sequencer.missing()) is not None:
            first, last = gap
            limit = min(last - first + 1, MAX_EVENTS_BATCH)
            try:
                reply = await self._channel.request(EventsRequest(from_seq=first, limit=limit))
            except ServiceUnavailable:
                self._set_connected(False)
                return
            envelopes, last_seq = decode_events(reply)
            self.repaired += len(envelopes)
            before = self._sequencer.applied
            self._apply(self._sequencer.offer_many(envelopes))
            self._sequencer.saw_seq(last_seq)
            if self._sequencer.applied == before:  # the service does not have what we miss: start over
                await self._resync()
                return

    async def _resync(self) -> None:
        """Clone pattern step 1: the SUB socket is already subscribed; a snapshot resets the sequencer."""
        reply = await self._channel.request(SnapshotRequest())
        snapshot = reply.result_as(_RawSnapshot)
        old, self.state = self.state, decode_state(bytes(snapshot.state))
        self._sequencer = Sequencer(snapshot.seq)
        self._sequencer.saw_seq(reply.seq)
        self.resyncs += 1
        self._on_resync(old, self.state)
        self._set_connected(True)

    async def _wait_for_service(self) -> None:
        """Dead service: wait for any published message (or a moved endpoint), then re-snapshot."""
        self._move_if_endpoints_changed()
        if not await self._socket.poll(self._heartbeat_timeout * 1000):
            return
        await self._socket.recv_multipart()  # older than the snapshot about to be taken: dropped
        try:
            await self._resync()
        except ServiceUnavailable:
            return

    def _move_if_endpoints_changed(self) -> None:
        if self._data_dir is None:
            return
        try:
            endpoints = read_endpoints(self._data_dir)
        except ServiceUnavailable:
            return
        if endpoints.pub != self.pub_endpoint:
            self._socket.close(linger=0)
            self.pub_endpoint = endpoints.pub
            self._subscribe()
        if endpoints.router != self._channel.endpoint:
            self._channel.reconnect(endpoints.router)

    def _set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            self._on_connection(connected)
