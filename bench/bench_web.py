"""The web blotter: how long from an event being published to the page showing it, and whether the page
keeps up at 1,000 events/s.

A minimal service in this process (PUB + a ROUTER answering ping/snapshot/events, as bench_client)
publishes order sessions (six events per order) stamped with the wall clock; `oms web` runs as its own
process and follows it; Chromium (Playwright) holds the live page, which records when each update landed
(`window.omsUpdates`: [seq, Date.now()]). An event's latency is the time from its publication to the
first page update showing its seq or a later one.

Baseline, in the same run: the strategy client (`AsyncClient`, in this process) following the same
stream: the floor the web app (refold + coalescing + render + SSE + DOM) adds to.
1. sparse: events one at a time, 20 a second (each update carries one event);
2. 1,000 events/s for a few seconds: latency p50/p99, and the lag when publishing stops (how far the
   page is behind at that moment, and how long it takes to show the last event).
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from bisect import bisect_left
from pathlib import Path

import msgspec
import zmq
import zmq.asyncio

from bench.bench_client import serve, session
from events.schema import AnyEvent, kind_of
from oms.client import AsyncClient
from oms.protocol import HEARTBEAT_TOPIC, Heartbeat, Published, event_topic


class Feed:
    """Publishes `events` in seq order at a chosen pace; remembers each seq's publication time (ms)."""

    def __init__(self, pub: zmq.asyncio.Socket, events: list[AnyEvent]) -> None:
        self.pub = pub
        self.events = events
        self.seq = 0
        self.sent_ms: dict[int, float] = {}

    async def publish(self, count: int, rate: float) -> None:
        start = time.perf_counter()
        for i in range(count):
            due = start + i / rate
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            self.seq += 1
            event = self.events[self.seq - 1]
            now_ns = time.time_ns()
            self.sent_ms[self.seq] = now_ns / 1e6
            payload = msgspec.msgpack.encode(Published("event", self.seq, now_ns, event))
            await self.pub.send_multipart([event_topic(kind_of(event)).encode(), payload])

    async def heartbeats(self) -> None:
        while True:
            beat = msgspec.msgpack.encode(Heartbeat(seq=self.seq, ts=time.time_ns()))
            await self.pub.send_multipart([HEARTBEAT_TOPIC.encode(), beat])
            await asyncio.sleep(0.4)


def latencies(sent_ms: dict[int, float], shown: list[tuple[int, float]], seqs: range) -> list[float]:
    """Per seq: first time a shown seq >= it, minus its publication (ms); unseen seqs are left out."""
    shown = sorted(shown, key=lambda item: item[1])
    best: list[tuple[int, float]] = []  # running max of the shown seq, in time order
    for seq, at in shown:
        if not best or seq > best[-1][0]:
            best.append((seq, at))
    keys = [seq for seq, _ in best]
    out = []
    for seq in seqs:
        index = bisect_left(keys, seq)
        if index < len(best):
            out.append(best[index][1] - sent_ms[seq])
    return out


def figures(samples: list[float]) -> str:
    if len(samples) < 2:
        return "too few samples"
    qs = statistics.quantiles(samples, n=100)
    return f"p50 {qs[49]:7.1f} ms   p99 {qs[98]:7.1f} ms   ({len(samples)} events)"


async def run(short: bool) -> None:
    from playwright.async_api import async_playwright

    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if chromium is None:
        print("  skipped: no Chromium on the PATH (apt-get install -y chromium)")
        return
    sparse_count, burst_seconds = (40, 2.0) if short else (200, 10.0)
    events = session(int(sparse_count + 1_000 * burst_seconds) // 6 + 20)
    ctx = zmq.asyncio.Context()
    pub = ctx.socket(zmq.PUB)
    pub.sndhwm = 0
    pub_endpoint = f"tcp://127.0.0.1:{pub.bind_to_random_port('tcp://127.0.0.1')}"
    router = ctx.socket(zmq.ROUTER)
    router_endpoint = f"tcp://127.0.0.1:{router.bind_to_random_port('tcp://127.0.0.1')}"
    feed = Feed(pub, events)
    tasks = [asyncio.create_task(serve(router, events)), asyncio.create_task(feed.heartbeats())]
    folder = Path(tempfile.mkdtemp(prefix="bench-web-"))
    out = folder / "web.out"
    with open(out, "wb") as stdout:
        web = subprocess.Popen(
            [sys.executable, "-m", "oms", "web", "--router", router_endpoint, "--pub", pub_endpoint,
             "--listen", "127.0.0.1:0"],
            stdout=stdout, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    client = await AsyncClient.connect(router=router_endpoint, pub=pub_endpoint)
    baseline: list[tuple[int, float]] = []
    client.on_event(lambda env, _changes: baseline.append((env.seq, time.time() * 1000)))
    try:
        while not out.read_text().startswith("web "):
            await asyncio.sleep(0.05)  # a benchmark, not a test: polling for the address is fine here
        url = out.read_text().split()[1]
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = await browser.new_page(bypass_csp=True)  # wait_for_function evaluates strings
            await page.goto(url)
            await feed.publish(6, 100)  # warm-up: one order
            await page.wait_for_function(f"Number(document.body.dataset.seq || 0) >= {feed.seq}")

            first = feed.seq + 1
            await feed.publish(sparse_count, 20)
            await page.wait_for_function(f"Number(document.body.dataset.seq || 0) >= {feed.seq}")
            shown = [tuple(item) for item in await page.evaluate("window.omsUpdates")]
            sparse = range(first, feed.seq + 1)
            print(f"sparse: {sparse_count} events at 20/s, published -> shown")
            print(f"  client (baseline)    {figures(latencies(feed.sent_ms, baseline, sparse))}")
            print(f"  web page             {figures(latencies(feed.sent_ms, shown, sparse))}")  # type: ignore[arg-type]

            first = feed.seq + 1
            await feed.publish(int(1_000 * burst_seconds), 1_000)
            stopped_ms = time.time() * 1000
            await page.wait_for_function(
                f"Number(document.body.dataset.seq || 0) >= {feed.seq}", timeout=60_000
            )
            shown = [tuple(item) for item in await page.evaluate("window.omsUpdates")]
            shown_then = max((seq for seq, at in shown if at <= stopped_ms), default=0)
            caught_up_ms = min(at for seq, at in shown if seq >= feed.seq) - stopped_ms
            burst = range(first, feed.seq + 1)
            updates = sum(1 for seq, _ in shown if seq >= first)
            print(f"burst: {int(1_000 * burst_seconds):,} events at 1,000/s, published -> shown")
            print(f"  client (baseline)    {figures(latencies(feed.sent_ms, baseline, burst))}")
            print(f"  web page             {figures(latencies(feed.sent_ms, shown, burst))}")  # type: ignore[arg-type]
            print(f"  page updates         {updates} ({updates / burst_seconds:.1f}/s: coalesced per 100 ms)")
            print(f"  when publishing stopped: page {feed.seq - shown_then} events behind, "
                  f"showed the last one {caught_up_ms:.0f} ms later")  # fmt: skip
            await browser.close()
    finally:
        await client.close()
        web.terminate()
        web.wait(10)
        for task in tasks:
            task.cancel()
        pub.close(0)
        router.close(0)
        ctx.term()


def main(short: bool) -> None:
    asyncio.run(run(short))


if __name__ == "__main__":
    main(short="--short" in sys.argv)
