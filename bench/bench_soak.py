"""Soak: `oms run` (embedded simulator) under a steady 30 requests/s for minutes, window by window.

A service that slows down as it ages shows here: each window prints the place -> ack latency (the ROUTER
reply to `place`, the durable acknowledgement) p50 / p99 and the service process's RSS, beside the
first window's (the baseline, measured in the same run). The load is a strategy's: 60% market orders,
40% limit orders far from the market cancelled at once (the cancel is an extra request). The run fails
loudly if the service refuses a request.

Full mode: 5 minutes in 30-second windows; short mode: 20 seconds in 5-second windows.

Then the adapter's memory as finished orders pile up (`soak_adapter`): an in-process IBAdapter with the
real ib_async client, no pacing, against an `oms sim` process, and a sink that counts events and keeps
nothing (the fold is not in this process, so its state is not in the figure). Orders go out as fast as
the simulator finishes them (at most WINDOW unfinished): 90% market orders, 10% limit orders far from
the market cancelled at once. RSS is sampled as they finish and its growth per 1,000 orders is fitted,
once with the release of finished orders switched off (the baseline: the library keeps every Trade and
Fill, as before) and once as shipped, each in a fresh process against a fresh simulator.
Full mode: 75 s per variant (the released one runs as many orders as the baseline did); short: 5,000
orders each (at 1,000 the allocator's warm-up still hides the difference).

python -m bench soak [--short]; python -m bench.bench_soak [--short] [--adapter]
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import zmq

from oms.protocol import ENDPOINTS_FILE, Endpoints

RATE = 30.0  # place requests per second
WINDOW = 200  # unfinished orders at most, in the adapter soak
SAMPLES = 20  # RSS samples per adapter soak run


def rss_mib(pid: int) -> float:
    """The RSS of process `pid` (0: this one)."""
    for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start(folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "oms", "run", "--data-dir", str(folder), "--pub", "tcp://127.0.0.1:0",
         "--router", "tcp://127.0.0.1:0", "--max-notional", "1e12", "--max-quantity", "1e9",
         "--max-position", "1e9"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


class _Router:
    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.connect(endpoint)

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        self.sock.send(msgspec.msgpack.encode(message))
        if not self.sock.poll(30_000):
            raise TimeoutError(f"no reply to {message['op']} within 30 s")
        reply: dict[str, Any] = msgspec.msgpack.decode(self.sock.recv())
        return reply

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def _wait_ready(folder: Path) -> _Router:
    deadline = time.monotonic() + 60
    while not (folder / ENDPOINTS_FILE).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("oms run did not write its endpoints")
        time.sleep(0.05)  # a benchmark, not a test: polling for a file is fine here
    router = _Router(msgspec.json.decode((folder / ENDPOINTS_FILE).read_bytes(), type=Endpoints).router)
    while not router.request({"op": "ping"})["result"]["ready"]:
        time.sleep(0.05)
    return router


def _line(name: str, lat: list[float], rss: float, base: tuple[float, float, float] | None) -> str:
    qs = statistics.quantiles(lat, n=100)
    p50, p99 = qs[49] * 1e3, qs[98] * 1e3
    text = f"  {name:<10} {len(lat):6d} places  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  RSS {rss:6.1f} MiB"
    if base:
        text += f"   (x{p50 / base[0]:.2f} p50, x{p99 / base[1]:.2f} p99, {rss - base[2]:+.1f} MiB)"
    return text


def soak(duration: float, window: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    service = _start(folder)
    rng = random.Random(7)
    try:
        router = _wait_ready(folder)
        print(f"  {RATE:.0f} places/s for {duration:.0f} s, windows of {window:.0f} s (baseline: window 1)")
        start = time.monotonic()
        base: tuple[float, float, float] | None = None
        n, w = 0, 0
        while (w + 1) * window <= duration:
            lat: list[float] = []
            end = start + (w + 1) * window
            while (due := start + n / RATE) < end:
                time.sleep(max(0.0, due - time.monotonic()))  # the load's pace, not a synchronization
                n += 1
                coid = f"soak-{n}"
                place: dict[str, Any] = {
                    "op": "place",
                    "client_order_id": coid,
                    "contract": {"symbol": "AAPL"},
                }
                market = rng.random() < 0.6
                place |= {"side": "BUY" if n % 2 else "SELL", "quantity": 1}
                if not market:
                    place |= {"side": "BUY", "order_type": "LMT", "limit_price": 1.0}
                sent = time.perf_counter()
                reply = router.request(place)
                lat.append(time.perf_counter() - sent)
                if not reply.get("ok"):
                    raise RuntimeError(f"place refused: {reply}")
                if not market:
                    router.request({"op": "cancel", "client_order_id": coid})
            rss = rss_mib(service.pid)
            if base is None:
                qs = statistics.quantiles(lat, n=100)
                print(_line("window 1", lat, rss, None))
                base = (qs[49] * 1e3, qs[98] * 1e3, rss)
            else:
                print(_line(f"window {w + 1}", lat, rss, base))
            w += 1
        router.close()
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


# -- the adapter's memory ----------------------------------------------------------------------------


class _Unpaced:
    """The adapter's token bucket, open: the soak wants orders as fast as the simulator takes them."""

    async def acquire(self) -> None:
        return None


class _Finished:
    """The sink: counts finished orders (a commission: a market order's one fill; a Cancelled status)."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = asyncio.Event()

    def __call__(self, event: Any) -> None:
        kind = type(event).__name__
        if kind == "CommissionReported" or (kind == "OrderStatusReported" and event.status == "Cancelled"):
            self.count += 1
            self.changed.set()


async def _adapter_run(port: int, release: bool, seconds: float, orders: int) -> dict[str, Any]:
    from adapters.ib.adapter import IBAdapter
    from events.schema import Contract, OrderRequested

    finished = _Finished()
    adapter = IBAdapter("127.0.0.1", port, 1, sink=finished)
    adapter.pacer = _Unpaced()  # type: ignore[assignment]
    adapter.ib.client.MaxRequests = 0  # the library's own throttle, off too
    if not release:  # the baseline: the library keeps every order's objects, as before the release
        adapter._release = lambda done: None  # type: ignore[method-assign]
    await adapter.connect(timeout=30)
    contract = Contract(symbol="AAPL")
    samples: list[tuple[int, float]] = []
    every = max(orders // SAMPLES, 1) if orders else 1000
    start, placed = time.monotonic(), 0
    while finished.count < placed or (placed < orders if orders else time.monotonic() - start < seconds):
        if finished.count >= (len(samples) + 1) * every:
            samples.append((finished.count, rss_mib(0)))
        if (
            placed - finished.count >= WINDOW
            or (orders and placed >= orders)
            or (not orders and time.monotonic() - start >= seconds)
        ):
            finished.changed.clear()
            await finished.changed.wait()
            continue
        placed += 1
        limit = placed % 10 == 0
        req = OrderRequested(
            client_order_id=f"soak-{placed}", strategy_id="soak", account="DU123456", contract=contract,
            side="BUY" if limit or placed % 2 else "SELL", quantity=Decimal(1),
            order_type="LMT" if limit else "MKT", limit_price=1.0 if limit else None,
        )  # fmt: skip
        order_id = await adapter.place(req)
        if limit:
            await adapter.cancel(order_id)
    await asyncio.sleep(0)  # one turn of the loop: the releases the last callbacks scheduled run
    kept = adapter.kept()
    await adapter.disconnect()
    return {"orders": placed, "seconds": time.monotonic() - start, "samples": samples, "kept": kept}


def _slope_kib(samples: list[tuple[int, float]]) -> float:
    """RSS growth in KiB per 1,000 finished orders: a least-squares line over the samples past the first
    fifth (the warm-up: imports, the first objects of each kind, the allocator's arenas)."""
    tail = samples[len(samples) // 5 :]
    if len(tail) < 2:
        return float("nan")
    xs, ys = [n for n, _ in tail], [r for _, r in tail]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    var = sum((x - mx) ** 2 for x in xs)
    return cov / var * 1024 * 1000 if var else float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _variant(release: bool, seconds: float, orders: int) -> dict[str, Any]:
    """One run in a fresh process against a fresh `oms sim` process."""
    port = _free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "oms", "sim", "--port", str(port), "--max-msg-rate", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        child = subprocess.run(
            [sys.executable, "-m", "bench.bench_soak", "--adapter-child", str(port), str(int(release)),
             str(seconds), str(orders)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(30)
    result: dict[str, Any] = json.loads(child.stdout.splitlines()[-1])
    return result


def soak_adapter(seconds: float, orders: int) -> None:
    print(f"  adapter + ib_async vs `oms sim`, unpaced, {WINDOW} unfinished at most; RSS of its process")
    base = _variant(release=False, seconds=seconds, orders=orders)
    now = _variant(release=True, seconds=0, orders=base["orders"])
    for name, run in (("kept (baseline)", base), ("released", now)):
        first, last = run["samples"][0], run["samples"][-1]
        print(
            f"  {name:<16} {run['orders']:7d} orders in {run['seconds']:5.1f} s  RSS {first[1]:6.1f} MiB at"
            f" {first[0]} -> {last[1]:6.1f} MiB at {last[0]}: {_slope_kib(run['samples']):+7.1f} KiB"
            f" per 1,000 orders; held at the end: {run['kept']}"
        )


def main(short: bool) -> None:
    if short:
        soak(duration=20.0, window=5.0)
        soak_adapter(seconds=0, orders=5000)
    else:
        soak(duration=300.0, window=30.0)
        soak_adapter(seconds=75.0, orders=0)


if __name__ == "__main__":
    if "--adapter-child" in sys.argv:
        at = sys.argv.index("--adapter-child")
        port, release, seconds, orders = sys.argv[at + 1 : at + 5]
        found = asyncio.run(_adapter_run(int(port), release == "1", float(seconds), int(orders)))
        print(json.dumps(found))
    elif "--adapter" in sys.argv:
        soak_adapter(seconds=0, orders=5000) if "--short" in sys.argv else soak_adapter(75.0, 0)
    else:
        main(short="--short" in sys.argv)
