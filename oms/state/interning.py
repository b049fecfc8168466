"""Memory, at the edge of the rules: equal immutable values kept as one object.

The orders of one strategy and one instrument share their strategy id, account and Contract instead of
holding a decoded copy each. Contracts are frozen and compared by value, and strings are immutable, so
sharing is invisible to every rule; the caches are bounded by instruments, not by orders.
"""

from __future__ import annotations

from functools import lru_cache
from sys import intern

from msgspec import NODEFAULT
from msgspec.structs import fields

from events.schema import Contract

_DEFAULTS = {f.name: f.default for f in fields(Contract) if f.default is not NODEFAULT}


@lru_cache(maxsize=4096)
def contract(c: Contract) -> Contract:
    """One canonical object for every contract equal to `c`, its default values the defaults themselves:
    msgspec leaves a default out of the bytes only when it is that very object, so equal contracts now
    encode alike whichever of them a process saw first (a decoded `strike` of 0.0 would otherwise show)."""
    given = {f: getattr(c, f) for f in c.__struct_fields__}
    return Contract(**{f: v for f, v in given.items() if f not in _DEFAULTS or v != _DEFAULTS[f]})


# One object per distinct strategy id or account: `sys.intern` itself, no call of our own per order.
name = intern
