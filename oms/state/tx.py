"""One fold step as a transaction: every write to the state goes through `Tx`, which remembers what it
replaced, so a step that fails half-way is undone whole and the state is exactly as before the event.

It also collects the changed entities that `step` returns (one value per entity, the latest).
"""

from __future__ import annotations

from typing import Any

from oms.state.model import Changed

_MISSING: Any = object()
_APPENDED: Any = object()


class Tx:
    __slots__ = ("changes", "undo")

    def __init__(self) -> None:
        self.changes: dict[tuple[str, str], Changed] = {}  # ("o" | "p" | "s" | "a" | "r", key) -> value
        self.undo: list[tuple[Any, Any, Any]] = []

    def put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        self.undo.append((table, key, table.get(key, _MISSING)))
        table[key] = value

    def pop(self, table: dict[Any, Any], key: Any) -> Any:
        old = table.pop(key, _MISSING)
        if old is not _MISSING:
            self.undo.append((table, key, old))
            return old
        return None

    def append(self, items: list[Any], value: Any) -> None:
        self.undo.append((items, None, _APPENDED))
        items.append(value)

    def setattr(self, obj: Any, name: str, value: Any) -> None:
        self.undo.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    def rollback(self) -> None:
        """Undo every write, newest first."""
        for target, key, old in reversed(self.undo):
            if old is _APPENDED:
                target.pop()
            elif isinstance(key, str) and not isinstance(target, dict):
                setattr(target, key, old)
            elif old is _MISSING:
                target.pop(key, None)
            else:
                target[key] = old
        self.undo.clear()
        self.changes.clear()
