"""The Clone pattern's bookkeeping: which published envelopes to apply now, hold back, or drop.

Kept free of sockets and clocks so its rules are tested on their own: updates at or below the applied seq
are dropped (the snapshot or an earlier update already holds them), an update that is not the next seq
is held until the gap before it is repaired, and `missing()` names the range to fetch over the ROUTER.
"""

from __future__ import annotations

from events.schema import Envelope


class Sequencer:
    """Turns envelopes arriving in any order, with gaps and repeats, into one contiguous run of seqs."""

    def __init__(self, applied: int) -> None:
        self.applied = applied
        self.known = applied  # highest seq the service is known to have published (events or heartbeats)
        self._held: dict[int, Envelope] = {}

    def offer(self, env: Envelope) -> list[Envelope]:
        """The envelopes (possibly none) that are now ready, in seq order."""
        if env.seq <= self.applied:
            return []
        self.known = max(self.known, env.seq)
        self._held[env.seq] = env
        return self._drain()

    def offer_many(self, envs: list[Envelope]) -> list[Envelope]:
        ready: list[Envelope] = []
        for env in envs:
            ready.extend(self.offer(env))
        return ready

    def saw_seq(self, seq: int) -> None:
        """A heartbeat said the service has logged up to `seq`: anything past `applied` is now missing."""
        self.known = max(self.known, seq)

    def missing(self) -> tuple[int, int] | None:
        """The first missing range (first, last), inclusive, or None when nothing is known to be missing."""
        if self.known <= self.applied:
            return None
        last = min(self._held) - 1 if self._held else self.known
        return self.applied + 1, last

    def _drain(self) -> list[Envelope]:
        ready: list[Envelope] = []
        while (env := self._held.pop(self.applied + 1, None)) is not None:
            ready.append(env)
            self.applied = env.seq
        return ready
