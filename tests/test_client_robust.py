"""The follower against a peer that misbehaves in ways the real service never does on purpose: garbage on
PUB, a gap it must fetch, a range the peer cannot serve. The peer is a raw ROUTER + PUB speaking the
protocol over real sockets (the real service cannot be made to send garbage)."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

import msgspec
import pytest
import zmq
import zmq.asyncio

from events import codec
from events.schema import AnyEvent, Contract, Envelope, ExecutionReported, OrderRequested, OrderSent, kind_of
from oms.client import AsyncClient
from oms.protocol import Heartbeat, Published, event_topic
from oms.state.codec import encode_state
from oms.state.fold import fold
from tests.waiting import async_wait_until

AAPL = Contract(symbol="AAPL", con_id=265598)


def order_events(n: int) -> list[AnyEvent]:
    events: list[AnyEvent] = []
    for i in range(n):
        coid = f"peer-{i}"
        events += [
            OrderRequested(client_order_id=coid, strategy_id="peer", account="DU1", contract=AAPL, side="BUY",
                           quantity=Decimal(1)),
            OrderSent(client_order_id=coid, order_id=i + 1, client_id=1),
            ExecutionReported(exec_id=f"e{i}.01", order_id=i + 1, perm_id=100 + i, client_id=1,
                              order_ref=coid, account="DU1", contract=AAPL, side="BOT", shares=Decimal(1),
                              price=10.0, cum_qty=Decimal(1)),
        ]  # fmt: skip
    return events


class Peer:
    """Serves ping, snapshot (the fold of what it has logged) and events; publishes what it is told."""

    def __init__(self, events: list[AnyEvent]) -> None:
        self.logged = [Envelope(seq, seq, event) for seq, event in enumerate(events, 1)]
        self.serve_events = True
        self.ctx = zmq.asyncio.Context()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub_endpoint = f"tcp://127.0.0.1:{self.pub.bind_to_random_port('tcp://127.0.0.1')}"
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router_endpoint = f"tcp://127.0.0.1:{self.router.bind_to_random_port('tcp://127.0.0.1')}"
        self.task = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        while True:
            identity, payload = await self.router.recv_multipart()
            request = msgspec.msgpack.decode(payload)
            op, seq = request["op"], len(self.logged)
            result: Any
            if op == "ping":
                result = {"ready": True, "version": "peer"}
            elif op == "snapshot":
                result = {"seq": seq, "state": msgspec.Raw(encode_state(fold(self.logged)))}
            else:
                first, limit = request["from_seq"], request["limit"]
                have = self.logged[first - 1 : first - 1 + limit] if self.serve_events else []
                envelopes = [msgspec.Raw(codec.encode(e)) for e in have]
                result = {"events": envelopes, "next_seq": first + len(have), "last_seq": seq}
            reply = {"id": request["id"], "ok": True, "op": op, "seq": seq, "result": result}
            await self.router.send_multipart([identity, msgspec.msgpack.encode(reply)])

    async def publish(self, seq: int) -> None:
        env = self.logged[seq - 1]
        message = Published("event", env.seq, env.ts, env.event)
        await self.pub.send_multipart(
            [event_topic(kind_of(env.event)).encode(), msgspec.msgpack.encode(message)]
        )

    def heartbeat(self) -> None:
        payload = msgspec.msgpack.encode(Heartbeat(seq=len(self.logged), ts=0))
        zmq.Socket.shadow(self.pub.underlying).send_multipart([b"hb", payload])

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.pub.close()
        self.router.close()
        self.ctx.term()


async def beat_until(peer: Peer, condition: Any, what: str) -> None:
    """Heartbeats (each can reveal a gap or wake a silent-service wait) until the condition holds."""

    def beat_unless_done() -> bool:
        if condition():
            return True
        peer.heartbeat()
        return False

    await async_wait_until(beat_unless_done, timeout=10, interval=0.01, what=what)


def test_garbage_gaps_and_unservable_ranges_end_in_a_fresh_snapshot_never_a_dead_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        events = order_events(4)  # 12 events
        peer = Peer(events[:3])
        client = await AsyncClient.connect(router=peer.router_endpoint, pub=peer.pub_endpoint)
        try:
            assert client.seq == 3 and client.resyncs == 1
            # A gap: seq 5 published, 4 and 6 never; the follower fetches them with `events`.
            peer.logged = [Envelope(s, s, e) for s, e in enumerate(events[:6], 1)]
            await peer.publish(5)
            await beat_until(peer, lambda: client.seq == 6, "the heartbeat's gap to be repaired")
            assert client.repaired in (2, 3) and client.resyncs == 1  # 3 if seq 5 beat the subscription

            # Garbage on an event topic: logged, and the client starts over from a snapshot.
            with caplog.at_level(logging.ERROR, logger="oms.client.follower"):
                await peer.pub.send_multipart([b"evt.order_requested", b"\xc1 not msgpack"])
                peer.logged = [Envelope(s, s, e) for s, e in enumerate(events[:9], 1)]
                await beat_until(peer, lambda: client.resyncs == 2 and client.seq == 9, "a fresh snapshot")
            assert "following the service failed" in caplog.text

            # A range the peer cannot serve: no endless loop, a snapshot instead.
            peer.serve_events = False
            peer.logged = [Envelope(s, s, e) for s, e in enumerate(events, 1)]
            await beat_until(peer, lambda: client.seq == 12, "a snapshot after an unservable gap")
            assert client.resyncs == 3
            assert client.state == fold(peer.logged) and len(client.orders("peer")) == 4
        finally:
            await client.close()
            await peer.close()

    asyncio.run(scenario())
