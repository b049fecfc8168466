"""Snapshot files: atomic replacement, newest valid wins, corruption skipped with a warning, private;
a snapshot is used only while the journal holds the very frame it was taken at."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from events.journal import JournalWriter
from events.journal_errors import CorruptSnapshot
from events.snapshots import (
    CorruptSnapshotWarning,
    StaleSnapshotWarning,
    frame_crc_at,
    latest_snapshot,
    list_snapshots,
    prune_snapshots,
    read_snapshot,
    write_snapshot,
)
from tests.journal_helpers import cut_after, numbered


@pytest.fixture(autouse=True)
def journal(tmp_path: Path) -> None:
    """A journal of 40 events in tmp_path: snapshots name frames of a real log."""
    grow(tmp_path, 40)


def grow(directory: Path, count: int, offset: int = 0) -> int:
    with JournalWriter.open(directory, durability="never") as writer:
        for i in range(count):
            writer.append(numbered(offset + i))
        return writer.last_seq


def corrupt(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_write_then_read_back_privately(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, 40, b"state at 40")
    assert path == tmp_path / "snapshots" / "00000000000000000040.snap"
    assert read_snapshot(path) == (40, b"state at 40")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_rewrite_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, 7, b"old" * 1000)
    with open(path, "rb") as held:  # a reader that opened the old file keeps reading it whole
        write_snapshot(tmp_path, 7, b"new")
        assert held.read()[-3000:] == b"old" * 1000
    assert read_snapshot(path) == (7, b"new")


def test_latest_picks_the_newest_valid_one(tmp_path: Path) -> None:
    for seq in (10, 20, 30):
        write_snapshot(tmp_path, seq, f"state {seq}".encode())
    assert latest_snapshot(tmp_path) == (30, b"state 30")
    assert latest_snapshot(tmp_path, max_seq=29) == (20, b"state 20")
    assert latest_snapshot(tmp_path, max_seq=9) is None
    corrupt(tmp_path / "snapshots" / "00000000000000000030.snap")
    with pytest.warns(CorruptSnapshotWarning, match="CRC"):
        assert latest_snapshot(tmp_path) == (20, b"state 20")
    assert [info.seq for info in list_snapshots(tmp_path)] == [10, 20, 30]


def test_truncated_or_foreign_snapshots_are_detected(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, 5, b"0123456789")
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(CorruptSnapshot, match="8 payload bytes") as refused:
        read_snapshot(path)
    assert refused.value.code == "snapshot_corrupt"
    path.write_bytes(b"hello")
    with pytest.raises(CorruptSnapshot, match="not a snapshot"):
        read_snapshot(path)
    with pytest.warns(CorruptSnapshotWarning):
        assert latest_snapshot(tmp_path) is None


def test_a_snapshot_with_more_bytes_than_its_header_says_or_fewer_is_refused_unread(tmp_path: Path) -> None:
    """The payload is read in one read of the length the header gives, so that length is checked against
    the file first: neither bytes after it nor a forged huge length get through (or get allocated)."""
    path = write_snapshot(tmp_path, 5, b"0123456789")
    whole = path.read_bytes()
    path.write_bytes(whole + b"xy")
    with pytest.raises(CorruptSnapshot, match="holds 12 payload bytes, its header says 10"):
        read_snapshot(path)
    path.write_bytes(whole[:20] + (2**63).to_bytes(8, "little") + whole[28:])  # offset 20: the length
    with pytest.raises(CorruptSnapshot, match=f"holds 10 payload bytes, its header says {2**63}"):
        read_snapshot(path)


def test_a_snapshot_renamed_to_another_seq_is_skipped(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, 5, b"five")
    path.rename(path.with_name("00000000000000000009.snap"))
    with pytest.warns(CorruptSnapshotWarning, match="not its name"):
        assert latest_snapshot(tmp_path) is None


def test_no_snapshots_at_all(tmp_path: Path) -> None:
    assert latest_snapshot(tmp_path) is None and list_snapshots(tmp_path) == []
    assert latest_snapshot(tmp_path / "elsewhere") is None


def test_prune_keeps_the_newest_valid_ones(tmp_path: Path) -> None:
    for seq in range(1, 6):
        write_snapshot(tmp_path, seq, b"s")
    corrupt(tmp_path / "snapshots" / "00000000000000000005.snap", offset=12)
    crashed = tmp_path / "snapshots" / ".00000000000000000006.snap.1.tmp"
    crashed.write_bytes(b"half a snapshot")
    assert latest_snapshot(tmp_path, max_seq=4) == (4, b"s")
    removed = prune_snapshots(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == sorted(
        [crashed.name, *(f"{seq:020d}.snap" for seq in (1, 2, 5))]
    )
    assert [info.seq for info in list_snapshots(tmp_path)] == [3, 4]
    with pytest.raises(ValueError, match="keep"):
        prune_snapshots(tmp_path, keep=0)


def test_a_snapshot_records_its_frame_and_a_regrown_log_makes_it_stale(tmp_path: Path) -> None:
    write_snapshot(tmp_path, 30, b"state 30")
    write_snapshot(tmp_path, 20, b"state 20")
    assert latest_snapshot(tmp_path) == (30, b"state 30")
    cut_after(tmp_path, 25)
    grow(tmp_path, 10, offset=1000)  # open() deletes snapshots beyond the cut: seq 30 goes at once
    assert [info.seq for info in list_snapshots(tmp_path)] == [20]
    write_snapshot(tmp_path, 30, b"state 30 of the new log")
    assert latest_snapshot(tmp_path) == (30, b"state 30 of the new log")


def test_a_stale_snapshot_is_skipped_and_deleted_only_when_asked(tmp_path: Path) -> None:
    stale = write_snapshot(tmp_path, 30, b"old 30")
    write_snapshot(tmp_path, 10, b"state 10")
    saved = stale.read_bytes()
    cut_after(tmp_path, 25)
    grow(tmp_path, 10, offset=1000)  # the log is at 35 again, with other events from 26 on
    stale.write_bytes(saved)  # as if the cut had happened without the journal being opened
    assert frame_crc_at(tmp_path, 30) is not None
    with pytest.warns(StaleSnapshotWarning, match="not the one it was taken at"):
        assert latest_snapshot(tmp_path) == (10, b"state 10")
    assert stale.exists()  # a reader never deletes
    with pytest.warns(StaleSnapshotWarning, match="deleted"):
        assert latest_snapshot(tmp_path, discard=True) == (10, b"state 10")
    assert not stale.exists()


def test_a_format_1_snapshot_has_no_identity_and_is_skipped(tmp_path: Path) -> None:
    import struct
    import zlib

    payload = b"v1 state"
    crc = zlib.crc32(payload, zlib.crc32((5).to_bytes(8, "little")))
    folder = tmp_path / "snapshots"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{5:020d}.snap"
    path.write_bytes(struct.pack("<8sIQQI", b"IBOMSSNP", 1, 5, len(payload), crc) + payload)
    assert read_snapshot(path) == (5, payload)  # still readable (replay --verify compares it)
    with pytest.warns(StaleSnapshotWarning, match="format 1"):
        assert latest_snapshot(tmp_path) is None


def test_no_frame_no_snapshot(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frame at seq 41"):
        write_snapshot(tmp_path, 41, b"beyond")
    assert frame_crc_at(tmp_path, 0) == 0 and frame_crc_at(tmp_path, 41) is None


def test_a_frame_is_identified_through_the_segment_index_and_a_stale_index_is_not_believed(
    tmp_path: Path,
) -> None:
    from events import index
    from events.segments import list_segments

    scanned = {seq: frame_crc_at(tmp_path, seq) for seq in (1, 20, 40)}
    ((first, segment),) = list_segments(tmp_path)
    index.segment_index(segment, first, closed=False)  # what a reader of --order or --at leaves behind
    assert index.load(segment, first) is not None
    assert {seq: frame_crc_at(tmp_path, seq) for seq in (1, 20, 40)} == scanned
    assert frame_crc_at(tmp_path, 41) is None
    snapshot = write_snapshot(tmp_path, 20, b"state 20")
    assert latest_snapshot(tmp_path) == (20, b"state 20")
    saved, taken = index.index_path(segment).read_bytes(), snapshot.read_bytes()
    cut_after(tmp_path, 15)
    grow(tmp_path, 10, offset=1000)
    index.index_path(segment).write_bytes(saved)  # an index of the old log: frames no longer there
    snapshot.write_bytes(taken)
    assert index.load(segment, first) is not None
    with pytest.warns(StaleSnapshotWarning, match="not the one it was taken at"):
        assert latest_snapshot(tmp_path) is None
    assert frame_crc_at(tmp_path, 20) not in (None, scanned[20])
