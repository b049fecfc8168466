"""The service end to end, beside raw pyzmq baselines measured in the same run.

1. throughput: events injected through the adapter's sink (journal `group` + fold + PUB) until a
   subscriber in ANOTHER PROCESS has the last one; baseline: the same number of raw PUB->SUB messages.
2. latency at 1,000 events/s: the envelope's receive time to the subscriber's clock; baseline: a raw
   PUB->SUB hop of a timestamped message at the same rate.
3. command round trip: a DEALER in another process sends `place`, waits for the durable ack; baseline: a
   raw DEALER->ROUTER round trip whose server does one write + fsync per request.

The broker is a stand-in that accepts orders (the adapter and IB are measured in bench_adapter); the
events are AccountValueReported with changing values, so each is one event + one account change on PUB.

On 2 shared cores every figure is noisy: the full run repeats each measure (service and its baseline
side by side) and prints the best and the median of the rounds. "loop CPU" is the event-loop thread's
own CPU time per event during the throughput run (journal append + fold + flush + publish), the figure
least disturbed by other processes.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import zmq

from events.schema import AccountValueReported, ConnectionChanged, Contract, ModifyRequested, OrderRequested

EPHEMERAL = "tcp://127.0.0.1:0"
HELPER = "from bench.bench_service import _peer; _peer()"


class _NullBroker:
    """Accepts every command; connects by reporting a connection, as the adapter does."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink

    async def connect(self, timeout: float) -> None:
        self._sink(ConnectionChanged(state="connected", accounts=("DU123456",)))

    async def disconnect(self) -> None:
        return None

    async def place(self, req: OrderRequested) -> int:
        return 0

    async def modify(self, client_order_id: str, order_id: int, req: ModifyRequested) -> None:
        return None

    async def cancel(self, order_id: int) -> None:
        return None

    async def cancel_all(self) -> None:
        return None

    async def reference_price(self, contract: Contract) -> Decimal | None:
        return None  # the benchmark's orders are limit orders: valued at their limit price

    async def describe(self, contract: Contract) -> None:
        return None  # intake then uses the usual size increment and multiplier of the type


def _event(i: int) -> AccountValueReported:
    return AccountValueReported(
        account="DU123456", key="NetLiquidation", value=str(100_000 + i), currency="USD"
    )


# -- the peer process: a subscriber or a requester, told what to do on argv ------------------------------


def _peer() -> None:
    mode, endpoint, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ctx = zmq.Context()
    if mode == "sub":
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, 0)
        for prefix in (b"evt.", b"hb", b"hello", b"raw"):  # events only: one message per event, as raw
            sock.subscribe(prefix)
        sock.connect(endpoint)
        sock.recv_multipart()  # the first message (a heartbeat or "hello"): the subscription is live
        print("ready", flush=True)
        latencies, first, received = [], 0, 0
        while received < count:
            topic, payload = sock.recv_multipart()
            now = time.time_ns()
            if topic in (b"hb", b"hello"):
                continue
            message = msgspec.msgpack.decode(payload)
            if topic.startswith(b"evt.") or topic == b"raw":
                received += 1
                first = first or now
                latencies.append(now - message["ts"])
        print(msgspec.json.encode({"first": first, "last": now, "lat": latencies}).decode(), flush=True)
    else:
        sock = ctx.socket(zmq.DEALER)
        sock.connect(endpoint)
        print("ready", flush=True)
        times = []
        for i in range(count + 50):
            symbol = f"SYM{i % 50}"  # a few working orders per instrument, as a strategy would have
            request = {
                "op": "place",
                "client_order_id": f"b-{i}",
                "contract": {"symbol": symbol},
                "side": "BUY",
                "quantity": 1,
                "order_type": "LMT",
                "limit_price": 1.0,
            }
            start = time.perf_counter_ns()
            sock.send(msgspec.msgpack.encode(request))
            reply = sock.recv()
            assert reply == b"\x80" or msgspec.msgpack.decode(reply)["ok"], reply
            if i >= 50:  # warm-up excluded
                times.append(time.perf_counter_ns() - start)
        print(msgspec.json.encode({"lat": times}).decode(), flush=True)
    ctx.destroy(linger=0)


def _spawn(mode: str, endpoint: str, count: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HELPER, mode, endpoint, str(count)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    out = proc.stdout.readline()
    proc.wait(timeout=60)
    decoded: dict[str, Any] = msgspec.json.decode(out)
    return decoded


def _pcts(ns: list[int]) -> tuple[float, float]:
    ordered = sorted(ns)
    return ordered[len(ordered) // 2] / 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000


# -- the service side --------------------------------------------------------------------------------


async def _service(data_dir: str) -> Any:
    from oms.service.app import Service
    from oms.service.config import load_config

    config = load_config(
        env={},
        overrides={"data_dir": data_dir, "pub": EPHEMERAL, "router": EPHEMERAL, "account": "DU123456"},
    )
    service = Service(config, lambda sink, _state: _NullBroker(sink))
    await service.start()
    return service


async def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)
    assert line.strip() == "ready", line


async def _service_throughput(count: int) -> tuple[float, float, float]:
    """(events/s until the subscriber has the last one, events/s until the service has published it,
    loop thread CPU us per event)."""
    with tempfile.TemporaryDirectory() as tmp:
        service = await _service(tmp)
        proc = _spawn("sub", service.endpoints.pub, count)
        await _wait_ready(proc)
        append = service.pipeline.append
        events = [_event(j) for j in range(count)]
        start, cpu = time.time_ns(), time.thread_time()
        for i in range(0, count, 500):
            for event in events[i : i + 500]:
                append(event)
            await asyncio.sleep(0)  # let the drain (flush + publish) run, as the adapter's callbacks would
        published, cpu = time.time_ns(), time.thread_time() - cpu
        result = await asyncio.to_thread(_result, proc)
        await service.stop()
    return (
        count / ((result["last"] - start) / 1e9),
        count / ((published - start) / 1e9),
        cpu / count * 1e6,
    )


async def _service_latency(count: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        service = await _service(tmp)
        proc = _spawn("sub", service.endpoints.pub, count)
        await _wait_ready(proc)
        for i in range(count):
            service.pipeline.append(_event(i))
            await asyncio.sleep(0.001)
        result = await asyncio.to_thread(_result, proc)
        await service.stop()
    return _pcts(result["lat"])


async def _command_round_trip(count: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        service = await _service(tmp)
        proc = _spawn("req", service.endpoints.router, count)
        await _wait_ready(proc)
        result = await asyncio.to_thread(_result, proc)
        await service.stop()
    return _pcts(result["lat"])


# -- raw baselines -------------------------------------------------------------------------------------


def _raw_pub(count: int, interval: float | None) -> dict[str, Any]:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    endpoint = f"tcp://127.0.0.1:{pub.bind_to_random_port('tcp://127.0.0.1')}"
    proc = _spawn("sub", endpoint, count)
    assert proc.stdout is not None
    while True:  # until the subscriber's first message arrives ("ready")
        pub.send_multipart([b"hello", b"\x80"])
        if _readable(proc):
            break
    assert proc.stdout.readline().strip() == "ready"
    start = time.time_ns()
    for i in range(count):
        ev = msgspec.msgpack.encode({"type": "event", "seq": i, "ts": time.time_ns(), "data": _event(i)})
        pub.send_multipart([b"raw", ev])
        if interval:
            time.sleep(interval)
    result = _result(proc)
    result["start"] = start
    ctx.destroy(linger=0)
    return result


def _readable(proc: subprocess.Popen[str]) -> bool:
    import select

    assert proc.stdout is not None
    return bool(select.select([proc.stdout], [], [], 0.01)[0])


def _raw_req_fsync(count: int) -> tuple[float, float]:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    endpoint = f"tcp://127.0.0.1:{router.bind_to_random_port('tcp://127.0.0.1')}"
    fd, path = tempfile.mkstemp()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if router.poll(100):
                identity, payload = router.recv_multipart()
                os.write(fd, payload)
                os.fsync(fd)
                router.send_multipart([identity, b"\x80"])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    proc = _spawn("req", endpoint, count)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    result = _result(proc)
    stop.set()
    thread.join()
    os.close(fd)
    Path(path).unlink()
    ctx.destroy(linger=0)
    return _pcts(result["lat"])


def _round(events: int, paced: int, commands: int) -> dict[str, float]:
    """One of each measure, each beside its baseline, run back to back (so they share the noise)."""
    rate, service_rate, cpu = asyncio.run(_service_throughput(events))
    raw = _raw_pub(events, None)
    p50, p99 = asyncio.run(_service_latency(paced))
    raw_lat = _pcts(_raw_pub(paced, 0.001)["lat"])
    cmd = asyncio.run(_command_round_trip(commands))
    raw_cmd = _raw_req_fsync(commands)
    return {
        "rate": rate,
        "raw_rate": events / ((raw["last"] - raw["start"]) / 1e9),
        "service_rate": service_rate,
        "cpu": cpu,
        "p50": p50,
        "raw_p50": raw_lat[0],
        "p99": p99,
        "raw_p99": raw_lat[1],
        "cmd_p50": cmd[0],
        "raw_cmd_p50": raw_cmd[0],
        "cmd_p99": cmd[1],
        "raw_cmd_p99": raw_cmd[1],
    }


def main(short: bool) -> None:
    events, paced, commands, rounds = (20_000, 300, 200, 1) if short else (300_000, 1_000, 2_000, 3)
    runs = [_round(events, paced, commands) for _ in range(rounds)]

    def fig(key: str, higher_is_better: bool = False) -> str:
        values = [run[key] for run in runs]
        best = max(values) if higher_is_better else min(values)
        if len(values) == 1:
            return f"{best:,.1f}" if key == "cpu" else f"{best:,.0f}"
        if key == "cpu":
            return f"{best:,.1f} / {statistics.median(values):,.1f}"
        return f"{best:,.0f} / {statistics.median(values):,.0f}"

    from rich.console import Console
    from rich.table import Table

    title = f"service end to end ({'short' if short else 'full'}; durability group; {rounds} round(s)"
    table = Table(title=title + (", best / median)" if rounds > 1 else ")"))
    for column in ("measure", "service", "raw pyzmq baseline", "target"):
        table.add_column(column)
    table.add_row(
        "sink -> subscriber, events/s", fig("rate", True), f"{fig('raw_rate', True)} (PUB->SUB)", ">= 100,000"
    )
    table.add_row("sink -> published (service side), events/s", fig("service_rate", True), "", "")
    table.add_row("loop CPU per event (us)", fig("cpu"), "", "")
    table.add_row("latency p50 @1k ev/s (us)", fig("p50"), f"{fig('raw_p50')} (PUB->SUB hop)", "<= 2x raw")
    table.add_row("latency p99 @1k ev/s (us)", fig("p99"), fig("raw_p99"), "< 1,000")
    table.add_row(
        "place -> durable ack p50 (us)", fig("cmd_p50"), f"{fig('raw_cmd_p50')} (REQ/REP + fsync)", "< 1,000"
    )
    table.add_row("place -> durable ack p99 (us)", fig("cmd_p99"), fig("raw_cmd_p99"), "< 3,000")
    Console().print(table)


if __name__ == "__main__":
    main(short="--short" in sys.argv)
