"""A mirrored session read from JetStream, as `replay.source` reads a data directory: `oms replay
nats://HOST:PORT/STREAM` and `oms archive nats://...` work on it unchanged.

The replay tools are synchronous; nats-py is asyncio. The source runs its own event loop in a daemon
thread and hands envelopes over in batches (one round trip per batch, not per event). Every envelope is
checked against the stream sequence it came at: a stream whose messages are not the seq chain is refused.
On a cluster, a read goes on through a leader change or a lost node: a failed fetch makes a new
consumer from the first seq not yet handed over, for up to TIMEOUT seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from events import codec
from events.journal_errors import JournalError
from events.schema import Envelope
from oms.client.jetstream import fetch_snapshot
from oms.client.jetstream_wire import NatsSettings, connect, events_subject, redact_url, settings_from

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient

T = TypeVar("T")

log = logging.getLogger(__name__)


class SourceUnavailable(JournalError):
    """No NATS server answers, or it has no such stream."""

    code = "source_unavailable"


class StreamMismatch(JournalError):
    """A message whose envelope seq is not its stream sequence: not a mirror of one journal."""

    code = "stream_mismatch"


class NatsSource:
    """`read`, `last_seq`, `snapshot` (the `replay.source.Source` protocol) over a mirrored stream."""

    BATCH = 4096
    TIMEOUT = 30.0

    def __init__(self, url: str, settings: NatsSettings | None = None) -> None:
        self.settings = settings or settings_from(url, env=os.environ)
        self.path = f"{redact_url(self.settings.url)}/{self.settings.stream}"  # how reports name it
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats-source", daemon=True)
        self._thread.start()
        try:
            self._nc: NatsClient = self._call(connect(self.settings, "oms-replay"))
        except Exception as exc:
            self._stop_loop()
            raise SourceUnavailable(f"{self.path}: no NATS server answers ({type(exc).__name__})") from None
        except BaseException:
            self._stop_loop()
            raise
        self._js = self._nc.jetstream()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.TIMEOUT)

    def _retrying(self, what: str, attempt: Callable[[], T]) -> T:
        """`attempt()`, again while the cluster elects a leader or the client finds another node."""
        import nats.errors
        from nats.js.errors import NotFoundError

        deadline = time.monotonic() + self.TIMEOUT
        while True:
            try:
                return attempt()
            except NotFoundError:
                raise
            except (TimeoutError, nats.errors.Error) as exc:
                if time.monotonic() > deadline:
                    raise SourceUnavailable(
                        f"{self.path}: {what} failed for {self.TIMEOUT}s: {exc!r}"
                    ) from None
                log.info("%s: %s failed (%s); again", self.path, what, type(exc).__name__)
                time.sleep(0.1)  # pacing the retries of a fault that lasts, not synchronization

    def last_seq(self) -> int:
        from nats.js.errors import NotFoundError

        try:
            info = self._retrying(
                "stream info", lambda: self._call(self._js.stream_info(self.settings.stream))
            )
        except NotFoundError:
            raise SourceUnavailable(f"{self.path}: no stream {self.settings.stream} on that server") from None
        return int(info.state.last_seq)

    def snapshot(self, max_seq: int | None = None) -> tuple[int, bytes] | None:
        record = self._call(fetch_snapshot(self._js, self.settings.stream))
        if record is None or (max_seq is not None and record.seq > max_seq):
            return None
        return record.seq, record.state

    def tail_damage(self) -> str | None:
        """A stream has no torn tail: the mirror published only whole frames."""
        return None

    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[Envelope]:
        last = self.last_seq() if to_seq is None else min(to_seq, self.last_seq())
        if from_seq > last:
            return
        expected = max(from_seq, 1)
        subscription: Any = None

        def fetch() -> list[Any]:
            nonlocal subscription
            try:
                if subscription is None:
                    subscription = self._call(self._subscribe(expected))
                return list(self._call(subscription.fetch(min(self.BATCH, last - expected + 1), timeout=5)))
            except BaseException:
                self._drop(subscription)  # a consumer on a lost node, or a half-made one: a new one
                subscription = None
                raise

        try:
            while expected <= last:
                for message in self._retrying(f"reading from seq {expected}", fetch):
                    env = codec.decode(message.data)
                    if env.seq != expected or message.metadata.sequence.stream != expected:
                        raise StreamMismatch(
                            f"{self.path}: stream sequence {message.metadata.sequence.stream} holds seq "
                            f"{env.seq}, expected {expected}"
                        )
                    yield env
                    expected += 1
        finally:
            self._drop(subscription)

    def _drop(self, subscription: Any) -> None:
        if subscription is not None:
            with contextlib.suppress(Exception):
                self._call(asyncio.wait_for(subscription.unsubscribe(), 2))

    async def _subscribe(self, from_seq: int) -> Any:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=from_seq,
            ack_policy=AckPolicy.NONE,
            mem_storage=True,
            inactive_threshold=30.0,
        )
        subject = events_subject(self.settings.stream)
        return await self._js.pull_subscribe(subject, stream=self.settings.stream, config=config)

    def close(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._call(asyncio.wait_for(self._nc.close(), 5))
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
