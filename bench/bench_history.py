"""History at scale: start-up, snapshot size and resident memory with N finished orders in history and
1,000 working ones, beside the same orders kept live (the state before finished orders retired).

Each finished order is the 8 events of `bench.bench_fold.stream`, one order a second of event time, so
orders retire 15 minutes after they end and their tombstones expire after a day, as in a long-running
service. The baseline folds the same events within minutes (nothing is quiet long enough to retire):
every order stays live, which is what every state held before history was split off. Start-up is the
service's own path (`JournalWriter.open` + `oms.service.app.load_state` from a snapshot at the end), run in
a fresh interpreter that then reports its resident memory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.bench_fold import stream
from events.journal import JournalWriter
from events.schema import Envelope
from events.snapshots import write_snapshot
from oms.state.codec import encode_state
from oms.state.fold import step
from oms.state.model import initial_state

WORKING = 1_000
PER_ORDER = 8  # events per order in `stream`; the first 4 leave it working (requested .. Submitted)
SECOND = 10**9

_START = """
import sys, time
from pathlib import Path
begin = time.perf_counter()
from events.journal import JournalWriter
from oms.service.app import load_state
imported = time.perf_counter()
writer = JournalWriter.open(Path(sys.argv[1]), durability="never")
state, snapshot = load_state(Path(sys.argv[1]), writer.last_seq, writer.frame_crc)
done = time.perf_counter()
assert snapshot == writer.last_seq == state.seq, (snapshot, writer.last_seq, state.seq)
rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(done - imported, rss, len(state.orders), state.history.orders)
"""


_SOAK = """
import sys
from bench.bench_history import session
from oms.state.fold import step
from oms.state.model import initial_state
finished, spread = int(sys.argv[1]), sys.argv[2] == "1"
marks = {finished * k // 10 for k in range(1, 11)}
state, orders = initial_state(), 0
for env in session(finished, spread):
    state, _ = step(state, env)
    if type(env.event).__name__ == "OrderRequested":
        orders += 1
        if orders in marks:
            status = open("/proc/self/status").read().split("VmRSS:")[1]
            print(orders, int(status.split()[0]), len(state.orders))
"""


def session(finished: int, spread: bool) -> Iterator[Envelope]:
    """`finished` orders that fill, then `WORKING` that stay Submitted; one order a second of event time
    when `spread`, else all within a fraction of a second."""
    seq = 0
    for env in stream(finished + WORKING):
        order, k = divmod(env.seq - 1, PER_ORDER)
        if order >= finished and k >= 4:
            continue
        seq += 1
        ts = (order * SECOND if spread else order * 1000) + k * 1000
        yield Envelope(seq, ts + 1, env.event)


def _write(journal: Path, finished: int, spread: bool) -> tuple[int, int]:
    """Journal and end-of-journal snapshot; (events, snapshot bytes)."""
    state = initial_state()
    with JournalWriter.open(journal, durability="never") as writer:
        for env in session(finished, spread):
            written = writer.append(env.event, ts=env.ts)
            state, _ = step(state, written)
        writer.sync()
    payload = encode_state(state)
    write_snapshot(journal, state.seq, payload)
    return state.seq, len(payload)


def _start(journal: Path) -> tuple[float, int, int, int]:
    """(seconds to a servable state, RSS KiB, live orders, retired orders) in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _START, str(journal)], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), int(out[1]), int(out[2]), int(out[3])


def _soak(finished: int, spread: bool) -> list[tuple[int, int, int]]:
    """(orders so far, RSS KiB, live orders) at each tenth of a fold of `finished` orders, step by step
    as the service folds, in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _SOAK, str(finished), "1" if spread else "0"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [tuple(int(x) for x in line.split()) for line in out.splitlines()]  # type: ignore[misc]


def main(short: bool) -> None:
    sizes = (20_000,) if short else (100_000, 1_000_000)
    columns = ("finished", 10), ("kept", 9), ("events", 10), ("snapshot", 10), ("start-up", 9), ("RSS", 9)
    print(" ".join(f"{name:>{width}}" for name, width in columns), f"{'live':>7}")
    for finished in sizes:
        for spread, label in ((True, "history"), (False, "all live")):
            if not spread and finished > 100_000:
                continue  # the baseline at 1M would hold ~1.5 GB live; measured at 100k
            folder = Path(tempfile.mkdtemp(prefix="oms-bench-history-"))
            try:
                events, size = _write(folder / "journal", finished, spread)
                seconds, rss, live, retired = _start(folder / "journal")
                assert live + retired == finished + WORKING, (live, retired)
                print(
                    f"{finished:>10,} {label:>9} {events:>10,} {size / 1e6:>8.1f}MB "
                    f"{seconds * 1000:>6.0f} ms {rss / 1024:>6.0f} MB {live:>7,}"
                )
            finally:
                shutil.rmtree(folder)
    print("targets: start-up < 200 ms and RSS <= 150 MB with 1,000,000 finished orders in history")
    soak = 10_000 if short else 100_000
    print(f"soak: the fold's RSS while {soak:,} orders finish, one a second of event time (service's step)")
    for spread, label in ((True, "history"), (False, "all live (baseline)")):
        marks = _soak(soak, spread)
        (_, first, _), (_, last, live) = marks[len(marks) // 5], marks[-1]
        steps = ", ".join(f"{rss / 1024:.0f}" for _, rss, _ in marks)
        print(
            f"  {label:<20} RSS MB at each tenth: {steps}; from 20% to the end "
            f"{(last - first) / 1024:+.1f} MB, {live:,} live at the end"
        )
    print("target: flat (within 20 MB) over a soak of 100,000 orders")


if __name__ == "__main__":
    main(short="--short" in sys.argv)
