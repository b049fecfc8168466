"""The folded state at any point of a session, and what changed between two points, field by field.

Folding starts from the newest stored state at or below the point (a journal snapshot, or the
archive's own state) when there is one: a cache, which `replay.verify` checks against a full refold.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from oms.state.codec import decode_state
from oms.state.fold import copy_state, fold
from oms.state.model import State, initial_state
from replay import checkpoints
from replay.source import Source

# What a person compares by default; the id indexes (order_ids, perm_ids, ...) follow from these.
COLLECTIONS: tuple[str, ...] = ("orders", "positions", "strategy_positions", "accounts", "fills")
SCALARS: tuple[str, ...] = ("connection", "client_id", "kill_switch", "kill_reason", "reconciling")
# Everything a state holds (verify compares all of it).
ALL_COLLECTIONS: tuple[str, ...] = tuple(
    f.name for f in msgspec.structs.fields(State) if f.default_factory is dict
)
ALL_SCALARS: tuple[str, ...] = tuple(
    f.name
    for f in msgspec.structs.fields(State)
    if f.name not in ALL_COLLECTIONS and f.name not in ("seq", "ts")
)


class FieldChange(msgspec.Struct, frozen=True):
    """One difference: `field` is "*" when the whole entity appeared (before None) or went (after None)."""

    collection: str
    key: str
    field: str
    before: Any
    after: Any


def state_at(source: Source, seq: int, *, use_snapshots: bool = True) -> State:
    return next(states_at(source, [seq], use_snapshots=use_snapshots))


def states_at(source: Source, seqs: Sequence[int], *, use_snapshots: bool = True) -> Iterator[State]:
    """The state after each of `seqs` (ascending), folding the log once; each is a version to keep.

    A source that caches states (a journal: replay.checkpoints) keeps the one at the last multiple of
    `checkpoints.EVERY` on a way long enough to be worth it, so the next point near it folds a short
    tail."""
    start = source.snapshot(seqs[0]) if use_snapshots and seqs else None
    state, done = (decode_state(start[1]), start[0]) if start else (initial_state(), 0)
    keep = getattr(source, "keep", None) if use_snapshots else None
    start_bytes = len(start[1]) if start else 0
    last = len(seqs) - 1
    for i, seq in enumerate(seqs):
        mark = seq - seq % checkpoints.EVERY
        if keep is not None and checkpoints.worth_keeping(mark - done, start_bytes):
            state = fold(source.read(done + 1, mark), state)
            done = mark
            if state.seq == mark:  # not past the log's end
                keep(mark, state)
        if seq > done:
            state = fold(source.read(done + 1, seq), state)
            done = seq
        yield state if i == last else copy_state(state)  # the last one is not folded on: no copy


def diff_states(before: State, after: State, *, everything: bool = False) -> list[FieldChange]:
    """Every entity added, removed or changed (each changed field), and every changed scalar; with
    `everything`, the id indexes and cross-checks too."""
    changes: list[FieldChange] = []
    for name in ALL_COLLECTIONS if everything else COLLECTIONS:
        old: dict[str, Any] = getattr(before, name)
        new: dict[str, Any] = getattr(after, name)
        for key in sorted(old.keys() | new.keys()):
            a, b = old.get(key), new.get(key)
            if a == b:
                continue
            if a is None or b is None or not isinstance(a, msgspec.Struct):
                changes.append(FieldChange(name, str(key), "*", a, b))
                continue
            fields_a, fields_b = msgspec.structs.asdict(a), msgspec.structs.asdict(b)
            changes.extend(
                FieldChange(name, str(key), field, fields_a[field], fields_b[field])
                for field in fields_a
                if fields_a[field] != fields_b[field] and field not in ("updated_seq", "updated_ts")
            )
    changes.extend(
        FieldChange("state", "", name, getattr(before, name), getattr(after, name))
        for name in (ALL_SCALARS if everything else SCALARS)
        if getattr(before, name) != getattr(after, name)
    )
    return changes
