"""Snapshot files: atomic replacement, newest valid wins, corruption skipped with a warning, private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from events.journal_errors import CorruptSnapshot
from events.snapshots import (
    CorruptSnapshotWarning,
    latest_snapshot,
    list_snapshots,
    prune_snapshots,
    read_snapshot,
    write_snapshot,
)


def corrupt(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_write_then_read_back_privately(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, 42, b"state at 42")
    assert path == tmp_path / "snapshots" / "00000000000000000042.snap"
    assert read_snapshot(path) == (42, b"state at 42")
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


def test_a_snapshot_renamed_to_another_seq_is_skipped(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, 5, b"five")
    path.rename(path.with_name("00000000000000000009.snap"))
    with pytest.warns(CorruptSnapshotWarning, match="not its name"):
        assert latest_snapshot(tmp_path) is None


def test_no_snapshots_at_all(tmp_path: Path) -> None:
    assert latest_snapshot(tmp_path) is None and list_snapshots(tmp_path) == []


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
