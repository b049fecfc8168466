"""Replay's own checkpoints: states it folded on the way to a point, kept beside the journal, so the next
`oms replay --at` near that point folds a short tail instead of everything since the service's last
snapshot (every 100,000 events, and the service keeps only its newest few).

A cache, never the truth. Each file is a snapshot in the service's format (events.snapshots: owner-only,
written atomically, CRC-checked, not fsynced) that names the journal frame it was taken at, and it is
used only while the journal still holds that very frame; one that fails a check is deleted. They sit at
multiples of `EVERY` seqs, in `<journal>.checkpoints/fold-<FOLD_VERSION>/` (a state another fold
version folded is never read). The cache holds at most `BUDGET_BYTES`: the checkpoints used least
recently go first, so points nobody asks about any more thin out. A place replay cannot write to just
goes without a cache.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from pathlib import Path

from events.segments import make_dir
from events.snapshots import (
    CorruptSnapshotWarning,
    SnapshotInfo,
    latest_snapshot,
    list_snapshots,
    write_snapshot,
)
from oms.state.codec import encode_state
from oms.state.model import FOLD_VERSION, State

EVERY = 2_000  # a tail of at most this many events (a few tens of ms of folding) after a checkpoint
BUDGET_BYTES = 2 << 30
# Encoding a state runs at about 100 MB/s and folding at about 100,000 events/s: a checkpoint is kept when
# the tail folded to it took longer than writing it will (one event per 1,000 bytes of the state it
# started from), so a first query never pays more than twice for the ones after it.
BYTES_PER_EVENT = 1_000


def worth_keeping(tail: int, start_bytes: int) -> bool:
    """Whether folding `tail` events from a stored state of `start_bytes` cost more than keeping one will."""
    return tail >= max(EVERY, start_bytes // BYTES_PER_EVENT)


def checkpoint_dir(journal: Path) -> Path:
    return journal.with_name(journal.name + ".checkpoints") / f"fold-{FOLD_VERSION}"


def start(journal: Path, max_seq: int | None) -> tuple[int, bytes] | None:
    """The newest stored state at or below `max_seq`: the service's snapshot, or a checkpoint of replay's
    when one is nearer (then marked as used)."""
    folder = checkpoint_dir(journal)
    service = _newest_seq(list_snapshots(journal), max_seq)
    if _newest_seq(list_snapshots(journal, folder), max_seq) > service:
        with warnings.catch_warnings():  # a stale or damaged cache entry is deleted and rebuilt, not news
            warnings.simplefilter("ignore", CorruptSnapshotWarning)
            found = latest_snapshot(journal, max_seq, discard=True, folder=folder)
        if found is not None and found[0] > service:  # an older checkpoint than the service's: not nearer
            _touch(journal, folder, found[0])
            return found
    return latest_snapshot(journal, max_seq)


def keep(journal: Path, seq: int, state: State) -> None:
    """Store `state`, the state after `seq`, unless it is stored already; then trim to the budget."""
    folder = checkpoint_dir(journal)
    if any(info.seq == seq for info in list_snapshots(journal, folder)):
        return
    try:
        make_dir(folder.parent)
        make_dir(folder)
        write_snapshot(journal, seq, encode_state(state), folder=folder, durable=False)
        _trim(journal, folder)
    except OSError:  # read-only, full, or gone: replay works without its cache
        return


def _newest_seq(infos: list[SnapshotInfo], max_seq: int | None) -> int:
    return max((info.seq for info in infos if max_seq is None or info.seq <= max_seq), default=-1)


def _touch(journal: Path, folder: Path, seq: int) -> None:
    """Mark a checkpoint as used now (the budget drops the least recently used first)."""
    for info in list_snapshots(journal, folder):
        if info.seq == seq:
            with contextlib.suppress(OSError):  # trimmed by another replay meanwhile, or read-only
                os.utime(info.path)


def _trim(journal: Path, folder: Path) -> None:
    """Other fold versions' checkpoints go; then the least recently used until the rest fit the budget."""
    for other in folder.parent.iterdir():
        if other != folder and other.name.startswith("fold-"):
            shutil.rmtree(other, ignore_errors=True)
    infos = list_snapshots(journal, folder)
    used = sorted(infos, key=_last_used)
    total = sum(info.size for info in infos)
    for info in used[:-1]:  # the newest one stays whatever its size
        if total <= BUDGET_BYTES:
            break
        info.path.unlink(missing_ok=True)
        total -= info.size


def _last_used(info: SnapshotInfo) -> int:
    try:
        return info.path.stat().st_mtime_ns
    except FileNotFoundError:  # trimmed by another replay meanwhile
        return 0
