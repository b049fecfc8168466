"""Memory, at the edge of the rules: equal immutable values kept as one object.

The orders of one strategy and one instrument share their strategy id, account and Contract instead of
holding a decoded copy each. Contracts are frozen and compared by value, and strings are immutable, so
sharing is invisible to every rule; the caches are bounded by instruments, not by orders.
"""

from __future__ import annotations

from functools import lru_cache
from sys import intern

from events.schema import Contract


@lru_cache(maxsize=4096)
def contract(c: Contract) -> Contract:
    """The first contract seen equal to `c`."""
    return c


def name(s: str) -> str:
    """One object per distinct strategy id or account."""
    return intern(s)
