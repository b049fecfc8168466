"""The simulator embedded in another program (`oms run`): on its own thread with its own event loop, so
it stands for a separate TWS and can never stall the host's loop, however busy it gets."""

from __future__ import annotations

import asyncio

from adapters.tws_sim.config import SimConfig
from adapters.tws_sim.server import TwsSimulator, run_simulator_in_thread


async def start_embedded(config: SimConfig, host: str = "127.0.0.1", port: int = 0) -> TwsSimulator:
    """A started simulator on a thread of its own; `await sim.stop()` from any loop stops it and its
    thread. Its test hooks (`set_price`, `drop_connections`...) are safe from any thread."""
    sim, _port, _stop = await asyncio.to_thread(run_simulator_in_thread, config, host, port)
    return sim
