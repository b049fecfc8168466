"""kill -9 of the mirror, of nats-server and of the service (here: a journal writer standing in for it),
in several orders while events flow: afterwards the stream equals the journal, no gap, no duplicate."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.nats.connect import mirror_config
from adapters.nats.local_server import LocalNatsServer
from adapters.nats.mirror import Mirror
from events.reader import JournalReader
from oms.client import AsyncClient
from oms.client.jetstream import JetStreamClient
from oms.client.jetstream_wire import read_status
from oms.state.fold import fold
from tests.client_helpers import ServiceProcess
from tests.nats_helpers import (
    ChildProcess,
    journal_payloads,
    mirror_process,
    nats_server,
    new_stream,
    stream_last_seq,
    stream_payloads,
    write_journal,
)
from tests.waiting import async_wait_until, wait_until

FAST_RESYNC = "[mirror]\nack_timeout_s = 1.0\nstatus_interval_s = 0.2\n"


class Cluster:
    """The three processes of the fault tests, each killable and restartable."""

    def __init__(self, root: Path, server: LocalNatsServer) -> None:
        self.root = root
        self.server = server
        self.stream = new_stream()
        self.journal = root / "data" / "journal"
        self.journal.mkdir(parents=True)
        config = root / "mirror.toml"
        config.write_text(FAST_RESYNC)
        self.writer = ChildProcess(root / "writer.log", "tests/nats_writer_child.py", str(self.journal))
        self.mirror = mirror_process(
            root / "mirror.log", root / "data", server.url, self.stream, "--config", str(config), "-v"
        )

    def journal_seq(self) -> int:
        return JournalReader(self.journal).last_seq()

    def mirrored_seq(self) -> int:
        return stream_last_seq(self.server.url, self.stream)

    def kill(self, name: str) -> None:
        {"mirror": self.mirror.kill, "nats": self.server.kill, "service": self.writer.kill}[name]()

    def restart(self, name: str) -> None:
        if name == "nats":
            self.server.start()
        else:
            {"mirror": self.mirror, "service": self.writer}[name].start()

    def flowing(self, more: int = 300) -> None:
        """Events still flow into the journal (and, with everything up, into the stream)."""
        target = self.journal_seq() + more
        wait_until(lambda: self.journal_seq() >= target, 20, 0.02, f"the journal past {target}")

    def caught_up(self) -> None:
        target = self.journal_seq() - 1
        wait_until(lambda: self.mirrored_seq() >= target, 30, 0.05, f"the stream past {target}")

    def stop_all(self) -> None:
        self.writer.kill()
        self.mirror.kill()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with nats_server(tmp_path / "nats") as server:
        running = Cluster(tmp_path, server)
        try:
            yield running
        finally:
            running.stop_all()


def settled_equal(cluster: Cluster) -> None:
    """Stop the writer, let the mirror finish, then: stream == journal, seq for seq, byte for byte."""
    cluster.writer.kill()
    last = cluster.journal_seq()
    wait_until(lambda: cluster.mirrored_seq() == last, 30, 0.05, f"the stream at the journal's {last}")
    stream = stream_payloads(cluster.server.url, cluster.stream)
    assert [seq for seq, _ in stream] == list(range(1, last + 1))  # no gap, no duplicate
    assert stream == journal_payloads(cluster.journal)


ORDERS = [("mirror", "nats", "service"), ("nats", "service", "mirror"), ("service", "mirror", "nats")]


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_kill_9_one_at_a_time_in_any_order_loses_and_duplicates_nothing(
    cluster: Cluster, order: tuple[str, str, str]
) -> None:
    cluster.writer.start()
    cluster.mirror.start()
    cluster.flowing()
    cluster.caught_up()
    for victim in order:
        cluster.kill(victim)
        if victim != "service":
            cluster.flowing(200)  # the journal grows while the mirror or the server is down
        cluster.restart(victim)
        cluster.flowing(200)
        cluster.caught_up()
    settled_equal(cluster)


def test_kill_9_of_all_three_back_to_back_then_restart_in_reverse(cluster: Cluster) -> None:
    cluster.writer.start()
    cluster.mirror.start()
    cluster.flowing()
    for victim in ("service", "nats", "mirror"):
        cluster.kill(victim)
    for victim in ("mirror", "nats", "service"):
        cluster.restart(victim)
    cluster.flowing()
    cluster.caught_up()
    settled_equal(cluster)


def test_the_mirror_started_before_nats_server_waits_for_it(cluster: Cluster) -> None:
    cluster.server.kill()
    assert cluster.mirrored_seq() == -1  # nobody answers
    cluster.writer.start()
    cluster.mirror.start()
    cluster.flowing()
    cluster.server.start()
    cluster.caught_up()
    settled_equal(cluster)


def test_the_lag_grows_in_the_status_file_while_nats_server_is_down(cluster: Cluster) -> None:
    cluster.writer.start()
    cluster.mirror.start()
    cluster.flowing()
    cluster.caught_up()
    cluster.server.kill()
    cluster.flowing(500)

    def lagging() -> bool:
        status = read_status(cluster.root / "data")
        return status is not None and status.lag >= 500 and not status.connected

    wait_until(lagging, 20, 0.05, "mirror.json to show the lag")
    status = read_status(cluster.root / "data")
    assert status is not None and not status.connected
    assert status.lag == status.journal_seq - status.mirrored_seq >= 500
    cluster.server.start()
    cluster.caught_up()
    settled_equal(cluster)


def test_kill_9_of_the_real_service_running_its_mirror_while_orders_flow(tmp_path: Path) -> None:
    """`oms run --mirror`: the service and its mirror die together, mid-session, and come back."""
    with nats_server(tmp_path / "nats") as server:
        stream = new_stream()
        service = ServiceProcess(tmp_path / "data", "--mirror", f"{server.url}/{stream}")
        service.start()
        try:
            asyncio.run(place_orders(service.data_dir, 3, wait=False))
            service.kill()
            service.start()  # recovers the journal (a torn tail is cut), the mirror resumes after the stream
            asyncio.run(place_orders(service.data_dir, 2, wait=True))
            journal = tmp_path / "data" / "journal"
            wait_until(
                lambda: stream_last_seq(server.url, stream) == JournalReader(journal).last_seq(),
                30, 0.05, "the stream to catch up",
            )  # fmt: skip
        finally:
            service.stop()
        stream_messages = stream_payloads(server.url, stream)
        assert stream_messages == journal_payloads(journal)
        assert [seq for seq, _ in stream_messages] == list(range(1, len(stream_messages) + 1))


async def place_orders(data_dir: Path, count: int, wait: bool) -> None:
    async with await AsyncClient.connect(data_dir, strategy_id="kill") as client:
        for _ in range(count):
            coid = await client.place("AAPL", "BUY", 1)
            if wait:
                await client.wait_for_order(coid, "filled", timeout=10)


def test_a_jetstream_client_follows_on_across_a_kill_9_of_nats_server(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    write_journal(journal, 100)
    with nats_server(tmp_path / "nats") as server:
        stream = new_stream()

        async def scenario() -> None:
            mirror = Mirror(journal, mirror_config(url=server.url, stream=stream))
            task = asyncio.create_task(mirror.run())
            await async_wait_until(lambda: mirror.mirrored_seq == 100, what="the first 100 mirrored")
            client = await JetStreamClient.connect(f"{server.url}/{stream}")
            connections: list[bool] = []
            client.on_connection(connections.append)
            try:
                assert client.seq == 100
                server.restart()  # kill -9, then the same port and store
                write_journal(journal, 150, first_value=101)
                await client.wait_for_seq(250, timeout=20)
                assert client.state == fold(JournalReader(journal).read())
                assert connections[:2] == [False, True]
            finally:
                await client.close()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        asyncio.run(scenario())
