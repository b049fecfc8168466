"""Recorded sessions: the state at any seq for the time slider, the charts of the whole session, and an
order's timeline.

The reading itself (journal or DuckDB archive, snapshots, timelines) is `replay`'s; the command line
hands a `Recording` in (it is the one place that wires replay to the rest), so this package depends only
on the shapes below. Moving the slider forward folds on from the last state shown; moving it back starts
again from the newest snapshot at or before the point (`Recording.state_at`).
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from events.schema import Envelope, ExecutionReported, OrderRequested
from oms.state.fold import fold, step
from oms.state.model import Order, State, initial_state
from oms.web.charts import Charts


class TimelineEntry(Protocol):
    @property
    def env(self) -> Envelope: ...

    @property
    def order(self) -> Order | None: ...

    @property
    def changed(self) -> bool: ...


class Timeline(Protocol):
    @property
    def client_order_id(self) -> str: ...

    @property
    def entries(self) -> Sequence[TimelineEntry]: ...


class Recording(Protocol):
    """A recorded session, as `replay` reads it (see oms/cli/web.py); `name` is the path it was opened
    from (a data directory or an archive file)."""

    name: str

    def last_seq(self) -> int: ...

    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[Envelope]: ...

    def state_at(self, seq: int) -> State: ...

    def timelines(self, ident: str) -> list[Timeline]:
        """The timelines of the orders named `ident`; raises LookupError when none is."""
        ...


@dataclass(frozen=True)
class Summary:
    """What the sessions list shows of one session (times in UTC)."""

    name: str
    date: str
    span: str
    orders: int
    fills: int
    size: str


class Session:
    """One recording opened for viewing; `load()` folds it once (charts, times of every seq)."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.charts = Charts()
        self.last = 0
        self._ts = array("q")  # ts of seq i+1
        self._orders = 0  # orders requested in the session
        self._fills = 0  # executions reported (corrections included)
        self._loaded = False
        self._lock = threading.Lock()
        self._cursor: State | None = None  # the last state shown: the slider folds on from it

    @property
    def name(self) -> str:
        return self.recording.name

    def load(self) -> None:
        """Fold the whole recording once (blocking: run it in a thread); later calls return at once."""
        with self._lock:
            if self._loaded:
                return
            state = initial_state()
            for env in self.recording.read():
                state, changes = step(state, env)
                self.charts.record(env, changes)
                self._ts.append(env.ts)
                self._orders += isinstance(env.event, OrderRequested)
                self._fills += isinstance(env.event, ExecutionReported)
            self.last = state.seq
            self._loaded = True

    def summary(self) -> Summary:
        """Date, time span, orders, fills and size on disk (folds the session once: blocking)."""
        self.load()
        first, last = self.ts_of(1), self.ts_of(self.last)
        when = [datetime.fromtimestamp(ts / 1e9, UTC) for ts in (first, last) if ts]
        date = " to ".join(sorted({w.strftime("%Y-%m-%d") for w in when}))
        span = " - ".join(w.strftime("%H:%M:%S") for w in when) + (" UTC" if when else "")
        return Summary(self.name, date or "empty", span, self._orders, self._fills, _size(Path(self.name)))

    def ts_of(self, seq: int) -> int:
        return self._ts[seq - 1] if 1 <= seq <= len(self._ts) else 0

    def state_at(self, seq: int) -> State:
        """The state after `seq` (clamped to the session); the caller reads it and lets it go."""
        seq = max(0, min(seq, self.last))
        with self._lock:
            cursor = self._cursor
            if cursor is None or cursor.seq > seq:
                cursor = self.recording.state_at(seq) if seq else initial_state()
            elif cursor.seq < seq:
                cursor = fold(self.recording.read(cursor.seq + 1, seq), cursor)
            self._cursor = cursor
            return cursor

    def events_before(self, seq: int, count: int = 15) -> list[Envelope]:
        """The last `count` events up to and including `seq`, newest first."""
        first = max(1, seq - count + 1)
        return list(self.recording.read(first, seq))[::-1] if seq else []


def _cache(path: Path) -> bool:
    """Replay's own checkpoints (replay.checkpoints): a cache beside the journal, not the session."""
    return any(part.endswith(".checkpoints") for part in path.parts)


def _size(path: Path) -> str:
    """Bytes on disk of a data directory or an archive, as a person reads them ("12.3 MB")."""
    try:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and not _cache(p)]
        total = float(sum(f.stat().st_size for f in files))
    except OSError:
        return "?"
    units, power = ("B", "kB", "MB", "GB"), 0
    while total >= 1000 and power < len(units) - 1:
        total, power = total / 1000, power + 1
    return f"{total:.0f} B" if power == 0 else f"{total:.1f} {units[power]}"
