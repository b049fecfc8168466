"""Lookups through the segment indexes: `oms replay --order ID` and the seq of `--at TIME`, beside the
paths without them (fold the log to find the order, then fold again to collect its events; read the log
up to the time), measured in the same run.

python -m bench lookup [--short]

- first time: no index file yet, so the lookup builds every closed segment's index (and stores it);
- cold: the index files are there and nothing of them is in this process' memory: every lookup reads
  and checks every index file again, as a new `oms replay` does (the files are in the OS page cache);
- baseline: `folded_timelines` (with the service's snapshots) and `seq_at_time` over the whole log;
- `--at` end to end: what it is made of (the snapshot file, decoding its state), and the same answer on
  a second journal of the same sessions received over a trading day, whose finished orders retire (in
  the first, 1,000 s long, every order is still live, so its state is 81 MB at the middle).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import temp_folder
from bench.bench_replay import SNAPSHOT_EVERY, T0, order_events, write_snapshots
from events import index
from events.journal import JournalWriter
from events.lookup import seq_at
from events.reader import JournalReader
from events.segments import list_segments
from oms.state.codec import decode_state
from replay import checkpoints
from replay.points import seq_at_time
from replay.source import JournalSource
from replay.states import state_at
from replay.timeline import folded_timelines, indexed_timelines

DAY_NS = 6 * 3600 * 10**9 + 1800 * 10**9  # a trading day, 09:30 to 16:00


def _time(action: Callable[[], object], before: Callable[[], None] = lambda: None) -> float:
    """Seconds `action` takes to answer; freeing the answer (80 MB of state, ~0.1 s) is not timed."""
    before()
    start = time.perf_counter()
    answer = action()
    elapsed = time.perf_counter() - start
    del answer
    return elapsed


def _drop_index_files(journal: Path) -> None:
    for _, path in list_segments(journal):
        index.index_path(path).unlink(missing_ok=True)


def main(short: bool) -> None:
    n = 50_000 if short else 1_000_000
    with temp_folder("bench-lookup-") as folder:
        _run(folder, n, short)


def _run(folder: Path, n: int, short: bool) -> None:
    journal = folder / "journal"
    # short: 1 MiB segments, so a short run has closed segments to index as a long one does
    orders = _write(journal, n, (1 if short else 16) << 20)
    every = SNAPSHOT_EVERY if not short else 10_000
    write_snapshots(journal, every)
    n = JournalReader(journal).last_seq()
    segments = len(list_segments(journal))
    rnd = random.Random(7)
    picks = [rnd.randrange(orders) for _ in range(20)]
    source = JournalSource(journal)
    rows: list[tuple[str, str, str]] = []

    first_order = _time(
        lambda: indexed_timelines(journal, f"c{picks[0]}"), lambda: _drop_index_files(journal)
    )
    cold = [_time(partial(indexed_timelines, journal, f"c{i}")) for i in picks]
    by_perm = [_time(partial(indexed_timelines, journal, str(10**9 + i))) for i in picks[:5]]
    baseline = _time(lambda: folded_timelines(source, f"c{picks[0]}"))
    rows.append(("--order: cold (p50 of 20 orders)", _ms(statistics.median(cold)), f"max {_ms(max(cold))}"))
    rows.append(("--order by permId: cold (p50 of 5)", _ms(statistics.median(by_perm)), ""))
    rows.append(("--order: first time (builds the indexes)", _ms(first_order), f"{segments} segments"))
    rows.append(("--order: baseline, fold (with snapshots)", _ms(baseline), "folds the log twice"))

    envs_ts = [T0 + (n * k // 20) * 1_000_000 + 500 for k in range(1, 20)]
    cold_at = [_time(partial(seq_at, journal, t)) for t in envs_ts]
    _drop_index_files(journal)
    first_at = _time(lambda: seq_at(journal, envs_ts[-1]))
    t_mid = envs_ts[len(envs_ts) // 2]
    baseline_at = _time(lambda: seq_at_time(JournalReader(journal).read(), t_mid))
    assert seq_at(journal, t_mid) == seq_at_time(JournalReader(journal).read(), t_mid)
    whole_at = _time(lambda: state_at(source, seq_at(journal, t_mid)))
    rows.append(
        ("--at: seq of a time, cold (p50 of 19)", _ms(statistics.median(cold_at)), f"max {_ms(max(cold_at))}")
    )
    rows.append(("--at: seq of a time, first time", _ms(first_at), "indexes the segments up to it"))
    rows.append(("--at: seq of a time, baseline scan", _ms(baseline_at), "reads + decodes up to it"))
    note = f"seq, then the snapshot at or below it + the tail (snapshots every {every:,})"
    rows.append(("--at: state at a time, end to end", _ms(whole_at), note))
    # far past a snapshot: the first query keeps a checkpoint on its way (when that is worth its cost,
    # replay.checkpoints), a later one near it starts from there
    below = seq_at(journal, t_mid) // every * every
    t_far = T0 + (below + every * 3 // 4) * 1_000_000 + 500
    t_near = t_far + checkpoints.EVERY // 4 * 1_000_000
    far = _time(lambda: state_at(source, seq_at(journal, t_far)))
    near = _time(lambda: state_at(source, seq_at(journal, t_near)))
    note = f"{every * 3 // 4:,} events past a snapshot; may keep a checkpoint on the way"
    rows.append(("--at: a time far past a snapshot, first time", _ms(far), note))
    note = f"{checkpoints.EVERY // 4:,} events later: from the nearest stored state"
    rows.append(("--at: state at a time, end to end, near the last", _ms(near), note))
    start = source.snapshot(seq_at(journal, t_mid))
    if start is not None:
        decoding = _time(lambda: decode_state(start[1]))
        note = f"the state at seq {start[0]:,}: {len(start[1]) / 1e6:,.1f} MB, decoded from its snapshot"
        rows.append(("--at: the floor, decoding the state alone", _ms(decoding), note))
        reading = _time(lambda: source.snapshot(seq_at(journal, t_mid)))
        rows.append(("--at: finding, reading and checking that snapshot", _ms(reading), "file + CRC + frame"))
    rows.append(_at_a_days_pace(folder / "day", n, every, short))

    table = Table(title=f"index lookups, {n:,} events, {orders:,} orders" + (" (short)" if short else ""))
    for column in ("what", "figure", "baseline / note"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def _at_a_days_pace(journal: Path, n: int, every: int, short: bool) -> tuple[str, str, str]:
    """The `--at` row again on the same sessions received over a trading day (6.5 h) instead of 1,000 s:
    filled orders then retire 15 minutes after their last event (oms.state.history), so the state, and
    its snapshot, holds what is live, as a real day's does; above, every order is still live."""
    step = DAY_NS // n
    _write(journal, n, (1 if short else 16) << 20, step)
    write_snapshots(journal, every)
    t_mid = T0 + (n // 2) * step + 500
    seq_at(journal, t_mid)  # index the segments, as the cold rows above find them
    source = JournalSource(journal)
    answer = _time(lambda: state_at(source, seq_at(journal, t_mid)))
    start = source.snapshot(seq_at(journal, t_mid))
    size = f"{len(start[1]) / 1e6:,.1f} MB" if start else "no"
    note = f"an event every {step / 1e6:,.1f} ms: a {size} snapshot, {n:,} events"
    return ("--at: state at a time, end to end, at a day's pace", _ms(answer), note)


def _write(journal: Path, n: int, segment_bytes: int, step_ns: int = 1_000_000) -> int:
    """The sessions of bench_replay (its `order_events`), in segments of `segment_bytes`, an event every
    `step_ns` of receive time."""
    with JournalWriter.open(journal, durability="never", segment_bytes=segment_bytes) as writer:
        i = 0
        while writer.last_seq < n:
            for event in order_events(i):
                writer.append(event, ts=T0 + writer.last_seq * step_ns)
            i += 1
    return i


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"
