"""A TWS API wire-protocol simulator that the real ib_async / ib_insync clients connect to over TCP.

Layered like ib_insync: framing (bytes <-> fields), messages / requests (fields <-> meaning, per server
version), prices / matching / account / faults (the simulated paper account, pure where possible),
engine (orders and the message sequences they cause), session (one client connection), server
(`TwsSimulator`), playback (recorded frames); `oms sim` runs it (oms/cli/sim.py). Exports load lazily,
so importing one part does not load the rest.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SimConfig": "adapters.tws_sim.config",
    "FaultConfig": "adapters.tws_sim.faults",
    "TwsSimulator": "adapters.tws_sim.server",
    "run_simulator_in_thread": "adapters.tws_sim.server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
