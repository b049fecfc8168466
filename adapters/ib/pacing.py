"""Outbound pacing: a token bucket that keeps requests to IB under its 50 messages per second.

IB disconnects a client that sends more than 50 messages a second. The libraries throttle too (45 in
any 1 s window), but they queue silently; pacing here makes the wait visible and bounded, and with the
defaults (40/s, burst 4: at most 44 in any second) the library's own throttle never engages, so the
moment a request is released here is the moment it is written to the socket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated

from msgspec import Meta, Struct

IB_MESSAGES_PER_SECOND = 50
_EPS = 1e-9  # float slack: a wait of exactly wait_time() must free a token


class Pacing(Struct, frozen=True, forbid_unknown_fields=True):
    rate: Annotated[float, Meta(gt=0, le=IB_MESSAGES_PER_SECOND)] = 40.0  # tokens per second
    burst: Annotated[int, Meta(ge=1, le=10)] = 4  # bucket size


class TokenBucket:
    """`await acquire()` returns when a token is free; tokens refill continuously at `rate`."""

    def __init__(self, pacing: Pacing | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.pacing = pacing = pacing or Pacing()
        self._clock = clock
        self._tokens = float(pacing.burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def wait_time(self) -> float:
        """Seconds until a token is free (0 if one is free now); refills as a side effect."""
        now = self._clock()
        self._tokens = min(float(self.pacing.burst), self._tokens + (now - self._stamp) * self.pacing.rate)
        self._stamp = now
        missing = 1.0 - self._tokens
        return 0.0 if missing <= _EPS else missing / self.pacing.rate

    def try_take(self) -> bool:
        if self.wait_time() > 0:
            return False
        self._tokens = max(0.0, self._tokens - 1.0)
        return True

    async def acquire(self) -> None:
        async with self._lock:  # first come, first served
            while not self.try_take():
                await asyncio.sleep(self.wait_time())
