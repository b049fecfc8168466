import asyncio, logging
from adapters.tws_sim import SimConfig
from events.schema import ConnectionChanged
from tests.ib_helpers import Cell, session, until

async def run():
    cfg = SimConfig(clock_start="2026-12-05T23:30-05:00", reset_at="23:45", reset_minutes=10, restart_at="01:00", restart_minutes=2)
    async with session(Cell("ib_async", 178), cfg) as (sim, adapter, sink):
        for i in range(100):
            sim.advance(60)
            await asyncio.sleep(0)
        await asyncio.sleep(2)
        print([(e.state, e.detail[:50]) for e in sink.of(ConnectionChanged)])
        print(sim.connections)
asyncio.run(run())
