"""Start-up time: what the service does before it can serve (open and recover the journal, load the
newest snapshot, fold the tail), at two journal lengths, beside folding the whole journal without one.

The measured path is the service's own: `JournalWriter.open` (lock, recovery scan of the last segment)
then `oms.service.load_state` (snapshot decode + fold of the events after it). Snapshots are taken at
the end (a clean shutdown writes one) and 10,000 events before it (a crash between periodic snapshots).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench.bench_replay import write_session
from events.journal import JournalWriter
from events.reader import JournalReader
from events.snapshots import list_snapshots, write_snapshot
from oms.service.app import load_state
from oms.state.codec import encode_state
from oms.state.fold import fold, step
from oms.state.model import initial_state

TAIL = 10_000


def _encoded_states(journal: Path, seqs: set[int]) -> dict[int, bytes]:
    """The snapshot payload the service would write at each of `seqs`."""
    state, found = initial_state(), {}
    for env in JournalReader(journal).read():
        state, _ = step(state, env)
        if env.seq in seqs:
            found[env.seq] = encode_state(state)
    return found


def _start(journal: Path) -> tuple[float, int]:
    """Seconds to a servable state, and the seq it is at."""
    begin = time.perf_counter()
    writer = JournalWriter.open(journal, durability="never")
    state, _ = load_state(journal, writer.last_seq, writer.frame_crc)
    elapsed = time.perf_counter() - begin
    writer.close()
    return elapsed, state.seq


def _only_snapshot(journal: Path, seq: int, payload: bytes) -> None:
    for info in list_snapshots(journal):
        info.path.unlink()
    write_snapshot(journal, seq, payload)


def main(short: bool) -> None:
    lengths = (20_000, 100_000) if short else (100_000, 1_000_000)
    header = f"{'journal':>10}  {'orders':>8}  {'snapshot':>9}  {'start-up':>10}"
    print(f"{header}  baseline: fold all, no snapshot")
    for length in lengths:
        folder = Path(tempfile.mkdtemp(prefix="oms-bench-startup-"))
        try:
            journal = folder / "journal"
            orders = write_session(journal, length)
            last = JournalReader(journal).last_seq()
            begin = time.perf_counter()
            fold(JournalReader(journal).read())
            baseline = time.perf_counter() - begin
            payloads = _encoded_states(journal, {last, last - TAIL})
            size = len(payloads[last])
            for label, seq in (("at end", last), (f"-{TAIL:,}", last - TAIL)):
                _only_snapshot(journal, seq, payloads[seq])
                seconds, at = _start(journal)
                assert at == last, (at, last)
                print(
                    f"{last:>10,}  {orders:>8,}  {label:>9}  {seconds * 1000:>7.0f} ms  "
                    f"{baseline * 1000:,.0f} ms (snapshot {size / 1e6:.1f} MB)"
                )
        finally:
            shutil.rmtree(folder)
    print("target: start-up with a snapshot < 200 ms whatever the journal's length")
