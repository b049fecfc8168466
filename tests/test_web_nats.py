"""`oms web --nats URL,URL,URL/STREAM`: the blotter following a JetStream mirror on a real three-node
cluster (R3), fed by a real `oms run --mirror ... --replicas 3` while orders flow. The node the web app
is connected to is killed, and the stream's leader changes (the same kill when that node led the
stream, else the leader steps down); the web app's `/state.json` ends equal to the journal's fold, its
pages stay read-only, and commands are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from adapters.nats.local_server import LocalNatsCluster
from events.reader import JournalReader
from oms.cli import main
from oms.client import AsyncClient
from oms.client.jetstream import JetStreamClient
from oms.client.jetstream_wire import settings_from
from oms.client.render import json_text
from oms.state.fold import fold
from oms.state.queries import select_orders, select_positions
from oms.web.app import build_app
from oms.web.intake import Intake
from oms.web.live import LiveFeed
from oms.web.security import Guard
from tests.client_helpers import ServiceProcess
from tests.nats_helpers import new_stream, require_nats_server, step_down, stream_last_seq
from tests.waiting import wait_until
from tests.web_helpers import WebProcess, http

WEB_CLIENT = "oms-jetstream-client"  # the NATS connection name of the web app's follower


class OrderFlow:
    """Orders placed and filled one after another in a thread, until `stop()`."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.placed = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> OrderFlow:
        self._thread.start()
        return self

    def _run(self) -> None:
        async def flow() -> None:
            async with await AsyncClient.connect(self.data, strategy_id="webn") as client:
                while not self._stop.is_set():
                    side: Literal["BUY", "SELL"] = "BUY" if self.placed % 3 else "SELL"
                    coid = await client.place("AAPL", side, 1 + self.placed % 4)
                    await client.wait_for_order(coid, "filled", timeout=10)
                    self.placed += 1

        try:
            asyncio.run(flow())
        except BaseException as exc:
            self.error = exc

    def more(self, count: int) -> None:
        target = self.placed + count
        wait_until(lambda: self.placed >= target or self.error, 30, 0.02, f"{count} more orders filled")
        assert self.error is None, self.error

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(20)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalNatsCluster]:
    with LocalNatsCluster(tmp_path / "nats", binary=require_nats_server()) as running:
        yield running


def web_state(web: WebProcess, strategy: str = "") -> dict[str, Any]:
    status, body = http("GET", web.base + "state.json" + (f"?strategy={strategy}" if strategy else ""))
    assert status == 200, body
    return body


def following(web: WebProcess) -> None:
    """The web app's seq moves on (orders are flowing)."""
    seen = web_state(web)["seq"]
    wait_until(lambda: web_state(web)["seq"] > seen, 60, 0.05, "the web app following on")


def fold_as_json(journal: Path, seq: int, strategy: str | None = None) -> dict[str, Any]:
    """What `/state.json` must say at `seq`, from the journal's own fold (not the code under test)."""
    state = fold(JournalReader(journal).read(1, seq))
    body = {"seq": seq, "orders": select_orders(state, strategy, False),
            "positions": select_positions(state, strategy, False)}  # fmt: skip
    decoded: dict[str, Any] = json.loads(json_text(body))
    return decoded


def test_the_web_blotter_follows_a_mirror_through_a_leader_kill_and_the_loss_of_its_node(
    tmp_path: Path, cluster: LocalNatsCluster
) -> None:
    stream = new_stream()
    data = tmp_path / "data"
    journal = data / "journal"
    service = ServiceProcess(data, "--mirror", f"{cluster.urls}/{stream}", "--replicas", "3")
    service.start()
    web = WebProcess(tmp_path, "--nats", f"{cluster.urls}/{stream}")
    flow = OrderFlow(data)
    try:
        wait_until(lambda: cluster.leader_of(stream), 30, 0.05, "the stream made, with a leader")
        flow.start().more(3)
        web.start()
        status, health = http("GET", web.base + "healthz")
        assert status == 200 and health["following"] == f"{cluster.urls}/{stream}" and health["ready"]
        wait_until(lambda: web_state(web)["orders"], 20, 0.05, "the web app showing orders")

        leader = cluster.index_of(cluster.leader_of(stream) or "")
        connected = cluster.connected_to(WEB_CLIENT)
        assert connected is not None
        cluster.kill(connected)  # kill -9 of the web app's node while orders flow (the leader, if it led)
        flow.more(3)
        wait_until(lambda: cluster.connected_to(WEB_CLIENT) not in (None, connected), 60, 0.05,
                   "the web app on another node")  # fmt: skip
        old = cluster.node_name(leader)
        import nats.errors  # installed: the cluster fixture skips the test otherwise

        def another_leader() -> bool:
            """A leader that survived (the web app's node was another) is asked to hand over (the
            JetStream API, not the code under test), again if the vote gives it back."""
            now = cluster.leader_of(stream)
            if now == old and connected != leader:
                with contextlib.suppress(nats.errors.Error):  # no answer while electing: asked again
                    asyncio.run(step_down(",".join(n.url for n in cluster.nodes if n.alive), stream))
            return now not in (None, old)

        wait_until(another_leader, 60, 0.5, "a new stream leader")
        following(web)
        flow.more(3)
        flow.stop()
        assert flow.error is None, flow.error

        last = JournalReader(journal).last_seq()
        wait_until(lambda: stream_last_seq(cluster.urls, stream) >= last, 60, 0.05, "the stream caught up")
        wait_until(lambda: web_state(web)["seq"] >= last, 60, 0.05, f"the web app at seq {last}")
        shown = web_state(web)
        assert shown == fold_as_json(journal, shown["seq"])
        mine = web_state(web, "webn")  # one read, compared at its own seq
        assert mine["seq"] >= last and mine == fold_as_json(journal, mine["seq"], "webn")
        assert len(mine["orders"]) >= flow.placed  # every order of the flow is the strategy's
        assert len(shown["orders"]) >= flow.placed >= 6 and shown["positions"]

        # read-only: no command buttons, and a command is refused and changes nothing
        status, page = http("GET", web.base)
        assert (
            status == 200 and "working orders" in page["text"] and "kill switch</button>" not in page["text"]
        )
        headers = {"X-OMS-View": "live", "Origin": web.base.rstrip("/")}
        status, refused = http("POST", web.base + "kill-switch?engaged=1", headers=headers)
        assert (status, refused["error"]["code"]) == (403, "commands_disabled")
        status, health = http("GET", web.base + "healthz")
        assert status == 200 and health["kill_switch"] is False and health["followed"]
    finally:
        flow.stop()
        web.stop()
        service.stop()


def test_a_web_app_following_a_mirror_refuses_commands_even_when_its_guard_allows_them() -> None:
    """`oms web` never allows them with --nats (below); the app refuses them on its own too."""
    import socket

    import uvicorn

    token = "t" * 24
    mirror = JetStreamClient(settings_from("nats://127.0.0.1:1/S"))  # never followed: no server needed
    guard = Guard("127.0.0.1", True, token=token, token_given=True)
    app = build_app(LiveFeed(mirror), [], guard, Intake(None, None))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, what="uvicorn to start")
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        headers = {"X-OMS-Token": token, "X-OMS-View": "live", "Origin": base}
        for path in ("/kill-switch?service=nats://127.0.0.1:1/S", "/orders/x-1/cancel?account=DU1"):
            status, body = http("POST", base + path, headers=headers)
            assert (status, body["error"]["code"]) == (403, "read_only"), path
            assert "nats://127.0.0.1:1/S, which takes no commands" in body["error"]["message"]
    finally:
        server.should_exit = True
        thread.join(10)


def test_oms_web_with_nats_refuses_commands_intake_and_bad_urls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    web = ["web", "--listen", "127.0.0.1:0", "--nats"]
    for extra in (["--allow-commands"], ["--intake", str(tmp_path / "intake.toml")], ["--no-service"]):
        assert main([*web, "nats://127.0.0.1:1/S", *extra]) == 2
        assert "--nats follows a mirror, which takes no commands" in capsys.readouterr().err
    assert main([*web, "nats://a:1,http://b:2/S"]) == 2
    assert "must start with nats://" in capsys.readouterr().err
