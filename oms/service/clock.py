"""The service's clock: what the journal stamps on each event, and the now of max-age and the risk book.

Wall time, unless the whole world is simulated (`oms run` embedding the TWS simulator): then it is the
simulator's clock, so that time moved with `oms sim clock` passes for the service too (orders retire,
max-age counts, risk sessions turn) as it does for IB. The journal opens before the simulator starts
(its lock comes first), so the source is bound late (`follow`); and since journal times must never go
backwards, the clock never does: it holds at its floor (the journal's last time) or its last reading
until the source passes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class ServiceClock:
    """Nanoseconds since the epoch; wall time until `follow` names another source (seconds since the
    epoch, readable from any thread); never earlier than a reading it already gave, or than `floor`."""

    def __init__(self, wall: Callable[[], int] = time.time_ns) -> None:
        self._wall = wall
        self._source: Callable[[], float] | None = None
        self._last = 0
        self._lock = threading.Lock()  # the journal's thread and the event loop both read it

    def follow(self, source: Callable[[], float]) -> None:
        self._source = source

    def floor(self, ns: int) -> None:
        """Never read earlier than `ns` (the journal's last event time)."""
        with self._lock:
            self._last = max(self._last, ns)

    def __call__(self) -> int:
        source = self._source
        now = self._wall() if source is None else int(source() * 1e9)
        with self._lock:
            if now > self._last:
                self._last = now
            return self._last
