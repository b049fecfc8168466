"""The live side: one `AsyncClient` follows the service (Clone pattern) and tells the pages what changed.

The web app is a client like any strategy: it subscribes to the PUB socket and folds the events itself,
so it never slows the sequencer. Each applied event only marks the sections it touched (orders,
positions, fills, accounts, charts, status) with a new version and wakes the page streams; each stream
renders at most once per `interval` (100 ms; the charts once a second), so at 1,000 events/s a page gets
ten updates a second with the latest state instead of falling behind by a thousand. Renders are cached
per (section, filter, version), so many pages cost one render. Orders are also logged per change, so a
page can be sent just the rows of the few orders that changed since its last update (`orders_since`).

Chart history before the snapshot the client started from is refolded from the service's `events`
replies (seq 1 up to the snapshot, at most `backfill_limit` events) while live events queue behind it;
the same refold keeps the session's newest finished orders and fills (`Finished`), which the live state
lets go of.

Following a JetStream mirror instead (`JetStreamClient`, read-only): the client is handed over before it
follows, and folds the stream from its first event, so every event reaches the charts and `Finished`
through `_applied` and there is nothing to refold; times show in UTC (a mirror does not say the
service's zone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Callable
from typing import Any

from events.schema import CommissionReported, Envelope, ExecutionReported
from oms.client import AsyncClient
from oms.client.jetstream import JetStreamClient
from oms.client.jetstream_wire import redact_url
from oms.protocol import MAX_EVENTS_BATCH
from oms.state.fold import step
from oms.state.model import Account, Order, Position, State, initial_state
from oms.web.charts import Charts
from oms.web.finished import Finished
from oms.web.views import LIMIT, Clock

log = logging.getLogger(__name__)

SECTIONS = ("status", "orders", "positions", "fills", "accounts", "charts")
ROW_UPDATES = 40  # more orders changed than this since a page's last update: the whole tables instead
ORDER_LOG = 10_000  # order changes remembered for row updates


class LiveFeed:
    def __init__(
        self,
        client: AsyncClient | JetStreamClient,
        *,
        interval: float = 0.1,
        chart_interval: float = 1.0,
        backfill_limit: int = 200_000,
        finished_limit: int = LIMIT,
    ) -> None:
        self.client = client
        self.interval = interval
        self.chart_interval = chart_interval
        self.backfill_limit = backfill_limit
        self.charts = Charts()
        self.finished = Finished(finished_limit)  # the session's latest completed orders and fills
        self.clock = Clock()  # the service's, once its `status` has said which zone and whether simulated
        self._clock_task: asyncio.Task[None] | None = None
        self.versions = dict.fromkeys(SECTIONS, 1)
        self.last_event_ts = 0  # ts of the newest applied event (for the page's lag figure)
        self._pulse = asyncio.Event()
        self._queued: list[tuple[Envelope, tuple[object, ...]]] | None = []  # until backfill is done
        self._cache: dict[tuple[str, Any], tuple[int, Any]] = {}
        self._backfill: asyncio.Task[None] | None = None
        self.closed = False
        self.order_changes = 0  # orders changed so far (a page's mark for row updates)
        self._order_log: list[tuple[int, str]] = []  # (change number, client order id), ascending
        self._order_floor = 0  # a page marked before this gets whole tables (log trimmed, or resync)
        client.on_event(self._applied)
        client.on_connection(self._connection)

    def start(self) -> None:
        self._backfill = asyncio.get_running_loop().create_task(self._fill_history(self.client.seq))
        self._read_clock()

    def _read_clock(self) -> None:
        """Ask the service for its zone (again after a restart: it may run elsewhere now)."""
        if self.mirror:
            return
        if self._clock_task is None or self._clock_task.done():
            self._clock_task = asyncio.get_running_loop().create_task(self._fetch_clock())

    async def _fetch_clock(self) -> None:
        assert isinstance(self.client, AsyncClient)
        try:
            status = await self.client.status()
        except Exception:  # ServiceUnavailable; asked again when the service is back
            log.warning("could not read the service's time zone; times show in UTC until it answers")
            return
        self.clock = Clock(status.time_zone, status.simulator)
        self._mark(SECTIONS)

    async def close(self) -> None:
        """Ends every page stream (so the server can shut down), the history and the clock fetch."""
        self.closed = True
        for task in (self._backfill, self._clock_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._wake()

    @property
    def state(self) -> State:
        return self.client.state

    @property
    def seq(self) -> int:
        return self.client.seq

    @property
    def connected(self) -> bool:
        return self.client.connected

    @property
    def mirror(self) -> bool:
        """Following a JetStream mirror: read-only, and no service to ask (`ping`, `status`, commands)."""
        return isinstance(self.client, JetStreamClient)

    @property
    def source(self) -> str:
        """What is followed, as the pages name it: the service's ROUTER address, or the mirror's servers
        and stream (no password)."""
        if isinstance(self.client, JetStreamClient):
            return f"{redact_url(self.client.settings.url)}/{self.client.settings.stream}"
        return self.client.router

    # --- what changed -------------------------------------------------------------------------------

    def _applied(self, env: Envelope, changes: tuple[object, ...]) -> None:
        self.last_event_ts = env.ts
        touched = {"status"}
        for change in changes:
            if isinstance(change, Order):
                touched.add("orders")
                self.order_changes += 1
                self._order_log.append((self.order_changes, change.client_order_id))
            elif isinstance(change, Position):
                touched.update(("positions", "charts"))
            elif isinstance(change, Account):
                touched.add("accounts")
        if len(self._order_log) > ORDER_LOG:
            half = len(self._order_log) // 2
            self._order_floor = self._order_log[half][0] - 1
            del self._order_log[:half]
        if isinstance(env.event, ExecutionReported | CommissionReported):
            touched.update(("fills", "positions", "charts"))
        self.finished.record(self.client.state, env, changes)
        if self._queued is not None:
            self._queued.append((env, changes))
        else:
            self.charts.record(env, changes)
        self._mark(touched)

    def _connection(self, connected: bool) -> None:
        """Back after silence (a new snapshot may differ in anything): everything is redrawn."""
        self._order_floor = self.order_changes
        if connected:
            self._read_clock()
        self._mark(SECTIONS)

    def _mark(self, sections: tuple[str, ...] | set[str]) -> None:
        for section in sections:
            self.versions[section] += 1
        self._wake()

    def _wake(self) -> None:
        pulse, self._pulse = self._pulse, asyncio.Event()
        pulse.set()

    async def _fill_history(self, upto: int) -> None:
        """Refold seq 1..`upto` for the charts and the session's finished orders and fills, then apply
        what arrived meanwhile."""
        try:
            if isinstance(self.client, AsyncClient) and upto <= self.backfill_limit:  # a mirror: no need
                state, seq = initial_state(), 0
                while seq < upto:
                    envelopes, _ = await self.client.fetch_events(seq + 1, min(MAX_EVENTS_BATCH, upto - seq))
                    if not envelopes:
                        break
                    for env in envelopes:
                        if env.seq > upto:
                            break
                        state, changes = step(state, env)
                        self.charts.record(env, changes)
                        self.finished.record(state, env, changes)
                        seq = env.seq
                    await asyncio.sleep(0)  # let pages and the follower run between batches
        except Exception:  # ServiceUnavailable, or a log this version cannot fold: no history, live goes on
            log.exception("could not fetch the session's history for the charts; they start now")
        queued, self._queued = self._queued or [], None
        for queued_env, queued_changes in queued:
            self.charts.record(queued_env, queued_changes)
        self._mark(("charts",))

    # --- the page streams ---------------------------------------------------------------------------

    def orders_since(self, mark: int) -> set[str] | None:
        """The orders changed after `mark` (an earlier `order_changes`); None when the whole tables are
        due instead: too many changed, or the changes are no longer all known."""
        if mark < self._order_floor:
            return None
        start = bisect_right(self._order_log, (mark, "\U0010ffff"))
        coids = {coid for _, coid in self._order_log[start:]}
        return coids if len(coids) <= ROW_UPDATES else None

    def cached(self, section: str, key: Any, render: Callable[[], Any]) -> Any:
        """`render()` once per (section, key) and section version: many pages, one render."""
        version = self.versions[section]
        hit = self._cache.get((section, key))
        if hit is not None and hit[0] == version:
            return hit[1]
        value = render()
        if len(self._cache) > 512:
            self._cache.clear()
        self._cache[(section, key)] = (version, value)
        return value

    async def updates(self) -> AsyncIterator[list[str]]:
        """The sections changed since the last yield, at most once per `interval` (the charts at most
        once per `chart_interval`), until closed."""
        sent = dict.fromkeys(SECTIONS, 0)
        sent_at = dict.fromkeys(SECTIONS, 0.0)
        last = 0.0
        while not self.closed:
            changed = [s for s in SECTIONS if self.versions[s] != sent[s]]
            if not changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._pulse.wait(), 1.0)
                continue
            now = time.monotonic()
            due_at = min(max(last + self.interval, sent_at[s] + self._gap(s)) for s in changed)
            if due_at > now:
                if any(self._gap(s) == self.interval for s in changed):
                    await asyncio.sleep(due_at - now)  # coalesce: what changes meanwhile goes out with it
                else:  # only a slower section waits: anything else that changes meanwhile goes first
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._pulse.wait(), due_at - now)
                continue
            due = [s for s in SECTIONS if self.versions[s] != sent[s] and sent_at[s] + self._gap(s) <= now]
            for section in due:
                sent[section], sent_at[section] = self.versions[section], now
            last = now
            yield due

    def _gap(self, section: str) -> float:
        return self.chart_interval if section == "charts" else self.interval
