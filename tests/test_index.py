"""Segment indexes (events/index.py): equal to a full scan, rebuilt when missing, stale or corrupt."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from events.index import build, frame_names, index_path, indexes, load, segment_index, store
from events.journal import JournalWriter
from events.lookup import order_events, seq_at
from events.reader import JournalReader
from events.segments import list_segments
from replay.points import seq_at_time
from tests.journal_helpers import cut_after, frame_ends, mixed_event
from tests.test_replay_support import explicit_events, write_journal


def _journal(directory: Path, n: int = 400, segment_bytes: int = 4096) -> Path:
    with JournalWriter.open(directory, durability="never", segment_bytes=segment_bytes) as writer:
        for i in range(n):
            writer.append(mixed_event(i), ts=1_000 + i * 10 - (i % 7) * 25)  # not monotonic, as clocks go
    return directory


def _expected(directory: Path) -> dict[int, dict[str, list[int]]]:
    """Segment first seq -> key -> frame numbers, from reading every frame."""
    firsts = [first for first, _ in list_segments(directory)]
    found: dict[int, dict[str, list[int]]] = {first: {} for first in firsts}
    for seq, payload in JournalReader(directory).read_payloads():
        first = max(f for f in firsts if f <= seq)
        for key in frame_names(payload)[1]:
            found[first].setdefault(key, []).append(seq - first)
    return found


def test_the_index_equals_a_full_scan(tmp_path: Path) -> None:
    directory = _journal(tmp_path / "j")
    expected = _expected(directory)
    seen = list(indexes(directory))
    assert len(seen) == len(list_segments(directory)) > 3
    for path, index in seen:
        for key, frames in expected[index.first_seq].items():
            assert index.lookup(key) == sorted(set(frames)), key
        assert index.lookup("c:no-such-order") == []
        ends = frame_ends(path)
        assert [index.span(f, f)[1] for f in range(index.frames)] == [end for _, end in ends]
        assert index.length == path.stat().st_size
    envs = list(JournalReader(directory).read())
    for t in sorted({e.ts for e in envs} | {e.ts - 1 for e in envs} | {0, 10**12}):
        assert seq_at(directory, t) == seq_at_time(envs, t), t


def test_the_writer_indexes_each_segment_it_closes_readers_the_last_and_all_are_private(
    tmp_path: Path,
) -> None:
    directory = _journal(tmp_path / "j")  # the writer indexed each segment it closed, on its thread
    *closed, (first, last) = list_segments(directory)
    for _, path in closed:
        assert stat.S_IMODE(index_path(path).stat().st_mode) == 0o600
        assert load(path, int(path.stem)) == build(path, int(path.stem), closed=True)
    assert not index_path(last).exists()
    list(indexes(directory))
    assert load(last, first) == build(last, first, closed=False)
    assert stat.S_IMODE(index_path(last).stat().st_mode) == 0o600
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.unlink(),
        lambda p: p.write_bytes(b"garbage" * 50),
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        lambda p: p.write_bytes(p.read_bytes()[:-1] + bytes([p.read_bytes()[-1] ^ 1])),
    ],
    ids=["missing", "garbage", "truncated", "bit-flip"],
)
def test_a_missing_or_corrupt_index_is_rebuilt(tmp_path: Path, damage) -> None:
    directory = write_journal(tmp_path / "j", explicit_events())
    with JournalWriter.open(directory, segment_bytes=4096) as writer:  # roll: the old one is closed
        for i in range(60):
            writer.append(mixed_event(i))
    first, segment = list_segments(directory)[0]
    good = load(segment, first)
    assert good is not None
    before = [e.seq for e in order_events(directory, "A1")]
    damage(index_path(segment))
    assert [e.seq for e in order_events(directory, "A1")] == before
    assert load(segment, first) == good  # rebuilt and stored again


def test_an_index_of_a_segment_that_grew_is_continued_and_of_one_cut_is_rebuilt(tmp_path: Path) -> None:
    directory = write_journal(tmp_path / "j", explicit_events()[:9])
    (first, segment), *_ = list_segments(directory)
    store(segment, build(segment, first, closed=False))  # as if indexed while it was shorter
    write_journal(directory, explicit_events()[9:])
    grown = segment_index(segment, first, closed=True)
    assert grown == build(segment, first, closed=True)
    assert [e.seq for e in order_events(directory, "A1")][-1] == 15

    cut_after(directory, 12)  # cut, then grow again with other events past the old length
    write_journal(directory, [mixed_event(i) for i in range(20)])
    assert segment.stat().st_size > grown.length
    assert segment_index(segment, first, closed=True) == build(segment, first, closed=True)
    assert [e.seq for e in order_events(directory, "A1")][-1] == 10

    cut_after(directory, 6)  # shorter than indexed
    assert segment_index(segment, first, closed=True) == build(segment, first, closed=True)
    assert max(e.seq for e in order_events(directory, "A1")) == 6


def test_the_open_segment_is_indexed_on_as_it_grows(tmp_path: Path) -> None:
    directory = write_journal(tmp_path / "j", explicit_events()[:7])
    assert [e.seq for e in order_events(directory, "999")][-1] == 7
    write_journal(directory, explicit_events()[7:])
    assert [e.seq for e in order_events(directory, "999")][-1] == 15
