"""The quick start of docs/scaling.md as a test: `oms run --mirror nats://...`, orders placed through the
service, followed from another process through JetStream only (`JetStreamClient`, `oms tail --nats`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.nats.connect import mirror_config
from adapters.nats.local_server import LocalNatsServer
from adapters.nats.mirror import Mirror
from events.reader import JournalReader
from events.snapshots import write_snapshot
from oms.client import AsyncClient, ServiceUnavailable
from oms.client.jetstream import JetStreamClient, fetch_snapshot
from oms.client.jetstream_wire import SNAPSHOT_OBJECT, snapshot_bucket
from oms.state.codec import encode_state
from oms.state.fold import fold
from tests.client_helpers import REPO, ServiceProcess, journal_state, running_service
from tests.nats_helpers import nats_server, new_stream, wait_mirrored, write_journal
from tests.test_nats_mirror import mirror_until
from tests.waiting import async_wait_until, wait_until

STREAM = new_stream()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNatsServer]:
    with nats_server(tmp_path_factory.mktemp("nats")) as running:
        yield running


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, server: LocalNatsServer) -> Iterator[ServiceProcess]:
    data_dir = tmp_path_factory.mktemp("mirrored") / "data"
    mirror = f"{server.url}/{STREAM}"
    with running_service(data_dir, "--mirror", mirror, "--snapshot-every", "7") as running:
        yield running


async def trade(service: ServiceProcess, symbol: str, quantity: int) -> int:
    """A round trip through the service; returns the journal's seq after it."""
    async with await AsyncClient.connect(service.data_dir, strategy_id="js") as client:
        buy = await client.place(symbol, "BUY", quantity)
        await client.wait_for_order(buy, "filled", timeout=10)
        sell = await client.place(symbol, "SELL", quantity)
        await client.wait_for_order(sell, "filled", timeout=10)
        return client.seq


def test_orders_and_positions_are_followed_through_jetstream(
    server: LocalNatsServer, service: ServiceProcess
) -> None:
    wait_mirrored(server.url, STREAM, 1)  # the service's first events, mirrored: the stream exists

    async def scenario() -> None:
        follower = await JetStreamClient.connect(f"{server.url}/{STREAM}")
        seen: list[str] = []
        follower.on_order(lambda order: seen.append(order.status) if order.strategy_id == "js" else None)
        try:
            seq = await trade(service, "AAPL", 10)
            await follower.wait_for_seq(seq, timeout=20)
            assert follower.state == journal_state(service.data_dir, follower.seq)
            filled = [o for o in follower.orders("js") if o.status == "filled"]
            assert len(filled) == 2
            await async_wait_until(
                lambda: any(p.status == "closed" for p in follower.positions("js")), what="closed"
            )
            assert "filled" in seen
        finally:
            await follower.close()

    asyncio.run(scenario())


def test_a_late_joiner_starts_from_the_mirrored_snapshot(
    server: LocalNatsServer, service: ServiceProcess
) -> None:
    seq = asyncio.run(trade(service, "MSFT", 4))
    wait_mirrored(server.url, STREAM, seq)
    wait_until(lambda: mirror_status(service.data_dir).get("snapshot_seq", 0) > 0, what="a mirrored snapshot")

    async def scenario() -> None:
        late = await JetStreamClient.connect(f"{server.url}/{STREAM}")
        try:
            await late.wait_for_seq(seq, timeout=20)
            assert late.snapshot_seq > 0
            assert late.state == journal_state(service.data_dir, late.seq)
        finally:
            await late.close()
        scratch = await JetStreamClient.connect(f"{server.url}/{STREAM}", use_snapshot=False)
        try:
            await scratch.wait_for_seq(seq, timeout=20)
            assert scratch.snapshot_seq == 0
            assert scratch.state == journal_state(service.data_dir, scratch.seq)
        finally:
            await scratch.close()

    asyncio.run(scenario())


def mirror_status(data_dir: Path) -> dict[str, Any]:
    """DATA_DIR/mirror.json, or {} before the mirror's first report."""
    path = data_dir / "mirror.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_oms_tail_follows_the_mirror(
    server: LocalNatsServer, service: ServiceProcess, tmp_path: Path
) -> None:
    url = f"{server.url}/{STREAM}"
    command = [sys.executable, "-m", "oms", "tail", "--nats", url, "--json", "--count", "3"]
    err = tmp_path / "tail.err"
    with open(err, "w") as stderr:
        tail = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        wait_until(lambda: "following from seq" in err.read_text(), 30, 0.02, "tail to start following")
        asyncio.run(trade(service, "IBM", 1))
        out, _ = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 0, err.read_text()
    lines = out.splitlines()
    assert len(lines) == 3 and all(line.startswith('{"seq":') for line in lines)


def test_a_stream_no_mirror_made_is_reported(server: LocalNatsServer) -> None:
    with pytest.raises(ServiceUnavailable, match="no stream NOSUCH: is the mirror running"):
        asyncio.run(JetStreamClient.connect(f"{server.url}/NOSUCH"))


def test_oms_tail_without_a_server_says_so(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "oms", "tail", "--nats", "nats://127.0.0.1:1/OMS", "--count", "1"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "no mirror at nats://127.0.0.1:1/OMS" in done.stderr


def test_a_snapshot_replaced_while_it_is_read_is_read_again(server: LocalNatsServer, tmp_path: Path) -> None:
    """The object store's get waits for ever for chunks a replacing put removed: reads are bounded."""
    stream = new_stream()
    journal = tmp_path / "j"
    write_journal(journal, 5)
    write_snapshot(journal, 5, encode_state(fold(JournalReader(journal).read())))

    async def scenario() -> None:
        import nats

        config = msgspec.structs.replace(mirror_config(url=server.url, stream=stream), status_interval_s=0.02)
        await mirror_until(Mirror(journal, config), 5, snapshot_seq=5)
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        bucket = snapshot_bucket(stream)
        info = await (await js.object_store(bucket)).get_info(SNAPSHOT_OBJECT)
        await js.purge_stream(f"OBJ_{bucket}", subject=f"$O.{bucket}.C.{info.nuid}")  # the chunks only
        try:
            assert await fetch_snapshot(js, stream, timeout=0.3, attempts=2) is None  # a chunk gone for good
        finally:
            await nc.close()

    asyncio.run(scenario())
