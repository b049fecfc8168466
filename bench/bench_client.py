"""The strategy client: how fast it follows (decode + fold of published events) and what a command costs.

1. follow: N events published on a PUB socket; the client (subscribed, snapshot taken) applies them in
   seq order with `oms.state.fold.step`. Beside it, a raw pyzmq SUB receiving the same N messages (no decode).
2. round trip against a real `oms run`: `ping` and `place` (acknowledged once durable) through the
   client, beside a raw DEALER `ping` to the same service.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from events import codec
from events.schema import (
    AnyEvent,
    CommissionReported,
    Contract,
    Envelope,
    ExecutionReported,
    OrderRequested,
    OrderSent,
    OrderStatusReported,
    kind_of,
)
from oms.client import AsyncClient
from oms.protocol import ENDPOINTS_FILE, Endpoints, Published, event_topic
from oms.state.codec import encode_state
from oms.state.model import initial_state

AAPL = Contract(symbol="AAPL", con_id=265598)


def session(orders: int) -> list[AnyEvent]:
    """Six events per order: the intent, IB's ids, the ack, the fill, its commission, the final status."""
    events: list[AnyEvent] = []
    for i in range(orders):
        coid, perm = f"bench-{i}", 1_000_000 + i
        events += [
            OrderRequested(client_order_id=coid, strategy_id="bench", account="DU1", contract=AAPL,
                           side="BUY", quantity=Decimal(1)),
            OrderSent(client_order_id=coid, order_id=i + 1, client_id=1),
            OrderStatusReported(order_id=i + 1, perm_id=perm, client_id=1, status="Submitted",
                                filled=Decimal(0), remaining=Decimal(1)),
            ExecutionReported(exec_id=f"e{i}.01", order_id=i + 1, perm_id=perm, client_id=1, order_ref=coid,
                              account="DU1", contract=AAPL, side="BOT", shares=Decimal(1), price=190.0,
                              cum_qty=Decimal(1)),
            CommissionReported(exec_id=f"e{i}.01", commission=1.0, currency="USD"),
            OrderStatusReported(order_id=i + 1, perm_id=perm, client_id=1, status="Filled",
                                filled=Decimal(1), remaining=Decimal(0), avg_fill_price=190.0),
        ]  # fmt: skip
    return events


def frames(events: list[AnyEvent]) -> list[tuple[bytes, bytes]]:
    encode = msgspec.msgpack.encode
    return [
        (event_topic(kind_of(e)).encode(), encode(Published("event", seq, seq, e)))
        for seq, e in enumerate(events, 1)
    ]


async def follow_rate(events: list[AnyEvent]) -> tuple[float, float, int]:
    """(raw SUB msgs/s, client events/s, events the client fetched to fill gaps) over the same messages."""
    messages = frames(events)
    ctx = zmq.asyncio.Context()
    pub = ctx.socket(zmq.PUB)
    pub.sndhwm = 0  # unlimited: this measures applying, not loss
    pub_endpoint = f"tcp://127.0.0.1:{pub.bind_to_random_port('tcp://127.0.0.1')}"
    router = ctx.socket(zmq.ROUTER)
    router_endpoint = f"tcp://127.0.0.1:{router.bind_to_random_port('tcp://127.0.0.1')}"
    serving = asyncio.create_task(serve(router, events))

    publish: zmq.Socket[bytes] = zmq.Socket.shadow(pub.underlying)  # as fast as libzmq takes them
    raw = ctx.socket(zmq.SUB)
    raw.subscribe(b"")
    raw.connect(pub_endpoint)
    await wait_subscribed(pub, raw)
    receive: zmq.Socket[bytes] = zmq.Socket.shadow(raw.underlying)
    start = time.perf_counter()
    for message in messages:
        publish.send_multipart(message)
    for _ in messages:
        receive.recv_multipart()
    raw_rate = len(messages) / (time.perf_counter() - start)
    raw.close()

    client = await AsyncClient.connect(router=router_endpoint, pub=pub_endpoint)
    start = time.perf_counter()
    for message in messages:
        publish.send_multipart(message)
    while client.seq < len(messages):
        await asyncio.sleep(0.001)
    client_rate = len(messages) / (time.perf_counter() - start)
    repaired = client.repaired
    assert len(client.orders("bench")) == len(messages) // 6
    await client.close()
    serving.cancel()
    pub.close()
    router.close()
    ctx.term()
    return raw_rate, client_rate, repaired


async def serve(router: zmq.asyncio.Socket, events: list[AnyEvent]) -> None:
    """The minimum of a service: ping, a snapshot of the empty state at seq 0, and `events` (a PUB
    message published before the client's subscription arrived is fetched like any other gap)."""
    encode = msgspec.msgpack.encode
    while True:
        identity, payload = await router.recv_multipart()
        request = msgspec.msgpack.decode(payload)
        op = request["op"]
        if op == "ping":
            result: dict[str, Any] = {"ready": True, "version": "bench"}
        elif op == "snapshot":
            result = {"seq": 0, "state": msgspec.Raw(encode_state(initial_state()))}
        else:
            first = request["from_seq"]
            batch = range(first, min(first + request["limit"], len(events) + 1))
            envelopes = [msgspec.Raw(codec.encode(Envelope(seq, seq, events[seq - 1]))) for seq in batch]
            result = {"events": envelopes, "next_seq": batch.stop, "last_seq": len(events)}
        reply = {"id": request["id"], "ok": True, "op": op, "seq": 0, "result": result}
        await router.send_multipart([identity, encode(reply)])


async def wait_subscribed(pub: zmq.asyncio.Socket, sub: zmq.asyncio.Socket) -> None:
    """PUB drops until the subscription arrives: probe until one gets through, then drain."""
    while True:
        await pub.send_multipart([b"probe", b""])
        if await sub.poll(10):
            await sub.recv_multipart()
            return


def percentiles(samples: list[float]) -> str:
    qs = statistics.quantiles(samples, n=100)
    return f"p50 {qs[49] * 1e6:8.0f} us   p99 {qs[98] * 1e6:8.0f} us"


def timed(count: int, call: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def round_trips(count: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-client-"))
    service = subprocess.Popen(
        [sys.executable, "-m", "oms", "run", "--data-dir", str(folder), "--pub", "tcp://127.0.0.1:0",
         "--router", "tcp://127.0.0.1:0", "--max-notional", "1e12", "--max-quantity", "1e9"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        from oms.client import Client

        deadline = time.monotonic() + 30
        while not (folder / ENDPOINTS_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # a benchmark, not a test: polling for a file is fine here
        router = msgspec.json.decode((folder / ENDPOINTS_FILE).read_bytes(), type=Endpoints).router
        with zmq.Context() as ctx, ctx.socket(zmq.DEALER) as dealer:
            dealer.connect(router)
            ping = msgspec.msgpack.encode({"op": "ping"})

            def raw(payload: bytes) -> dict[str, Any]:
                dealer.send(payload)
                reply: dict[str, Any] = msgspec.msgpack.decode(dealer.recv())
                return reply

            while not raw(ping)["result"]["ready"]:
                time.sleep(0.05)
            raw_pings = timed(count, lambda: raw(ping))
            ids = iter(range(count))
            place = {"op": "place", "contract": {"symbol": "AAPL"}, "side": "BUY", "quantity": 1}
            raw_places = timed(
                count, lambda: raw(msgspec.msgpack.encode({**place, "client_order_id": f"raw-{next(ids)}"}))
            )
        with Client.connect(folder, strategy_id="bench") as client:
            pings = timed(count, client.ping)
            places = timed(count, lambda: client.place("AAPL", "BUY", 1))
        print(f"  raw DEALER ping             {percentiles(raw_pings)}")
        print(f"  raw DEALER place            {percentiles(raw_places)}")
        print(f"  client ping                 {percentiles(pings)}")
        print(f"  client place (durable ack)  {percentiles(places)}")
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(20)
        shutil.rmtree(folder, ignore_errors=True)


def main(short: bool) -> None:
    events = session(2_000 if short else 50_000)
    raw_rate, client_rate, repaired = asyncio.run(follow_rate(events))
    print(f"follow: {len(events):,} events")
    print(f"  raw pyzmq SUB (receive only)      {raw_rate:12,.0f} msgs/s")
    print(f"  client (decode + seq + fold)      {client_rate:12,.0f} events/s")
    print(f"  ({repaired} of them fetched over the ROUTER: published before the subscription took effect)")
    print(f"round trips against `oms run` ({200 if short else 2000} each):")
    round_trips(200 if short else 2000)


if __name__ == "__main__":
    main(short="--short" in sys.argv)
