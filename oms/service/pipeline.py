"""The one path every event takes: journal.append -> fold.step -> journal.flush -> publish.

`append` is synchronous and cheap (the journal buffers in memory, the fold updates the state in place),
so the adapter's callbacks and the request handlers call it directly on the event loop. Flushing to the
OS and publishing happen in `drain`, scheduled once per loop iteration: a burst of callbacks becomes one
write syscall, and no event is published before it is at least in the page cache (it survives kill -9;
group commit makes it survive power loss a few milliseconds later).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

from events.journal_errors import JournalClosed, JournalError
from events.schema import Envelope, Event, ExecutionReported
from oms.service.publisher import Publisher
from oms.state.fold import step
from oms.state.model import Changed, FoldError, State
from oms.state.money import exact

log = logging.getLogger(__name__)


class Journal(Protocol):
    """What the pipeline needs of events.journal.JournalWriter."""

    @property
    def last_seq(self) -> int: ...
    @property
    def durable_seq(self) -> int: ...
    def append(self, event: Event, ts: int | None = None) -> Envelope: ...
    def flush(self) -> int: ...
    def commit_now(self) -> None: ...
    async def wait_durable_async(self, seq: int) -> bool: ...


class Pipeline:
    def __init__(
        self,
        journal: Journal,
        state: State,
        publisher: Publisher,
        on_snapshot_due: Callable[[], None],
        snapshot_every: int,
        durability: str,
    ) -> None:
        self.journal = journal
        self.state = state
        self.publisher = publisher
        self.last_prices: dict[int, Decimal] = last_fill_prices(state)
        self._pending: list[tuple[Envelope, tuple[Changed, ...]]] = []
        self._scheduled = False
        self._loop = asyncio.get_running_loop()
        self._on_snapshot_due = on_snapshot_due
        self._snapshot_every = snapshot_every
        self.snapshot_seq = state.seq
        self._fsyncs = durability != "never"
        self.appended = 0
        self.failure: str | None = None  # set when the journal fails
        # Called with each step's envelope and changes, after it is folded and before anything else
        # runs: what they append is logged right after it (a loss limit's kill switch, its cancels).
        self.observers: list[Callable[[Envelope, tuple[Changed, ...]], None]] = []

    def append(self, event: Event) -> Envelope:
        """Log, fold, and queue for publishing. The adapter's sink."""
        try:
            env = self.journal.append(event)
        except JournalError as exc:
            self._failed(exc)
            raise
        self.state, changes = step(self.state, env)
        if changes and type(changes[0]) is FoldError:  # skipped whole; published on fold.error too
            log.error("seq %d (%s) could not be applied and was skipped: %s", env.seq, changes[0].kind,
                      changes[0].error)  # fmt: skip
        if type(event) is ExecutionReported and event.contract.con_id:
            self.last_prices[event.contract.con_id] = exact(event.price)
        self._pending.append((env, changes))
        self.appended += 1
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.drain)
        if env.seq - self.snapshot_seq >= self._snapshot_every:
            self.snapshot_seq = env.seq
            self._on_snapshot_due()
        for observer in self.observers:
            observer(env, changes)
        return env

    def drain(self) -> None:
        """Flush to the OS, then publish everything appended since the last drain."""
        self._scheduled = False
        if not self._pending:
            return
        try:
            self.journal.flush()
        except JournalError as exc:
            self._failed(exc)
            raise
        pending, self._pending = self._pending, []
        self.publisher.publish_batch(pending)

    async def durable(self, seq: int) -> None:
        """Return once `seq` is on disk; at once under durability `never` (benchmarks).

        An intent does not wait for the rest of the group-commit window: the journal's committer thread
        is asked to fsync now (the loop keeps serving) and wakes us when it is done. Intents arriving
        meanwhile share the next fsync. Only that one thread fsyncs: a second fsync of the same file
        from another thread would only queue behind it."""
        self.drain()
        if not self._fsyncs or self.journal.durable_seq >= seq:
            return
        self.journal.commit_now()
        try:
            durable = await self.journal.wait_durable_async(seq)
        except JournalError as exc:
            self._failed(exc)
            raise
        if not durable:
            closed = JournalClosed(f"seq {seq} was not made durable: the journal closed or failed first")
            self._failed(closed)
            raise closed

    def _failed(self, exc: BaseException) -> None:
        """The journal cannot record any more: say so once, loudly; commands are refused from now on."""
        if self.failure is None:
            self.failure = f"{type(exc).__name__}: {exc}"
            log.critical("journal failed, commands are refused from now on: %s", self.failure)

    def heartbeat(self) -> None:
        self.publisher.heartbeat(self.publisher.last_seq)


def last_fill_prices(state: State) -> dict[int, Decimal]:
    """The last real fill price per conId (a market order's reference when IB gives no market data)."""
    prices: dict[int, Decimal] = {}
    for fill in sorted(state.fills.values(), key=lambda f: f.updated_seq):
        if fill.contract.con_id and not fill.inferred:
            prices[fill.contract.con_id] = fill.price
    return prices
