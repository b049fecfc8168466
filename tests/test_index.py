"""Segment indexes (events/index.py): equal to a full scan, rebuilt when missing, stale, corrupt, unreadable
or forged (events/lookup.py checks every frame an index points to)."""

from __future__ import annotations

import logging
import shutil
import stat
from array import array
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.index import (
    SegmentIndex,
    build,
    frame_names,
    index_path,
    indexes,
    key_hash,
    load,
    segment_index,
    store,
)
from events.journal import JournalWriter
from events.journal_errors import CorruptJournal
from events.lookup import order_events, seq_at
from events.reader import JournalReader
from events.segments import list_segments
from oms.state.fold import fold
from replay.points import seq_at_time
from replay.source import JournalSource
from replay.timeline import order_timelines
from tests.journal_helpers import cut_after, frame_ends, mixed_event
from tests.test_replay_support import A1_SEQS, T0, explicit_events, fresh_dir, write_journal


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


def _closed_first_segment(tmp_path: Path) -> tuple[Path, Path, SegmentIndex]:
    """The explicit session (order A1: seqs 3 to 15) in a first segment the writer closed and indexed,
    then more segments: (journal, that segment, its true index)."""
    directory = write_journal(tmp_path / "j", explicit_events())
    with JournalWriter.open(directory, segment_bytes=4096) as writer:
        for i in range(120):
            writer.append(mixed_event(i), ts=T0 + (20 + i) * 10**9)
    (first, segment), *rest = list_segments(directory)
    true = load(segment, first)
    assert true is not None and rest and true.frames > max(A1_SEQS)
    return directory, segment, true


_SECONDS = (0, 3, 9, 14, 30, 60, 200)


def _answers(directory: Path) -> tuple[list[list[int]], list[int]]:
    """What the lookups give: the seqs of orders A1 and B2 by each of their names, and the seq at times."""
    orders = [[e.seq for e in order_events(directory, ident)] for ident in ("A1", "5", "999", "B2")]
    return orders, [seq_at(directory, T0 + second * 10**9 + 1) for second in _SECONDS]


def _scanned(directory: Path) -> tuple[list[list[int]], list[int]]:
    """The same answers from indexes built by a scan of a copy of the segments (no index file), the seq at
    a time checked against reading every frame up to it, and the orders against a fold of the whole log."""
    copy = directory.parent / "scanned"
    copy.mkdir()
    for _, segment in list_segments(directory):
        shutil.copyfile(segment, copy / segment.name)
    answers = _answers(copy)
    envs = list(JournalReader(directory).read())
    assert answers[1] == [seq_at_time(envs, T0 + second * 10**9 + 1) for second in _SECONDS]
    final = fold(envs)
    for coid in ("A1", "B2"):
        assert fold(order_events(copy, coid)).orders[coid] == final.orders[coid]
    shutil.rmtree(copy)
    return answers


def _array(data: bytes, typecode: str, changes: dict[int, int]) -> bytes:
    values = array(typecode, data)
    for i, value in changes.items():
        values[i] = value
    return values.tobytes()


def _forge(segment: Path, index: SegmentIndex, **fields: object) -> None:
    """Store `index` with `fields` changed, under a valid CRC: a lie the file's checks cannot catch."""
    store(segment, msgspec.structs.replace(index, **fields))


def _postings_of(index: SegmentIndex, key: str) -> range:
    """Where `key`'s frame numbers are in `index.postings` (as u32 positions)."""
    hashes = list(array("Q", index.hashes))
    i = hashes.index(key_hash(key))
    starts = array("I", index.starts)
    return range(starts[i], starts[i + 1])


def test_the_answers_of_an_intact_index_are_those_of_a_full_scan(tmp_path: Path) -> None:
    directory, _, _ = _closed_first_segment(tmp_path)
    assert _answers(directory) == _scanned(directory)


def test_an_index_that_is_a_directory_is_rebuilt_with_a_warning(tmp_path: Path, caplog) -> None:
    directory, segment, true = _closed_first_segment(tmp_path)
    index_path(segment).unlink()
    index_path(segment).mkdir()
    with caplog.at_level(logging.WARNING, logger="events.index"):
        assert _answers(directory) == _scanned(directory)
        assert segment_index(segment, true.first_seq, closed=True) == true  # built in memory
    assert f"journal index {index_path(segment)} cannot be read" in caplog.text
    assert index_path(segment).is_dir()  # not ours to delete; nothing else is left behind
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


def _wrong_frames(index: SegmentIndex, key: str) -> dict[int, int]:
    """`key`'s postings pointed at the last frames of the segment, which do not name it."""
    where = _postings_of(index, key)
    return {p: index.frames - 1 - k for k, p in enumerate(where)}


def _offsets(index: SegmentIndex, how: str) -> dict[int, int]:
    """New offsets of A1's frames (none the first or last of the segment)."""
    true = array("Q", index.offsets)
    frames = [seq - index.first_seq for seq in A1_SEQS]
    size = index.length
    value = {
        "beyond EOF": lambda f: size + 100 * f,
        "far beyond EOF": lambda f: 2**63 + f,
        "a frame with another seq": lambda f: true[f + 1],
        "inside a frame": lambda f: true[f] + 3,
    }[how]
    return {f: value(f) for f in frames}


@pytest.mark.parametrize(
    "forgery",
    [
        lambda i: {"postings": _array(i.postings, "I", _wrong_frames(i, "c:A1"))},
        lambda i: {"postings": _array(i.postings, "I", _wrong_frames(i, "c:B2"))},
        lambda i: {"postings": _array(i.postings, "I", {p: i.frames + 7 for p in _postings_of(i, "p:999")})},
        lambda i: {"offsets": _array(i.offsets, "Q", _offsets(i, "beyond EOF"))},
        lambda i: {"offsets": _array(i.offsets, "Q", _offsets(i, "far beyond EOF"))},
        lambda i: {"offsets": _array(i.offsets, "Q", _offsets(i, "a frame with another seq"))},
        lambda i: {"offsets": _array(i.offsets, "Q", _offsets(i, "inside a frame"))},
        lambda i: {"sample_ts": _array(i.sample_ts, "Q", dict.fromkeys(range(len(i.sample_ts) // 8), 2**62))},
        lambda i: {"first_seq": i.first_seq, "length": i.length + 1},
    ],
    ids=[
        "postings-wrong-frames",
        "postings-wrong-frames-b2",
        "postings-past-the-frames",
        "offsets-beyond-eof",
        "offsets-far-beyond-eof",
        "offsets-other-seq",
        "offsets-inside-a-frame",
        "time-samples-too-late",
        "length-past-last-frame",
    ],
)
def test_a_forged_index_gives_what_a_scan_gives_and_is_rebuilt(tmp_path: Path, caplog, forgery) -> None:
    directory, segment, true = _closed_first_segment(tmp_path)
    _forge(segment, true, **forgery(true))
    assert load(segment, true.first_seq) != true or "length" in forgery(true)
    with caplog.at_level(logging.WARNING, logger="events.index"):
        assert _answers(directory) == _scanned(directory)
    assert load(segment, true.first_seq) == true == build(segment, true.first_seq, closed=True)
    assert "rebuilding it from its segment" in caplog.text


def test_the_wrong_frames_of_a_forged_postings_list_are_not_missing_from_the_timeline(tmp_path: Path) -> None:
    """The issue's case: a forged index once gave a silently incomplete timeline of the order."""
    directory, segment, true = _closed_first_segment(tmp_path)
    _forge(segment, true, postings=_array(true.postings, "I", _wrong_frames(true, "c:A1")))
    (timeline,) = order_timelines(JournalSource(directory), "A1")
    assert {e.env.seq for e in timeline.entries} >= set(A1_SEQS)
    assert timeline.entries[-1].order == fold(JournalReader(directory).read()).orders["A1"]


def test_a_segment_damaged_where_its_index_points_is_refused_as_corrupt(tmp_path: Path) -> None:
    """A frame that is not what a freshly built index says is damage to the segment, not the index."""
    directory, segment, true = _closed_first_segment(tmp_path)
    data = bytearray(segment.read_bytes())
    data[array("Q", true.offsets)[A1_SEQS[2] - true.first_seq] + 20] ^= 0xFF
    segment.write_bytes(bytes(data))
    with pytest.raises(CorruptJournal, match="bad CRC, yet a good frame follows"):
        order_events(directory, "A1")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.dictionaries(st.integers(0, 10**6), st.integers(0, 2**64 - 1), min_size=1, max_size=4),
    near=st.booleans(),
)
def test_any_forged_offsets_give_what_a_scan_gives(
    tmp_path: Path, changes: dict[int, int], near: bool
) -> None:
    """Offsets changed anywhere (to anything, or to a few bytes from the true one) under a valid CRC."""
    directory, segment, true = _closed_first_segment(fresh_dir(tmp_path))
    offsets = array("Q", true.offsets)
    forged = {
        k % true.frames: (offsets[k % true.frames] + v % 64 - 32 if near else v) % 2**64
        for k, v in changes.items()
    }
    _forge(segment, true, offsets=_array(true.offsets, "Q", forged))
    assert _answers(directory) == _scanned(directory)


def test_a_read_from_inside_a_segment_starts_at_the_frame_its_index_points_to(tmp_path: Path) -> None:
    """`read(from_seq)` seeks where the stored index says (replay's tail after a snapshot), so a frame
    before `from_seq` is not read: damage there is found by a read that crosses it, not by this one."""
    directory, segment, true = _closed_first_segment(tmp_path)
    everything = list(JournalReader(directory).read())
    data = bytearray(segment.read_bytes())
    data[array("Q", true.offsets)[1] + 20] ^= 0xFF  # the payload of seq first + 1
    segment.write_bytes(bytes(data))
    start = A1_SEQS[-1]
    assert list(JournalReader(directory).read(start)) == everything[start - 1 :]
    with pytest.raises(CorruptJournal, match="bad CRC, yet a good frame follows"):
        list(JournalReader(directory).read(true.first_seq + 1))


@pytest.mark.parametrize(
    "how", ["beyond EOF", "far beyond EOF", "a frame with another seq", "inside a frame"]
)
def test_a_read_from_a_forged_offset_gives_what_a_scan_gives(tmp_path: Path, how: str) -> None:
    directory, segment, true = _closed_first_segment(tmp_path)
    everything = list(JournalReader(directory).read())
    _forge(segment, true, offsets=_array(true.offsets, "Q", _offsets(true, how)))
    for start in A1_SEQS:
        assert list(JournalReader(directory).read(start, start + 3)) == everything[start - 1 : start + 3]
