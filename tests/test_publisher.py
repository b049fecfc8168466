"""The PUB side: topics per entity, every message stamped with its event's seq, and a subscriber that
does not read never slows the service."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import zmq

from events.codec import decode
from events.schema import AccountValueReported, Contract, Envelope, OrderStatusReported, UnknownEvent
from oms.protocol import Heartbeat, Published
from oms.service.publisher import Publisher, route_change
from oms.state.model import Account, Order, Position
from tests.test_service_support import Wire, last_seq, running
from tests.waiting import wait_until

BRKB = Contract(symbol="BRK.B", con_id=72063691)
ORDER = Order(
    client_order_id="c-1", strategy_id="s1", account="DU1", contract=BRKB, side="BUY", quantity=Decimal(1)
)
EVENT = OrderStatusReported(
    order_id=1, perm_id=2, client_id=3, status="Submitted", filled=Decimal(0), remaining=Decimal(1)
)


def test_route_change_topics() -> None:
    assert route_change(ORDER) == ("order", "order.s1.c-1")
    pos = Position(key="DU1|72063691", account="DU1", contract=BRKB)
    assert route_change(pos) == ("position", "pos.DU1.BRK_B:72063691")
    spos = Position(key="s1|DU1|72063691", account="DU1", contract=BRKB, strategy_id="s1")
    assert route_change(spos) == ("strategy_position", "spos.s1.DU1.BRK_B:72063691")
    assert route_change(Account(account="DU1")) == ("account", "acct.DU1")


def test_publish_event_and_changes_with_seq() -> None:
    ctx = zmq.Context()
    publisher = Publisher(ctx, "tcp://127.0.0.1:0", 1000, None)
    sub = ctx.socket(zmq.SUB)
    sub.subscribe(b"")
    sub.connect(publisher.endpoint)
    wait_until(lambda: _heartbeat_arrives(publisher, sub), what="subscription live")
    assert msgspec.msgpack.decode(sub.recv_multipart()[1], type=Heartbeat).seq == 0
    publisher.publish(Envelope(seq=41, ts=5, event=EVENT), (ORDER,))
    messages: list[tuple[bytes, Published]] = []
    while len(messages) < 2 and sub.poll(2000):
        topic, payload = sub.recv_multipart()
        if topic != b"hb":
            messages.append((topic, msgspec.msgpack.decode(payload, type=Published)))
    assert [t for t, _ in messages] == [b"evt.order_status", b"order.s1.c-1"]
    assert all(m.seq == 41 and m.ts == 5 for _, m in messages)
    assert messages[0][1].data["kind"] == "order_status" and messages[1][1].data["client_order_id"] == "c-1"
    assert publisher.last_seq == 41
    publisher.close()
    ctx.destroy(linger=0)


def test_unknown_event_is_published_verbatim() -> None:
    """An event kind from a newer writer goes out as it was logged (as the codec writes it back), not as
    the `UnknownEvent` placeholder this version decodes it to."""
    ctx = zmq.Context()
    publisher = Publisher(ctx, "tcp://127.0.0.1:0", 1000, None)
    sub = ctx.socket(zmq.SUB)
    sub.subscribe(b"evt.")
    sub.connect(publisher.endpoint)
    original = {"kind": "margin_call", "account": "DU1", "amount": 12.5, "legs": [1, 2]}
    raw = msgspec.msgpack.encode({"seq": 7, "ts": 9, "event": original, "v": 1})
    env = decode(raw)
    assert isinstance(env.event, UnknownEvent)
    wait_until(lambda: _events_wanted(publisher), what="subscription live")
    publisher.publish(env, ())
    assert sub.poll(5000)
    topic, payload = sub.recv_multipart()
    assert topic == b"evt.margin_call"
    message = msgspec.msgpack.decode(payload)
    assert message == {"type": "event", "seq": 7, "ts": 9, "data": original}
    assert msgspec.msgpack.encode(message["data"]) == env.event.raw
    publisher.close()
    ctx.destroy(linger=0)


def _events_wanted(publisher: Publisher) -> bool:
    publisher.refresh_subscriptions()
    return publisher._wanted["event"]


def test_slow_subscriber_does_not_stall_publishing(tmp_path: Path) -> None:
    with running(tmp_path, pub_hwm=100) as service:
        ctx = zmq.Context()
        stuck = ctx.socket(zmq.SUB)  # subscribes, then never reads
        stuck.setsockopt(zmq.RCVHWM, 10)
        stuck.subscribe(b"")
        stuck.connect(service.endpoints.pub)
        fast = Wire(service.endpoints.router, service.endpoints.pub)
        inner = service.service
        assert inner is not None
        count = 20_000
        start_seq = last_seq(service)

        def burst() -> None:
            for i in range(count):
                inner.pipeline.append(_account_value(i))

        service.call(burst)  # would time out if a full subscriber queue blocked the publisher
        wait_until(lambda: service.call(lambda: inner.publisher.last_seq) >= start_seq + count, timeout=30)
        assert fast.ok({"op": "ping"})["ready"] is True  # the service still answers
        fast.wait_pub(lambda t, m: t == "hb" and m["seq"] >= start_seq + count, what="heartbeat after burst")
        received = 0
        while stuck.poll(0):
            stuck.recv_multipart()
            received += 1
        assert received < count  # the stuck subscriber lost messages (at its HWM) instead of stalling us
        fast.close()
        ctx.destroy(linger=0)


def _account_value(i: int) -> AccountValueReported:
    return AccountValueReported(account="DU123456", key="Probe", value=str(i), currency="USD")


def _heartbeat_arrives(publisher: Publisher, sub: zmq.Socket[bytes]) -> bool:
    publisher.heartbeat(0)
    return bool(sub.poll(10))


def _changes_wanted(publisher: Publisher) -> bool:
    publisher.refresh_subscriptions()
    return publisher._changes_wanted


def test_unsubscribed_kinds_are_not_sent() -> None:
    ctx = zmq.Context()
    publisher = Publisher(ctx, "tcp://127.0.0.1:0", 1000, None)
    sub = ctx.socket(zmq.SUB)
    sub.subscribe(b"evt.")
    sub.subscribe(b"hb")
    sub.connect(publisher.endpoint)
    wait_until(lambda: _heartbeat_arrives(publisher, sub), what="subscription live")
    sub.recv_multipart()
    publisher.publish_batch([(Envelope(seq=1, ts=1, event=EVENT), (ORDER,))])
    assert publisher.sent == 1  # the order change was not even encoded: nobody subscribed to `order.`
    sub.subscribe(b"order.s1.")
    wait_until(lambda: _changes_wanted(publisher), what="new subscription")
    publisher.publish_batch([(Envelope(seq=2, ts=2, event=EVENT), (ORDER,))])
    assert publisher.sent == 3
    topics: list[bytes] = []
    while len(topics) < 3 and sub.poll(2000):
        topics.append(sub.recv_multipart()[0])
    assert topics == [b"evt.order_status", b"evt.order_status", b"order.s1.c-1"]
    sub.close()
    wait_until(lambda: not _changes_wanted(publisher), what="unsubscribed")
    publisher.close()
    ctx.destroy(linger=0)


def test_closing_a_publisher_as_its_subscriber_leaves_never_stalls_the_context() -> None:
    """libzmq sends monitor events blocking from the context's I/O thread: a peer's goodbye reaching a
    monitor whose reader is already closed used to stall every socket of the context (replays and
    probes sharing `Context.instance()` then timed out)."""
    ctx = zmq.Context()
    try:
        for _ in range(20):
            publisher = Publisher(ctx, "tcp://127.0.0.1:0", 0, None)
            sub = ctx.socket(zmq.SUB)
            sub.linger = 0
            sub.subscribe(b"")
            sub.connect(publisher.endpoint)

            def accepted(p: Publisher = publisher) -> bool:
                return p.subscribers == 1

            wait_until(accepted, what="the subscriber to be accepted")
            sub.close()
            publisher.close()
            assert _round_trip(ctx), "the context's I/O thread is stalled"
    finally:
        ctx.destroy(linger=0)


def _round_trip(ctx: zmq.Context) -> bool:
    """One message from a fresh DEALER to a fresh ROUTER over TCP on `ctx`, within 5 s."""
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    try:
        router.bind("tcp://127.0.0.1:0")
        dealer.connect(router.getsockopt_string(zmq.LAST_ENDPOINT))
        dealer.send(b"ping")
        return bool(router.poll(5000))
    finally:
        router.close(linger=0)
        dealer.close(linger=0)
