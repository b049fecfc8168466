"""The mirror on a real three-node JetStream cluster (three nats-server processes on loopback, R3):
kill -9 of the stream's leader, of the node the mirror is connected to, a node stopped and brought back,
two of three lost. Events flow into the journal throughout (a writer process standing in for the
service); a JetStreamClient follows the whole time. After each fault: the stream's last seq is the
journal's, every journal envelope is in the stream once and byte for byte, and the follower's state is
the journal's fold."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.nats.connect import mirror_config
from adapters.nats.local_server import LocalNatsCluster
from adapters.nats.source import NatsSource
from events.reader import JournalReader
from oms.client.jetstream import JetStreamClient
from oms.client.jetstream_wire import (
    MirrorStatus,
    NatsConfigError,
    connect_options,
    read_status,
    redact_url,
    settings_from,
)
from oms.state.fold import fold
from tests.client_helpers import REPO, ServiceProcess
from tests.nats_helpers import (
    ChildProcess,
    journal_payloads,
    mirror_process,
    nats_server,
    new_stream,
    require_nats_server,
    step_down,
    stream_last_seq,
    stream_payloads,
    write_journal,
)
from tests.test_nats_faults import place_orders
from tests.waiting import wait_until

FAST = "[mirror]\nack_timeout_s = 1.0\nstatus_interval_s = 0.2\n"


def test_a_comma_separated_list_names_the_nodes_of_one_cluster() -> None:
    settings = settings_from("nats://a:4222, nats://oms:secret@b:4222,nats://c:4222/OMS_DU1")
    assert settings.servers == ["nats://a:4222", "nats://b:4222", "nats://c:4222"]
    assert (settings.user, settings.password, settings.stream) == ("oms", "secret", "OMS_DU1")
    assert "secret" not in repr(settings) and connect_options(settings)["servers"] == settings.servers
    assert redact_url("nats://u:pw@a:1,nats://b:2") == "nats://u:***@a:1,nats://b:2"
    table = {"url": ["nats://a:1", "nats://b:2"], "replicas": 3}
    config = mirror_config(table, {}, None, "S")
    assert (config.nats.servers, config.replicas) == (["nats://a:1", "nats://b:2"], 3)
    assert mirror_config(table, {}, None, "S", replicas=5).replicas == 5  # the flag over the table
    with pytest.raises(NatsConfigError, match="must start with nats://"):
        settings_from("nats://a:1,b:2")
    with pytest.raises(NatsConfigError, match="replicas must be 1, 3 or 5"):
        mirror_config({}, {}, "nats://a:1", replicas=2)


def test_replicas_other_than_1_3_or_5_are_refused_on_the_command_line() -> None:
    for command in (["mirror", "d", "--replicas", "2"], ["run", "--mirror", "nats://a:1", "--replicas", "4"]):
        run = subprocess.run(
            [sys.executable, "-m", "oms", *command], cwd=REPO, capture_output=True, text=True
        )
        assert run.returncode == 2 and "invalid choice" in run.stderr


def test_three_replicas_on_a_lone_server_stop_the_mirror_with_a_clear_error(tmp_path: Path) -> None:
    write_journal(tmp_path / "data" / "journal", 5)
    with nats_server(tmp_path / "nats") as server:
        argv = [sys.executable, "-m", "oms", "mirror", str(tmp_path / "data"), "--nats", server.url]
        run = subprocess.run([*argv, "--replicas", "3"], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert stream_last_seq(server.url, "OMS") == -1  # nothing made
    assert run.returncode == 1
    assert "refused to create stream OMS with 3 replicas" in run.stderr and "Traceback" not in run.stderr
    status = read_status(tmp_path / "data")
    assert status is not None and "refused to create stream" in status.error


class ThreadFollower:
    """A JetStreamClient on its own event loop in a thread, following while the test kills nodes."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client: JetStreamClient = self._call(JetStreamClient.connect(url))

    def _call(self, coro: object) -> JetStreamClient:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)  # type: ignore[arg-type]

    def equals_the_journal(self, journal: Path, last: int) -> None:
        asyncio.run_coroutine_threadsafe(self.client.wait_for_seq(last, 30), self.loop).result(35)
        assert self.client.seq == last
        assert self.client.state == fold(JournalReader(journal).read())

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.client.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Rig:
    """A cluster, a journal growing in a writer process, `oms mirror --nats URLS --replicas 3` and a
    follower."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cluster = LocalNatsCluster(root / "nats", binary=require_nats_server()).start()
        self.stream = new_stream()
        self.data = root / "data"
        self.journal = self.data / "journal"
        write_journal(self.journal, 50)  # the stream exists (made by the mirror) before the follower joins
        config = root / "mirror.toml"
        config.write_text(FAST)
        self.writer = ChildProcess(root / "writer.log", "tests/nats_writer_child.py", str(self.journal))
        self.mirror = mirror_process(
            root / "mirror.log", self.data, self.cluster.urls, self.stream,
            "--replicas", "3", "--config", str(config), "-v",
        )  # fmt: skip
        self.follower: ThreadFollower | None = None

    @property
    def urls(self) -> str:
        return self.cluster.urls

    def start(self) -> None:
        self.mirror.start()
        self.writer.start()
        self.caught_up()
        self.follower = ThreadFollower(f"{self.urls}/{self.stream}")
        self.flowing()
        self.caught_up()

    def journal_seq(self) -> int:
        return JournalReader(self.journal).last_seq()

    def mirrored_seq(self) -> int:
        return stream_last_seq(self.urls, self.stream)

    def status(self) -> MirrorStatus:
        status = read_status(self.data)
        assert status is not None
        return status

    def leader(self) -> int:
        wait_until(lambda: self.cluster.leader_of(self.stream), 30, 0.05, "a stream leader")
        name = self.cluster.leader_of(self.stream)
        assert name is not None
        return self.cluster.index_of(name)

    def mirror_node(self) -> int:
        name = f"oms-mirror-{self.stream}"
        wait_until(lambda: self.cluster.connected_to(name) is not None, 30, 0.05, "the mirror connected")
        index = self.cluster.connected_to(name)
        assert index is not None
        return index

    def flowing(self, more: int = 300) -> None:
        target = self.journal_seq() + more
        wait_until(lambda: self.journal_seq() >= target, 20, 0.02, f"the journal past {target}")

    def caught_up(self, timeout: float = 40) -> None:
        target = self.journal_seq() - 1
        wait_until(lambda: self.mirrored_seq() >= target, timeout, 0.05, f"the stream past {target}")

    def settled_equal(self) -> int:
        """Stop the writer, let the mirror finish: stream == journal, once each, byte for byte; the
        follower's state == the journal's fold."""
        self.writer.kill()
        last = self.journal_seq()
        wait_until(lambda: self.mirrored_seq() == last, 40, 0.05, f"the stream at the journal's {last}")
        stream = stream_payloads(self.urls, self.stream)
        assert [seq for seq, _ in stream] == list(range(1, last + 1))  # no gap, no duplicate
        assert stream == journal_payloads(self.journal)
        assert self.follower is not None
        self.follower.equals_the_journal(self.journal, last)
        return last

    def close(self) -> None:
        self.writer.kill()
        self.mirror.kill()
        if self.follower is not None:
            self.follower.close()
        self.cluster.stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    running = Rig(tmp_path)
    try:
        running.start()
        yield running
    finally:
        running.close()


def test_kill_9_of_the_stream_leader_while_events_flow(rig: Rig) -> None:
    """Also followed by `oms tail --nats URL,URL,URL/STREAM`: every event once, in seq order, across
    the kill."""
    out = rig.root / "tail.jsonl"
    command = [sys.executable, "-m", "oms", "tail", "--nats", f"{rig.urls}/{rig.stream}", "--json"]
    with out.open("wb") as sink:
        tail = subprocess.Popen(
            [*command, "--count", "4000"], cwd=REPO, stdout=sink, stderr=subprocess.DEVNULL
        )
    try:
        wait_until(lambda: out.read_bytes().count(b"\n") >= 100, 30, 0.05, "oms tail printing")
        leader = rig.leader()
        killed = rig.cluster.node_name(leader)
        rig.cluster.kill(leader)
        rig.flowing(500)
        rig.caught_up()
        wait_until(
            lambda: rig.status().leader not in ("", killed), 20, 0.05, "mirror.json naming the new leader"
        )
        wait_until(
            lambda: killed in behind(rig.status()), 20, 0.05, f"mirror.json naming {killed} not current"
        )
        tail.wait(60)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait(10)
    rig.settled_equal()
    seqs = [json.loads(line)["seq"] for line in out.read_text().splitlines()]
    assert tail.returncode == 0 and len(seqs) == 4000
    assert seqs == list(range(seqs[0], seqs[0] + 4000))


def test_kill_9_of_the_node_the_mirror_is_connected_to(rig: Rig) -> None:
    connected = rig.mirror_node()
    if connected == rig.leader():  # a node that is not also the leader: this fault on its own
        asyncio.run(step_down(rig.urls, rig.stream))
        wait_until(lambda: rig.leader() != connected, 30, 0.05, "another leader")
    rig.cluster.kill(connected)
    rig.flowing(500)
    wait_until(lambda: rig.mirror_node() != connected, 30, 0.05, "the mirror on another node")
    rig.caught_up()
    wait_until(lambda: rig.status().connected and rig.status().lag < 500, 20, 0.05, "a small lag again")
    rig.settled_equal()


def test_a_node_stopped_for_a_while_catches_up_when_it_comes_back(rig: Rig) -> None:
    """The node stopped is the one holding the follower's consumer: the follower goes on too."""
    wait_until(
        lambda: rig.cluster.consumer_hosts(rig.stream, pull=False), 20, 0.05, "the follower's consumer"
    )
    (stopped,) = rig.cluster.consumer_hosts(rig.stream, pull=False).values()
    rig.cluster.stop(stopped)
    rig.flowing(1000)
    rig.caught_up()
    rig.cluster.start(stopped)
    last = rig.settled_equal()
    node = rig.cluster.nodes[stopped]
    wait_until(lambda: local_last_seq(node.monitor("jsz?streams=true"), rig.stream) == last, 30, 0.05,
               "the returned node holding the whole stream")  # fmt: skip


def test_losing_two_of_three_stalls_the_mirror_without_loss_until_quorum_returns(rig: Rig) -> None:
    leader = rig.leader()
    lost = [(leader + 1) % 3, leader]
    for index in lost:
        rig.cluster.kill(index)
    at_kill = rig.journal_seq()  # nothing appended after this can be acknowledged without a majority
    rig.flowing(1000)

    def stalled() -> bool:
        status = rig.status()
        return status.lag >= 1000 and status.mirrored_seq <= at_kill

    wait_until(stalled, 20, 0.05, "mirror.json showing the stalled mirror's lag")
    rig.cluster.start(lost[0])  # a majority again
    rig.caught_up(60)
    rig.settled_equal()


def test_a_replay_reading_the_stream_goes_on_when_the_node_holding_its_consumer_is_killed(rig: Rig) -> None:
    """`oms replay` / `oms archive` on nats://: the source's read survives losing its consumer's node
    (the source makes a new consumer from the first seq it has not handed over)."""
    last = rig.settled_equal()
    before = rig.cluster.consumer_hosts(rig.stream)  # the probe's of settled_equal, not the source's
    source = NatsSource(f"{rig.urls}/{rig.stream}")
    source.BATCH = 50  # many fetches: most after the kill
    try:
        envelopes = source.read(1, last)
        first = [next(envelopes) for _ in range(100)]
        ours = rig.cluster.consumer_hosts(rig.stream).items() - before.items()
        (host,) = {index for _, index in ours}
        rig.cluster.kill(host)
        rest = list(envelopes)
    finally:
        source.close()
    assert [env.seq for env in first + rest] == list(range(1, last + 1))
    assert fold(first + rest) == fold(JournalReader(rig.journal).read())


def behind(status: MirrorStatus) -> set[str]:
    return {replica.name for replica in status.replicas if not replica.current or replica.offline}


def local_last_seq(jsz: object, stream: str) -> int:
    """The last seq of a node's own copy of the stream, from its /jsz."""
    if not isinstance(jsz, dict):
        return -1
    for account in jsz.get("account_details", []):
        for detail in account.get("stream_detail", []):
            if detail.get("name") == stream:
                return int(detail.get("state", {}).get("last_seq", -1))
    return -1


def test_the_real_service_mirrors_on_through_a_kill_9_of_the_leader_while_orders_flow(tmp_path: Path) -> None:
    """`oms run --mirror URL,URL,URL/STREAM --replicas 3`, orders placed while the leader dies; then
    `oms status --json` names the new leader."""
    with LocalNatsCluster(tmp_path / "nats", binary=require_nats_server()) as cluster:
        stream = new_stream()
        data = tmp_path / "data"
        service = ServiceProcess(data, "--mirror", f"{cluster.urls}/{stream}", "--replicas", "3")
        service.start()
        try:
            journal = data / "journal"
            wait_until(lambda: cluster.leader_of(stream), 30, 0.05, "the stream made, with a leader")
            start = JournalReader(journal).last_seq()
            orders = threading.Thread(target=lambda: asyncio.run(place_orders(data, 60, wait=False)))
            orders.start()
            wait_until(lambda: JournalReader(journal).last_seq() > start + 20, 30, 0.02, "orders flowing")
            killed = cluster.leader_of(stream)
            assert killed is not None
            cluster.kill(cluster.index_of(killed))
            orders.join(60)
            assert not orders.is_alive()
            asyncio.run(place_orders(data, 1, wait=True))
            last = JournalReader(journal).last_seq()  # the service journals on (IB's reports): at least this
            wait_until(
                lambda: stream_last_seq(cluster.urls, stream) >= last, 60, 0.05, "the stream caught up"
            )

            def new_leader_shown() -> bool:
                run = subprocess.run(
                    [sys.executable, "-m", "oms", "status", "--json", "--data-dir", str(data)],
                    cwd=REPO, capture_output=True, text=True, timeout=30,
                )  # fmt: skip
                mirror = json.loads(run.stdout)["mirror"]
                return (
                    mirror["cluster"] == "oms" and mirror["leader"] not in ("", killed) and mirror["lag"] == 0
                )

            wait_until(new_leader_shown, 30, 0.1, "oms status naming the new leader, lag 0")
        finally:
            service.stop()  # its last events are mirrored as it stops
        last = JournalReader(journal).last_seq()
        wait_until(
            lambda: stream_last_seq(cluster.urls, stream) == last, 20, 0.05, "the service's last events"
        )
        stream_messages = stream_payloads(cluster.urls, stream)
        assert [seq for seq, _ in stream_messages] == list(range(1, last + 1))
        assert stream_messages == journal_payloads(journal)
