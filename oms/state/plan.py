"""One step's plan: every value an event changes, computed before anything is written.

`oms.state.fold.step` hands the plan to the owners (orders, fills, positions, accounts, links); each
computes the new values of its own tables from the state and from what this plan already holds for
the event, and records them here. `commit` then assigns them into the state. Nothing is written
before the commit, so an event that raises leaves the state exactly as it was: there is nothing to
undo, and the failure is recorded as a `FoldError` by a plan of its own.

A plan is a write buffer per state table (keyed by the table's identity), so a read through the plan
sees this event's earlier decisions and the state beneath them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from oms.state.model import Changed, PositionInput, State

K = TypeVar("K")
V = TypeVar("V")

_GONE: Any = object()  # a removal, in a table's buffer


class Plan:
    """The writes of one step, by table, and the entities it changed, in the order they changed."""

    __slots__ = ("appended", "buffers", "changes", "dropped", "fields", "seq", "state", "ts")

    def __init__(self, state: State, seq: int, ts: int) -> None:
        self.state = state
        self.seq = seq
        self.ts = ts
        self.buffers: dict[int, tuple[dict[Any, Any], dict[Any, Any]]] = {}  # id(table) -> (table, writes)
        self.appended: dict[str, list[PositionInput]] = {}  # position key -> entries added to its history
        self.fields: dict[str, Any] = {}  # State's scalar fields
        self.changes: dict[tuple[str, str], Changed] = {}  # ("o" | "p" | "s" | "a" | "r" | "e", key)
        self.dropped = False  # whether any buffer holds a removal

    def get(self, table: dict[K, V], key: K) -> V | None:
        """The value this step will leave under `key`: its own decision, else the state's."""
        if self.buffers:
            buffer = self.buffers.get(id(table))
            if buffer is not None:
                value = buffer[1].get(key, table)  # the table itself stands for "not decided here"
                if value is not table:
                    return None if value is _GONE else value
        return table.get(key)

    def put(self, table: dict[K, V], key: K, value: V) -> None:
        buffer = self.buffers.get(id(table))
        if buffer is None:
            self.buffers[id(table)] = (table, {key: value})
        else:
            buffer[1][key] = value

    def drop(self, table: dict[K, Any], key: K) -> None:
        self.dropped = True
        self.put(table, key, _GONE)

    def keys(self, table: dict[K, Any]) -> list[K]:
        """Every key the table will hold after this step (for the rare scans: renames, inferred fills)."""
        buffer = self.buffers.get(id(table))
        if buffer is None:
            return list(table)
        writes = buffer[1]
        kept = [k for k in table if k not in writes]
        return kept + [k for k, v in writes.items() if v is not _GONE]

    def history(self, key: str) -> list[PositionInput]:
        """A position's history as it will stand after this step (a fresh list: read, never kept)."""
        base = self.get(self.state.position_inputs, key) or ()
        return [*base, *self.appended.get(key, ())]

    def append(self, key: str, entry: PositionInput) -> None:
        added = self.appended.get(key)
        if added is None:
            self.appended[key] = [entry]
        else:
            added.append(entry)

    def set_history(self, key: str, inputs: list[PositionInput] | None) -> None:
        """Replace a position's whole history (a checkpoint, a moved key); None removes it."""
        self.appended.pop(key, None)
        self.put(self.state.position_inputs, key, _GONE if inputs is None else inputs)


def commit(plan: Plan) -> tuple[Changed, ...]:
    """Write the plan into its state: assignments only, so it cannot stop half-way."""
    for table, writes in plan.buffers.values():
        table.update(writes)
    if plan.dropped:
        for table, writes in plan.buffers.values():
            for key in [k for k, v in writes.items() if v is _GONE]:
                del table[key]
    if plan.appended:
        inputs = plan.state.position_inputs
        for key, entries in plan.appended.items():
            current = inputs.get(key)
            if current is None:
                inputs[key] = entries
            else:
                current.extend(entries)
    state = plan.state
    for name, value in plan.fields.items():
        setattr(state, name, value)
    return tuple(plan.changes.values())


class Seen(Mapping[K, V]):
    """A state table as this step will leave it, for readers that take a mapping (position keys)."""

    __slots__ = ("plan", "table")

    def __init__(self, plan: Plan, table: dict[K, V]) -> None:
        self.plan = plan
        self.table = table

    def __getitem__(self, key: K) -> V:
        value = self.plan.get(self.table, key)
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[K]:
        return iter(self.plan.keys(self.table))

    def __len__(self) -> int:
        return len(self.plan.keys(self.table))
