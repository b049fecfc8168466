"""Re-publish a recorded session over ZeroMQ exactly as the service did: same topics, same payloads,
the original seqs, each event followed by the entities it changed (the fold runs alongside).

It reuses the service's `oms.service.publisher.Publisher`, so the bytes are the service's by construction.
Pace: the original gaps between events divided by `speed`, or none at all when `speed` is 0. The send
queue is unbounded (HWM 0): a replay never drops a message, it only waits on memory. Heartbeats carry
the last published seq at least twice a second, also while waiting for the next event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from oms.protocol import HEARTBEAT_INTERVAL_S
from oms.service.curve import is_loopback
from oms.service.publisher import Publisher
from oms.state.codec import decode_state
from oms.state.fold import fold, step
from oms.state.model import initial_state
from replay.serve import ReplayRouter
from replay.source import Source

ANSWER_EVERY = 512


class NotLoopback(ValueError):
    code = "not_loopback"


class PublishReport(msgspec.Struct, frozen=True):
    published: int  # events (each with its changed entities)
    first_seq: int
    last_seq: int
    seconds: float


def require_loopback(endpoint: str) -> str:
    """A replay binds to loopback only: it has no CURVE keys to offer."""
    if not is_loopback(endpoint):
        raise NotLoopback(
            f"refusing to serve a replay on {endpoint}: only loopback (127.0.0.1, ipc://) is allowed"
        )
    return endpoint


def open_publisher(endpoint: str) -> Publisher:
    import zmq

    return Publisher(zmq.Context.instance(), require_loopback(endpoint), 0, None)


def replay_to(
    publisher: Publisher,
    source: Source,
    *,
    speed: float = 1.0,
    from_seq: int = 1,
    stop: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Any] = time.sleep,
    router: ReplayRouter | None = None,
) -> PublishReport:
    """Publish `from_seq`..end; events before `from_seq` are folded (from a snapshot) but not sent.
    With a `router`, requests are answered while waiting for the next event (at full speed: every
    `ANSWER_EVERY` events) from the state published so far."""
    if speed < 0:
        raise ValueError("speed must be >= 0 (0: as fast as possible)")
    start = source.snapshot(from_seq - 1)
    state = decode_state(start[1]) if start else initial_state()
    state = fold(source.read(state.seq + 1, from_seq - 1), state)
    if router is not None:
        router.update(state)
        sleep = router.wait
    began = last_beat = clock()
    first_ts: int | None = None
    first = last = count = 0
    for env in source.read(from_seq):
        if stop():
            break
        if speed and first_ts is not None:
            due = began + (env.ts - first_ts) / 1e9 / speed
            while (wait := due - clock()) > 0:
                sleep(min(wait, HEARTBEAT_INTERVAL_S))
                if clock() - last_beat >= HEARTBEAT_INTERVAL_S:
                    publisher.heartbeat(last)
                    last_beat = clock()
        if first_ts is None:
            first_ts = env.ts
        state, changes = step(state, env)
        publisher.publish(env, changes)
        first, last, count = first or env.seq, env.seq, count + 1
        if router is not None and (speed or count % ANSWER_EVERY == 0):
            router.update(state)
            router.answer()
        if clock() - last_beat >= HEARTBEAT_INTERVAL_S:
            publisher.heartbeat(last)
            last_beat = clock()
    publisher.heartbeat(last)
    if router is not None:
        router.update(state)
    return PublishReport(count, first, last, clock() - began)
