"""write_private: owner-only, atomic, and no temporary file left behind when the write fails."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from oms.service.files import write_private


def test_writes_owner_only_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_private(path, b"old", fsync=True)
    write_private(path, b"new", fsync=True)
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_failed_replace_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "taken"
    (path / "inside").mkdir(parents=True)  # a non-empty directory: the rename over it fails
    with pytest.raises(OSError):
        write_private(path, b"data", fsync=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert (path / "inside").is_dir()
