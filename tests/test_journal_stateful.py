"""Model-based test of durability: appends, flushes, group commits and syncs, and crashes.

The committer thread makes outcomes timing-dependent (how much a crash finds written), so no draw
depends on the state: the rules and their arguments are the same whatever the timing was.

A crash keeps what a kill -9 keeps (the bytes the OS has) and then, like a power loss, may drop any
bytes after the acknowledged-durable point (never before it) or leave zeros in their place. Reopening
must give back exactly a prefix of what was appended, holding every event acknowledged as durable.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from events.journal import JournalWriter
from events.reader import JournalReader
from events.segments import SEGMENT_HEADER_SIZE, list_segments
from tests.journal_helpers import frame_ends, mixed_event


class JournalMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="journal-machine-"))
        self.directory = self.root / "j"
        self.appended: list = []  # the model: every envelope appended, in order
        self.acked = 0  # highest seq acknowledged durable
        self.writer = self.open()

    def open(self) -> JournalWriter:
        return JournalWriter.open(self.directory, group_commit_ms=0.2, segment_bytes=900)

    @rule(count=st.integers(1, 12))
    def append(self, count: int) -> None:
        for _ in range(count):
            self.appended.append(self.writer.append(mixed_event(len(self.appended))))

    @rule()
    def flush(self) -> None:
        assert self.writer.flush() == len(self.appended)

    @rule()
    def sync(self) -> None:
        self.acked = self.writer.sync()
        assert self.acked == len(self.appended)

    @rule()
    def wait_for_group_commit(self) -> None:
        assert self.writer.wait_durable(len(self.appended), timeout=10)
        self.acked = self.writer.durable_seq

    @rule()
    def observe_durable(self) -> None:
        self.acked = max(self.acked, self.writer.durable_seq)

    @rule(where=st.integers(0, 1000), zeros=st.sampled_from([0, 0, 5, 64]))
    def crash(self, where: int, zeros: int) -> None:
        """`where` picks the cut in the unsynced tail (0: at the durable point, 1000: keep it all)."""
        self.acked = max(self.acked, self.writer.durable_seq)
        kept = {path.name: path.read_bytes() for _, path in list_segments(self.directory)}
        self.writer.close()
        for _, path in list_segments(self.directory):
            path.unlink()
        for name, content in kept.items():
            (self.directory / name).write_bytes(content)
        last = list_segments(self.directory)[-1][1]
        durable_end = max(
            [end for seq, end in frame_ends(last) if seq <= self.acked], default=SEGMENT_HEADER_SIZE
        )
        size = len(kept[last.name])
        cut = durable_end + (size - durable_end) * where // 1000
        with open(last, "r+b") as f:
            f.truncate(cut)
            f.seek(cut)
            f.write(bytes(zeros if cut < size else 0))

        self.writer = self.open()
        recovered = list(JournalReader(self.directory).read())
        assert recovered == self.appended[: len(recovered)]
        assert len(recovered) >= self.acked
        assert self.writer.last_seq == len(recovered)
        report = self.writer.recovery
        assert (report is not None) == (last.stat().st_size != cut + (zeros if cut < size else 0))
        if report is not None:
            assert report.cut_from_seq == len(recovered) + 1
        self.appended = recovered

    @invariant()
    def seqs_are_ordered(self) -> None:
        assert self.writer.durable_seq <= self.writer.last_seq == len(self.appended)

    def teardown(self) -> None:
        self.writer.close()
        assert [e.seq for e in JournalReader(self.directory).read()] == list(range(1, len(self.appended) + 1))
        shutil.rmtree(self.root)


JournalMachine.TestCase.settings = settings(
    max_examples=75, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_journal_machine = JournalMachine.TestCase
