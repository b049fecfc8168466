"""Journal throughput, durability latency, recovery scan and read speed, each beside a raw baseline.

python -m bench journal [--short]
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import msgspec
from rich.console import Console
from rich.table import Table

from events.codec import encode
from events.journal import JournalWriter
from events.reader import JournalReader
from events.schema import (
    AccountValueReported,
    AnyEvent,
    CommissionReported,
    Contract,
    Envelope,
    ExecutionReported,
    OrderStatusReported,
)
from events.segments import list_segments

_CONTRACTS = [
    Contract(s, con_id=1000 + i, primary_exchange="NASDAQ") for i, s in enumerate(["AAPL", "MSFT", "NVDA"])
]


def event_mix(n: int) -> list[AnyEvent]:
    """Per fill, what IB sends: status, execution, commission; plus an account value now and then."""
    events: list[AnyEvent] = []
    for i in range(n):
        exec_id = f"0000e0d5.{i:08x}.01.01"
        match i % 5:
            case 0 | 3:
                events.append(
                    OrderStatusReported(
                        order_id=i,
                        perm_id=10**9 + i,
                        client_id=1,
                        status="Filled",
                        filled=Decimal(100),
                        remaining=Decimal(0),
                        avg_fill_price=101.25,
                    )
                )
            case 1:
                events.append(
                    ExecutionReported(
                        exec_id=exec_id,
                        order_id=i,
                        perm_id=10**9 + i,
                        client_id=1,
                        order_ref=f"strat-a-{i}",
                        account="DU1234567",
                        contract=_CONTRACTS[i % 3],
                        side="BOT",
                        shares=Decimal(100),
                        price=101.25,
                        cum_qty=Decimal(100),
                        avg_price=101.25,
                        time="20261120 14:03:07 US/Eastern",
                        exchange="ISLAND",
                    )
                )
            case 2:
                events.append(CommissionReported(exec_id=exec_id, commission=1.0, currency="USD"))
            case _:
                value = f"{1_000_000 + i}.00"
                events.append(
                    AccountValueReported(
                        account="DU1234567", key="NetLiquidation", value=value, currency="USD"
                    )
                )
    return events


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _append_run(
    directory: Path, events: list[AnyEvent], n: int, durability: str, segment_bytes: int
) -> tuple[float, float]:
    """(seconds for n appends, seconds until all are flushed and closed)."""
    writer = JournalWriter.open(directory, durability=durability, segment_bytes=segment_bytes)  # type: ignore[arg-type]
    append = writer.append
    mix = len(events)
    start = time.perf_counter()
    for i in range(n):
        append(events[i % mix])
    appended = time.perf_counter() - start
    writer.close()
    return appended, time.perf_counter() - start


def _raw_write(path: Path, chunks: list[bytes], fsync_every: int | None) -> float:
    """Baseline: the same bytes with plain os.write (optionally fsync after every `fsync_every` chunks)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    start = time.perf_counter()
    for i, chunk in enumerate(chunks, 1):
        os.write(fd, chunk)
        if fsync_every and i % fsync_every == 0:
            os.fsync(fd)
    os.fsync(fd)
    elapsed = time.perf_counter() - start
    os.close(fd)
    return elapsed


def _durability_latency(directory: Path, samples: int) -> list[float]:
    """Seconds from append to wait_durable returning, under group commit, one event at a time."""
    latencies = []
    with JournalWriter.open(directory, durability="group") as writer:
        for event in event_mix(samples):
            start = time.perf_counter()
            seq = writer.append(event).seq
            writer.wait_durable(seq)
            latencies.append(time.perf_counter() - start)
    return latencies


def _fsync_latency(path: Path, samples: int) -> list[float]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    latencies = []
    for _ in range(samples):
        start = time.perf_counter()
        os.write(fd, b"x" * 300)
        os.fsync(fd)
        latencies.append(time.perf_counter() - start)
    os.close(fd)
    return latencies


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else values[0] * 1000


def main(short: bool) -> None:
    n = 100_000 if short else 1_000_000
    n_always = 2_000 if short else 20_000
    n_scan = 50_000 if short else 1_000_000
    samples = 50 if short else 500
    events = event_mix(1000)
    root = Path(tempfile.mkdtemp(prefix="bench-journal-"))
    console = Console(width=120)
    try:
        rows: list[tuple[str, str, str, str]] = []
        for durability, count in (("never", n), ("group", n), ("always", n_always)):
            appended, closed = _append_run(root / durability, events, count, durability, 64 << 20)
            rows.append((f"append, {durability}", f"{count:,}", f"{count / appended:,.0f}/s",
                         f"{count / closed:,.0f}/s incl. close"))  # fmt: skip

        frames = [encode(Envelope(i + 1, time.time_ns(), events[i % len(events)])) for i in range(n)]
        frame_bytes = sum(len(f) + 16 for f in frames)
        chunk = b"".join(f + bytes(16) for f in frames[:4000])
        chunks = [chunk] * (frame_bytes // len(chunk) + 1)
        raw = _raw_write(root / "raw", chunks, None)
        rows.append(("baseline: os.write same bytes", f"{n:,}", f"{n / raw:,.0f}/s",
                     f"{frame_bytes / raw / 1e6:,.0f} MB/s"))  # fmt: skip
        per_event = [f + bytes(16) for f in frames[:n_always]]
        raw_sync = _raw_write(root / "raw-sync1", per_event, 1)
        rows.append(("baseline: write+fsync each", f"{n_always:,}", f"{n_always / raw_sync:,.0f}/s", ""))
        raw_sync = _raw_write(root / "raw-sync1000", [f + bytes(16) for f in frames], 1000)
        rows.append(("baseline: write+fsync per 1000", f"{n:,}", f"{n / raw_sync:,.0f}/s", ""))

        scan_dir = root / "scan"
        with JournalWriter.open(scan_dir, durability="never", segment_bytes=1 << 40) as writer:
            for i in range(n_scan):
                writer.append(events[i % len(events)])
        segment = list_segments(scan_dir)[-1][1]
        size = segment.stat().st_size
        opened = _timed(lambda: JournalWriter.open(scan_dir).close())
        rows.append(("recovery scan on open", f"{n_scan:,}", f"{n_scan / opened:,.0f} frames/s",
                     f"{size / opened / 1e6:,.0f} MB/s"))  # fmt: skip
        raw_read = _timed(segment.read_bytes)
        rows.append(("baseline: read the file", f"{n_scan:,}", f"{size / raw_read / 1e6:,.0f} MB/s", ""))
        reader = JournalReader(scan_dir)
        scanned = _timed(lambda: sum(1 for _ in reader.read_payloads()))
        rows.append(("read_payloads (no decode)", f"{n_scan:,}", f"{n_scan / scanned:,.0f}/s", ""))
        decoded = _timed(lambda: sum(1 for _ in reader.read()))
        rows.append(("read + decode", f"{n_scan:,}", f"{n_scan / decoded:,.0f}/s", ""))
        payloads = [p for _, p in reader.read_payloads(to_seq=min(n_scan, 100_000))]
        decoder = msgspec.msgpack.Decoder(Envelope)
        decode_only = _timed(lambda: [decoder.decode(p) for p in payloads])
        rows.append(
            (
                "baseline: msgspec decode only",
                f"{len(payloads):,}",
                f"{len(payloads) / decode_only:,.0f}/s",
                "",
            )
        )

        group = _durability_latency(root / "latency", samples)
        fsync = _fsync_latency(root / "fsync", samples)
        rows.append(("append -> durable (group)", f"{samples:,}", f"p50 {_pct(group, 50):.2f} ms",
                     f"p99 {_pct(group, 99):.2f} ms"))  # fmt: skip
        rows.append(("baseline: write+fsync", f"{samples:,}", f"p50 {_pct(fsync, 50):.2f} ms",
                     f"p99 {_pct(fsync, 99):.2f} ms"))  # fmt: skip

        table = Table(title=f"journal ({'short' if short else 'full'}; {frame_bytes / n:.0f} bytes/frame)")
        for column in ("measure", "events", "rate", "also"):
            table.add_column(column, justify="left" if column == "measure" else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        console.print(f"peak RSS {peak_mib:,.0f} MiB (the benchmark holds {n:,} encoded frames in memory)")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main(short=True)
