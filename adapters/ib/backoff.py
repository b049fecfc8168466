"""How long to wait between connection attempts (the first connect, and reconnects after a drop)."""

from __future__ import annotations

from collections.abc import Iterator

from msgspec import Struct


class Backoff(Struct, frozen=True, forbid_unknown_fields=True):
    """Exponential backoff between connection attempts; `attempts` 0 means keep trying."""

    initial: float = 0.2
    factor: float = 2.0
    max_delay: float = 5.0
    attempts: int = 5

    def delays(self) -> Iterator[float]:
        delay, n = self.initial, 1
        while not self.attempts or n < self.attempts:
            yield delay
            delay, n = min(delay * self.factor, self.max_delay), n + 1
