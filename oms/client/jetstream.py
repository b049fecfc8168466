"""Following a service's state from NATS JetStream, from any machine, without touching the service.

The same Clone pattern and the same fold as `oms.client.follower` (design section 10: "consumers anywhere
follow state from JetStream exactly as they follow the service"): take the latest snapshot from the
object store (or start from the empty state when there is none), then apply every envelope after its
seq from the stream with `oms.state.fold.step`, in seq order through `oms.client.clone.Sequencer`.
JetStream delivers in order through an ordered consumer, which recreates itself on a gap or a restarted
server; the sequencer still drops a repeat and restarts the consumer at the first missing seq.

    client = await JetStreamClient.connect("nats://127.0.0.1:4222")
    print(client.positions())
    await client.wait_for_seq(1000)
    await client.close()

Read-only: commands go to the service itself (`AsyncClient`). Needs the `nats` extra (nats-py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from events import codec
from events.schema import Envelope
from oms.client.clone import Sequencer
from oms.client.jetstream_wire import (
    SNAPSHOT_OBJECT,
    NatsSettings,
    SnapshotRecord,
    connect,
    events_subject,
    settings_from,
    snapshot_bucket,
)
from oms.client.notify import Notifier
from oms.client.views import StateViews
from oms.client.wire import ServiceUnavailable
from oms.state.codec import decode_state
from oms.state.fold import fold, step
from oms.state.model import State

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

log = logging.getLogger(__name__)

# A JetStream API request (stream info, a new consumer) not answered in this time is asked again: one
# sent as the client's node died is lost, and nats-py's default (5 s) would stall following that long.
API_TIMEOUT = 2.0


async def fetch_snapshot(
    js: JetStreamContext, stream: str, timeout: float = 5.0, attempts: int = 3
) -> SnapshotRecord | None:
    """The mirrored snapshot, or None when there is none. The mirror may replace the object while it is
    read (its old chunks go, and the read would wait for them for ever): each read is bounded and
    retried, and after `attempts` the caller folds from the first event instead (slower, never wrong)."""
    import nats.errors
    from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError

    for _ in range(attempts):
        try:
            store = await js.object_store(snapshot_bucket(stream))
            result = await asyncio.wait_for(store.get(SNAPSHOT_OBJECT), timeout)
        except (BucketNotFoundError, NotFoundError, ObjectNotFoundError):
            return None
        except (TimeoutError, nats.errors.Error) as exc:
            log.info("reading the mirrored snapshot failed (%s); again", type(exc).__name__)
            continue
        return msgspec.msgpack.decode(result.data or b"", type=SnapshotRecord)
    log.warning("no readable mirrored snapshot after %d attempts: folding from the first event", attempts)
    return None


class JetStreamFollower:
    """Keeps `state` equal to the service's as of `seq`, calling `on_applied(envelope, changes)` per
    applied event and `on_resync(old, new)` when a snapshot replaces the state."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        *,
        on_applied: Callable[[Envelope, tuple[object, ...]], None],
        on_resync: Callable[[State | None, State], None],
        use_snapshot: bool = True,
    ) -> None:
        self.state: State | None = None
        self.snapshot_seq = 0  # the seq of the snapshot the state started from (0: folded from seq 1)
        self.last_at_start = 0  # the stream's last sequence when following started
        self.resyncs = 0
        self._js = js
        self._stream = stream
        self._on_applied = on_applied
        self._on_resync = on_resync
        self._use_snapshot = use_snapshot
        self._sequencer = Sequencer(0)
        self._sub: Any = None
        self._restart = asyncio.Event()

    @property
    def seq(self) -> int:
        return self._sequencer.applied

    async def start(self, timeout: float = 30.0) -> None:
        """Snapshot (if any), then an ordered consumer from the seq after it. `ServiceUnavailable` when
        there is no such stream (no mirror has run yet), or when the stream does not answer within
        `timeout` (a cluster electing a leader answers within seconds: asked again until then)."""
        import nats.errors
        from nats.js.errors import NotFoundError

        deadline = time.monotonic() + timeout
        while True:
            try:
                self.last_at_start = (await self._js.stream_info(self._stream)).state.last_seq
                break
            except NotFoundError:
                raise ServiceUnavailable(f"no stream {self._stream}: is the mirror running?") from None
            except (TimeoutError, nats.errors.Error) as exc:
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(f"stream {self._stream} does not answer: {exc!r}") from None
                log.info("stream %s does not answer yet (%s); again", self._stream, type(exc).__name__)
                await asyncio.sleep(0.1)
        record = await fetch_snapshot(self._js, self._stream) if self._use_snapshot else None
        old, self.state = self.state, decode_state(record.state) if record else fold([])
        self.snapshot_seq = record.seq if record else 0
        self._sequencer = Sequencer(self.snapshot_seq)
        self.resyncs += 1
        self._on_resync(old, self.state)
        await self._subscribe()

    async def _subscribe(self) -> None:
        from nats.js.api import ConsumerConfig, DeliverPolicy

        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self._sequencer.applied + 1
        )
        self._sub = await self._js.subscribe(
            events_subject(self._stream),
            stream=self._stream,
            ordered_consumer=True,
            config=config,
            cb=self._on_message,
        )

    def restart(self) -> None:
        """Resubscribe from the first seq not applied (a reconnect: a restarted server forgot the
        consumer, and waiting for its heartbeats to lapse would take seconds)."""
        self._restart.set()

    async def run(self) -> None:
        """Until cancelled: deliveries are applied by `_on_message`; this restarts the consumer when a
        message does not fit the seq chain (never a silent skip) or after a reconnect. A cancellation the
        NATS client swallowed inside an await still ends it (`cancelling()` stays up)."""
        task = asyncio.current_task()
        failures = 0  # in a row: a cluster electing a leader or without a majority refuses for a while
        while task is None or not task.cancelling():
            await self._restart.wait()
            self._restart.clear()
            try:
                await self._subscribe()
            except Exception as exc:
                failures += 1
                level = logging.WARNING if failures in (1, 40) else logging.DEBUG  # once, and at ~10 s
                log.log(
                    level,
                    "JetStream subscription failed (%s, %d in a row); again",
                    type(exc).__name__,
                    failures,
                )
                await asyncio.sleep(0.25)
                self._restart.set()
            else:
                failures = 0

    async def _on_message(self, message: Msg) -> None:
        env = codec.decode(message.data)
        self._sequencer.saw_seq(message.metadata.sequence.stream)
        state = self.state
        assert state is not None
        for ready in self._sequencer.offer(env):
            state, changes = step(state, ready)
            self.state = state
            self._on_applied(ready, changes)
        if self._sequencer.missing() is not None:
            self._restart.set()

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()


class JetStreamClient(StateViews):
    """A read-only client of a mirrored service: `state`, `seq`, `orders()`, `positions()`, callbacks
    and waits, as `AsyncClient` has them. `connected` is the NATS connection's."""

    def __init__(self, settings: NatsSettings) -> None:
        self.settings = settings
        self._nc: NatsClient | None = None
        self._notifier = Notifier()
        self._follower: JetStreamFollower | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        url: str | None = None,
        *,
        stream: str | None = None,
        settings: NatsSettings | None = None,
        use_snapshot: bool = True,
        timeout: float = 30.0,
    ) -> JetStreamClient:
        """Connect to `url` (or `settings`; credentials and TLS from OMS_NATS_* variables), take the
        snapshot, and return once the state includes everything the stream held at the start (within
        `timeout`); then follow in the background."""
        client = cls(settings or settings_from(url, env=os.environ, stream=stream))
        await client.follow(use_snapshot=use_snapshot, timeout=timeout)
        return client

    async def follow(self, *, use_snapshot: bool = True, timeout: float = 30.0) -> None:
        """What `connect` does, for a client made with `JetStreamClient(settings)` whose callbacks must
        hear every event from the first (the web blotter folds its charts from them); closed on failure."""
        self._nc = await connect(
            self.settings,
            "oms-jetstream-client",
            disconnected_cb=self._disconnected,
            reconnected_cb=self._reconnected,
        )
        try:
            await self._follow(use_snapshot, timeout)
        except BaseException:
            await self.close()
            raise

    async def _disconnected(self) -> None:
        self._notifier.connection(False)

    async def _reconnected(self) -> None:
        if self._follower is not None:
            self._follower.restart()
        self._notifier.connection(True)

    async def _follow(self, use_snapshot: bool, timeout: float) -> None:
        assert self._nc is not None
        self._follower = JetStreamFollower(
            self._nc.jetstream(timeout=API_TIMEOUT),
            self.settings.stream,
            on_applied=self._notifier.applied,
            on_resync=self._notifier.resynced,
            use_snapshot=use_snapshot,
        )
        await self._follower.start(timeout)
        self._task = asyncio.get_running_loop().create_task(self._follower.run())
        await self.wait_for_seq(self._follower.last_at_start, timeout)

    @property
    def state(self) -> State:
        """The followed state (owned by the client: read it, never change it)."""
        assert self._follower is not None and self._follower.state is not None
        return self._follower.state

    @property
    def seq(self) -> int:
        """The seq of the last event applied to `state`."""
        return self._follower.seq if self._follower else 0

    @property
    def snapshot_seq(self) -> int:
        """The seq of the mirrored snapshot the state started from (0: folded from the first event)."""
        return self._follower.snapshot_seq if self._follower else 0

    @property
    def connected(self) -> bool:
        return self._nc is not None and bool(self._nc.is_connected)

    async def wait_for_seq(self, seq: int, timeout: float = 30.0) -> None:
        """Until the state includes event `seq`; `TimeoutError` after `timeout` seconds."""
        await self._notifier.wait(lambda: self.seq >= seq, timeout)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._follower is not None:
            await self._follower.close()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), 5)

    async def __aenter__(self) -> JetStreamClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
