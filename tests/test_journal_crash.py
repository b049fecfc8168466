"""A real crash: a child process appends under `group` and is killed with SIGKILL mid-stream.

Every seq the child reported durable must be in the reopened journal, the log must be contiguous, and
each event must be the one written. A reader in this process tails the child's journal meanwhile.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from pathlib import Path

from events.journal import JournalWriter
from events.reader import JournalReader
from tests.waiting import wait_until

CHILD = Path(__file__).with_name("journal_crash_child.py")
ROOT = Path(__file__).resolve().parents[1]


def run_and_kill(directory: Path, lines_before_kill: int) -> tuple[int, list[int]]:
    """Start the child, read `lines_before_kill` durable seqs, SIGKILL it; (seq it started after, seqs)."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(directory), "4000"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None
        ready = child.stdout.readline().split()
        assert ready[0] == "ready", ready
        durable = [int(child.stdout.readline()) for _ in range(lines_before_kill)]
    finally:
        child.kill()
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -9
    return int(ready[1]), durable


def check_journal(directory: Path, acknowledged: list[int]) -> int:
    with JournalWriter.open(directory) as writer:
        last = writer.last_seq
    envelopes = list(JournalReader(directory).read())
    assert [e.seq for e in envelopes] == list(range(1, last + 1))
    assert all(e.event.value == str(e.seq) for e in envelopes)  # type: ignore[union-attr]
    assert max(acknowledged) <= last
    assert acknowledged == sorted(acknowledged)
    return last


def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    rng = random.Random()
    seen: list[int] = []
    done = threading.Event()
    JournalWriter.open(directory).close()
    reader = JournalReader(directory)
    tailer = threading.Thread(target=lambda: seen.extend(e.seq for e in reader.tail(stop=done.is_set)))
    tailer.start()
    try:
        started, first = run_and_kill(directory, rng.randint(3, 40))
        assert started == 0
        last = check_journal(directory, first)
        restarted, second = run_and_kill(directory, rng.randint(3, 40))
        assert restarted == last
        assert min(second) > last
        final = check_journal(directory, second)
        wait_until(lambda: len(seen) >= final, what="the tailing reader to catch up")
    finally:
        done.set()
        tailer.join()
    assert seen == list(range(1, final + 1))
