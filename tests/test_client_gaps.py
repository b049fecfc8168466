"""The Clone pattern under loss and death: gaps repaired over the ROUTER, a dead service detected by its
missing heartbeats, and following resumed (re-snapshot) when it comes back on new ports."""

from __future__ import annotations

import asyncio
from pathlib import Path

from oms.client import AsyncClient
from tests.client_helpers import ServiceProcess, journal_state, running_service, settled_equal
from tests.waiting import async_wait_until


def test_a_burst_lost_by_pub_is_repaired_so_the_state_equals_the_services(tmp_path: Path) -> None:
    config = tmp_path / "tiny-hwm.toml"
    config.write_text("pub_hwm = 1\n")  # the service's PUB drops nearly everything in a burst
    with running_service(tmp_path / "data", "--config", str(config)) as service:

        async def scenario() -> None:
            client = await AsyncClient.connect(service.data_dir, strategy_id="burst", rcvhwm=1)
            try:
                ids = await asyncio.gather(*(client.place("AAPL", "BUY", 1) for _ in range(20)))
                for coid in ids:
                    await client.wait_for_order(coid, "filled", timeout=20)
                seq = await settled_equal(client, service.endpoints.router)
                assert client.repaired > 0, "no gap was forced: the test proves nothing"
                assert client.resyncs == 1  # repaired by `events`, never by starting over
                assert client.state == journal_state(service.data_dir, seq)
                (position,) = client.positions("burst")
                assert position.quantity == 20
            finally:
                await client.close()

        asyncio.run(scenario())


def test_a_dead_service_is_detected_and_following_resumes_after_restart(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path / "data")
    service.start()
    try:

        async def scenario() -> None:
            client = await AsyncClient.connect(service.data_dir, strategy_id="phoenix", heartbeat_timeout=1.5)
            changes: list[bool] = []
            client.on_connection(changes.append)
            try:
                first = await client.place("AAPL", "BUY", 5)
                await client.wait_for_order(first, "filled", timeout=10)
                assert client.connected
                old_pub = service.endpoints.pub
                service.kill()
                await async_wait_until(lambda: not client.connected, timeout=5, what="silence noticed")
                await asyncio.to_thread(service.start)  # same data dir, new ports
                assert service.endpoints.pub != old_pub
                await async_wait_until(lambda: client.connected, timeout=15, what="following again")
                assert changes == [False, True] and client.resyncs == 2
                second = await client.place("AAPL", "SELL", 5)
                await client.wait_for_order(second, "filled", timeout=10)
                await settled_equal(client, service.endpoints.router)
                (position,) = client.positions("phoenix")
                assert (position.quantity, position.status) == (0, "closed")
            finally:
                await client.close()

        asyncio.run(scenario())
    finally:
        service.stop()
