"""Snapshot files: the fold's encoded state at a seq, a cache for start-up and never the truth.

They live in `<journal directory>/snapshots/NNNNNNNNNNNNNNNNNNNN.snap` (20-digit seq). A file is a
32-byte header then the opaque payload (oms encodes the state; this module never looks inside):

    offset 0   8 bytes  magic b"IBOMSSNP"
    offset 8   u32 LE   format version (1)
    offset 12  u64 LE   seq (the state includes every event up to and including it)
    offset 20  u64 LE   payload length
    offset 28  u32 LE   CRC-32 of the 8 seq bytes followed by the payload
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import msgspec

from events.journal_errors import CorruptSnapshot
from events.segments import SNAPSHOT_DIR, fsync_dir, make_dir

MAGIC = b"IBOMSSNP"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIQQI")
_SUFFIX = ".snap"
_DIGITS = 20


class CorruptSnapshotWarning(UserWarning):
    """A snapshot failed its checks and was skipped (start-up falls back to an older one or the log)."""


class SnapshotInfo(msgspec.Struct, frozen=True):
    seq: int
    path: Path
    size: int


def snapshot_dir(directory: str | os.PathLike[str]) -> Path:
    return Path(directory) / SNAPSHOT_DIR


def write_snapshot(directory: str | os.PathLike[str], seq: int, payload: bytes) -> Path:
    """Store `payload` as the state at `seq`, atomically: a reader sees the whole file or none."""
    if seq < 0:
        raise ValueError(f"snapshot seq must be >= 0, not {seq}")
    folder = snapshot_dir(directory)
    make_dir(folder)
    final = folder / f"{seq:0{_DIGITS}d}{_SUFFIX}"
    temp = folder / f".{final.name}.{os.getpid()}.tmp"
    crc = zlib.crc32(payload, zlib.crc32(seq.to_bytes(8, "little")))
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_HEADER.pack(MAGIC, FORMAT_VERSION, seq, len(payload), crc))
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(folder)
    return final


def read_snapshot(path: str | os.PathLike[str]) -> tuple[int, bytes]:
    """(seq, payload) of one snapshot file; `CorruptSnapshot` if any check fails."""
    data = Path(path).read_bytes()
    if len(data) < _HEADER.size or data[:8] != MAGIC:
        raise CorruptSnapshot(f"{path} is not a snapshot (no {MAGIC!r} header)")
    _, version, seq, length, crc = _HEADER.unpack_from(data)
    payload = data[_HEADER.size :]
    if version != FORMAT_VERSION:
        raise CorruptSnapshot(f"{path} is snapshot format {version}; this code reads {FORMAT_VERSION}")
    if len(payload) != length:
        raise CorruptSnapshot(f"{path} holds {len(payload)} payload bytes, its header says {length}")
    if zlib.crc32(payload, zlib.crc32(seq.to_bytes(8, "little"))) != crc:
        raise CorruptSnapshot(f"{path} fails its CRC")
    return seq, payload


def list_snapshots(directory: str | os.PathLike[str]) -> list[SnapshotInfo]:
    """Every snapshot file by name, oldest first (not validated: `read_snapshot` does that)."""
    folder = snapshot_dir(directory)
    if not folder.is_dir():
        return []
    found = []
    for entry in os.scandir(folder):
        stem = entry.name[: -len(_SUFFIX)]
        if entry.name.endswith(_SUFFIX) and len(stem) == _DIGITS and stem.isdigit():
            try:
                size = entry.stat().st_size
            except FileNotFoundError:  # pruned by the writer while we listed: not a snapshot any more
                continue
            found.append(SnapshotInfo(int(stem), Path(entry.path), size))
    found.sort(key=lambda info: info.seq)
    return found


def latest_snapshot(
    directory: str | os.PathLike[str], max_seq: int | None = None
) -> tuple[int, bytes] | None:
    """The newest valid snapshot at or below `max_seq` (pass the journal's last seq: a snapshot beyond
    it covers events a recovery cut off); corrupt ones are skipped with a `CorruptSnapshotWarning`."""
    for info in reversed(list_snapshots(directory)):
        if max_seq is not None and info.seq > max_seq:
            continue
        try:
            seq, payload = read_snapshot(info.path)
        except FileNotFoundError:  # pruned by the writer since we listed it: an older one will do
            continue
        except CorruptSnapshot as exc:
            warnings.warn(str(exc), CorruptSnapshotWarning, stacklevel=2)
            continue
        if seq == info.seq:
            return seq, payload
        warnings.warn(f"{info.path} holds seq {seq}, not its name's", CorruptSnapshotWarning, stacklevel=2)
    return None


def prune_snapshots(directory: str | os.PathLike[str], keep: int = 3) -> list[Path]:
    """Keep the `keep` newest valid snapshots; delete older and corrupt ones, and temp files left by a
    crashed write. Returns what was deleted."""
    if keep < 1:
        raise ValueError("keep at least one snapshot")
    removed = []
    kept = 0
    for info in reversed(list_snapshots(directory)):
        if kept < keep:
            try:
                read_snapshot(info.path)
            except CorruptSnapshot:
                pass
            else:
                kept += 1
                continue
        info.path.unlink()
        removed.append(info.path)
    removed.extend(_remove_stale_temp_files(snapshot_dir(directory)))
    if removed:
        fsync_dir(snapshot_dir(directory))
    return removed


def _remove_stale_temp_files(folder: Path) -> list[Path]:
    """Temp files of writes that a crash interrupted (never renamed, so never a snapshot)."""
    if not folder.is_dir():
        return []
    mine = f".{os.getpid()}.tmp"
    stale = [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    stale = [p for p in stale if not p.name.endswith(mine)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
