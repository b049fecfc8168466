"""Re-publishing a session over real ZeroMQ sockets: the service's topics and payloads, original seqs."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import msgspec
import pytest
import zmq

from oms.protocol import HEARTBEAT_TOPIC, Heartbeat, Published, event_topic
from oms.service.publisher import route_change
from oms.state.codec import decode_state
from oms.state.fold import fold, step
from oms.state.model import initial_state
from replay.publish import NotLoopback, open_publisher, replay_to
from replay.serve import ReplayRouter
from replay.source import JournalSource
from tests.test_replay_support import explicit_events, write_journal
from tests.waiting import wait_until


@pytest.fixture
def source(tmp_path: Path) -> JournalSource:
    return JournalSource(write_journal(tmp_path / "j", explicit_events()))


def test_republished_events_reach_a_subscriber_in_order_and_complete(source: JournalSource) -> None:
    publisher = open_publisher("tcp://127.0.0.1:0")
    sub: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    try:
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.setsockopt(zmq.LINGER, 0)
        sub.subscribe(b"")
        sub.connect(publisher.endpoint)

        def subscribed() -> bool:  # a PUB drops what it sends before the subscription arrives
            publisher.heartbeat(0)
            return bool(sub.poll(20))

        wait_until(subscribed, what="the subscription to reach the publisher")
        report = replay_to(publisher, source, speed=0)
        assert (report.published, report.first_seq, report.last_seq) == (15, 1, 15)
        received: list[tuple[bytes, bytes]] = []

        def got_everything() -> bool:
            while sub.poll(0):
                received.append(tuple(sub.recv_multipart()))  # type: ignore[arg-type]
            return any(t == HEARTBEAT_TOPIC.encode() and _beat(p) == 15 for t, p in received)

        wait_until(got_everything, what="the closing heartbeat")
    finally:
        sub.close()
        publisher.close()

    messages = [
        (t, msgspec.msgpack.decode(p, type=Published)) for t, p in received if t != HEARTBEAT_TOPIC.encode()
    ]
    expected = []
    state = initial_state()
    for env in source.read():
        state, changes = step(state, env)
        tag = cast(str, env.event.__struct_config__.tag)  # every event class names a str tag
        expected.append((event_topic(tag).encode(), "event", env.seq, env.ts, _wire(env.event)))
        for change in changes:
            kind, topic = route_change(change)
            expected.append((topic.encode(), kind, env.seq, env.ts, _wire(change)))
    assert [(t, m.type, m.seq, m.ts, m.data) for t, m in messages] == expected


def _wire(value: object) -> object:
    """What a subscriber decodes (msgpack has lists, not tuples)."""
    return msgspec.msgpack.decode(msgspec.msgpack.encode(value))


def _beat(payload: bytes) -> int:
    try:
        return msgspec.msgpack.decode(payload, type=Heartbeat).seq
    except msgspec.ValidationError:
        return -1


def test_the_original_pace_is_kept_times_the_speed_factor(source: JournalSource) -> None:
    """With a fake clock: the waits add up to the session's span (14 s between seq 1 and 15) / speed."""
    now = [0.0]
    publisher = open_publisher("inproc://paced")
    try:
        report = replay_to(
            publisher, source, speed=4.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
        )
    finally:
        publisher.close()
    assert report.published == 15
    assert report.seconds == pytest.approx(14 / 4.0)


def test_from_seq_folds_the_start_silently(source: JournalSource) -> None:
    publisher = open_publisher("inproc://from-seq")
    try:
        report = replay_to(publisher, source, speed=0, from_seq=9)
    finally:
        publisher.close()
    assert (report.published, report.first_seq, report.last_seq) == (7, 9, 15)


def test_a_replay_is_never_published_beyond_loopback() -> None:
    with pytest.raises(NotLoopback):
        open_publisher("tcp://0.0.0.0:0")


def test_a_replay_answers_snapshot_and_events_requests_so_a_client_can_follow(source: JournalSource) -> None:
    publisher = open_publisher("inproc://with-router")
    router = ReplayRouter("tcp://127.0.0.1:0", source)
    dealer: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    try:
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(router.endpoint)
        replay_to(publisher, source, speed=0, router=router)

        def ask(request: dict) -> dict:
            dealer.send(msgspec.msgpack.encode(request))
            wait_until(lambda: router.answer(10) > 0, what=f"{request['op']} answered")
            assert dealer.poll(5000)
            return msgspec.msgpack.decode(dealer.recv())

        snapshot = ask({"op": "snapshot", "id": 1})
        assert snapshot["ok"] and snapshot["id"] == 1 and snapshot["result"]["seq"] == 15
        state = decode_state(msgspec.msgpack.encode(snapshot["result"]["state"]))
        assert state == fold(source.read())
        events = ask({"op": "events", "from_seq": 14, "limit": 10})["result"]
        assert [e["seq"] for e in events["events"]] == [14, 15] and events["last_seq"] == 15
        orders = ask({"op": "orders", "open_only": False})["result"]["orders"]
        assert sorted(o["client_order_id"] for o in orders) == ["A1", "B2"]
        refused = ask({"op": "cancel", "client_order_id": "A1"})
        assert not refused["ok"] and refused["error"]["code"] == "unknown_op"
        garbage = ask({"op": "snapshot", "surprise": 1})
        assert not garbage["ok"] and garbage["error"]["code"] == "invalid"
    finally:
        dealer.close()
        router.close()
        publisher.close()
