"""Soak: `oms run` (embedded simulator) under a steady 30 requests/s for minutes, window by window.

A service that slows down as it ages shows here: each window prints the place -> ack latency (the ROUTER
reply to `place`, the durable acknowledgement) p50 / p99 and the service process's RSS, beside the
first window's (the baseline, measured in the same run). The load is a strategy's: 60% market orders,
40% limit orders far from the market cancelled at once (the cancel is an extra request). The run fails
loudly if the service refuses a request.

Full mode: 5 minutes in 30-second windows; short mode: 20 seconds in 5-second windows.
"""

from __future__ import annotations

import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import zmq

from oms.protocol import ENDPOINTS_FILE, Endpoints

RATE = 30.0  # place requests per second


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
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


def main(short: bool) -> None:
    if short:
        soak(duration=20.0, window=5.0)
    else:
        soak(duration=300.0, window=30.0)


if __name__ == "__main__":
    main(short="--short" in sys.argv)
