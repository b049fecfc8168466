"""Verify: fold the whole log again and compare with every stored snapshot.

Snapshots are a cache written by the live service; a snapshot that differs from the refold means the
live fold and the code's fold disagree (a fold bug, a change of rules, damage). Between the last
matching snapshot P and the first differing one N the states agreed at P, so they parted at the first
event in (P, N] that changed an entity they now disagree on: the refold's changes name those events,
and the stored entity's own `updated_seq` / `seq` names the live side's. Folding is done once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec

from events.journal_errors import CorruptSnapshot
from events.schema import Envelope
from events.snapshots import list_snapshots, read_snapshot
from oms.state.codec import SnapshotError, decode_state
from oms.state.fold import step
from oms.state.model import Account, Order, Position, State, initial_state
from replay.source import JournalSource
from replay.states import FieldChange, diff_states


class SnapshotCheck(msgspec.Struct, frozen=True):
    seq: int
    ok: bool
    detail: str = ""


class VerifyReport(msgspec.Struct, frozen=True):
    last_seq: int  # the log was refolded up to here
    checks: list[SnapshotCheck]
    parted_at: int | None = None  # first seq where the refold and the first bad snapshot part
    after_seq: int = 0  # the last point where they agreed (a matching snapshot, or the start)
    bad_snapshot: int | None = None
    differences: list[FieldChange] = []

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def verify(data_dir: Path) -> VerifyReport:
    source = JournalSource(data_dir)
    last = source.last_seq()
    snapshots = list_snapshots(source.path)
    checks: list[SnapshotCheck] = []
    state, agreed = initial_state(), 0
    first_change: dict[str, int] = {}  # entity key -> first seq after `agreed` that changed it
    envs = source.read(1, last)
    for info in snapshots:
        if info.seq > last:
            checks.append(SnapshotCheck(info.seq, True, f"beyond the log's end ({last}): ignored"))
            continue
        for env in _until(envs, info.seq, state):
            state, changes = step(state, env)
            for entity in changes:
                first_change.setdefault(_key(entity), env.seq)
        try:
            seq, payload = read_snapshot(info.path)
            stored = decode_state(payload)
        except (CorruptSnapshot, SnapshotError) as exc:
            checks.append(SnapshotCheck(info.seq, False, f"unreadable: {exc}"))
            continue
        if stored == state:
            checks.append(SnapshotCheck(seq, True))
            agreed, first_change = seq, {}
            continue
        differences = diff_states(state, stored, everything=True)
        parted = _parted_at(differences, first_change, (state, stored), agreed, seq)
        checks.append(SnapshotCheck(seq, False, f"{len(differences)} differences; parted at seq {parted}"))
        return VerifyReport(last, checks, parted, agreed, seq, differences)
    return VerifyReport(last, checks, after_seq=agreed)


def _until(envs: Iterator[Envelope], seq: int, state: State) -> Iterator[Envelope]:
    """The envelopes after the state's seq up to and including `seq` (the iterator is shared)."""
    if state.seq >= seq:
        return
    for env in envs:
        yield env
        if env.seq >= seq:
            return


def _key(entity: object) -> str:
    if isinstance(entity, Order):
        return entity.client_order_id
    if isinstance(entity, Account):
        return entity.account
    if isinstance(entity, Position):
        return entity.key
    return getattr(entity, "key", "")


def _parted_at(
    differences: list[FieldChange],
    first_change: dict[str, int],
    states: tuple[State, State],
    agreed: int,
    seq: int,
) -> int | None:
    """The earliest seq in (agreed, seq] at which either side changed an entity they disagree on."""
    candidates = [first_change[d.key] for d in differences if d.key in first_change]
    by_key: dict[tuple[int, str], dict[str, object]] = {}
    for d in differences:
        for index, side in enumerate(states):
            if (index, d.collection) not in by_key:
                held = getattr(side, d.collection, {})
                by_key[index, d.collection] = (
                    {str(k): v for k, v in held.items()} if isinstance(held, dict) else {}
                )
            entity = by_key[index, d.collection].get(d.key)
            for name in ("updated_seq", "seq", "created_seq"):
                value = getattr(entity, name, None)
                if isinstance(value, int) and agreed < value <= seq:
                    candidates.append(value)
    return min(candidates) if candidates else None
