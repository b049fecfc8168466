"""Snapshot files: the fold's encoded state at a seq, a cache for start-up and never the truth.

They live in `<journal directory>/snapshots/NNNNNNNNNNNNNNNNNNNN.snap` (20-digit seq). A file is a
36-byte header then the opaque payload (oms encodes the state; this module never looks inside):

    offset 0   8 bytes  magic b"IBOMSSNP"
    offset 8   u32 LE   format version (2)
    offset 12  u64 LE   seq (the state includes every event up to and including it)
    offset 20  u64 LE   payload length
    offset 28  u32 LE   the CRC of the journal frame at seq (0 for seq 0): the frame's identity
    offset 32  u32 LE   CRC-32 of the 8 seq bytes, the 4 frame-CRC bytes, then the payload

A snapshot cannot lie about its log: it is used only while the journal still holds the very frame it was
taken at. After a cut (a torn tail, an operator truncating at a corruption) the log may grow again past
the snapshot's seq with other events; the frame at that seq then differs, and the snapshot is skipped
(and, by the service, deleted) with a warning. Format 1 files carry no identity and are skipped likewise.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path

import msgspec

from events import index
from events.frames import HEADER, HEADER_SIZE, iter_frames
from events.journal_errors import CorruptSnapshot
from events.segments import SEGMENT_HEADER_SIZE, SNAPSHOT_DIR, fsync_dir, list_segments, make_dir

MAGIC = b"IBOMSSNP"
FORMAT_VERSION = 2
_HEADER = struct.Struct("<8sIQQII")
_HEADER_V1 = struct.Struct("<8sIQQI")
_SUFFIX = ".snap"
_DIGITS = 20


class CorruptSnapshotWarning(UserWarning):
    """A snapshot failed its checks and was skipped (start-up falls back to an older one or the log)."""


class StaleSnapshotWarning(CorruptSnapshotWarning):
    """A snapshot whose journal frame is gone or different (the log was cut and grew again): skipped."""


class SnapshotInfo(msgspec.Struct, frozen=True):
    seq: int
    path: Path
    size: int


class Snapshot(msgspec.Struct, frozen=True):
    """A snapshot file read and checked: `frame_crc` is None for a format 1 file (no identity)."""

    seq: int
    frame_crc: int | None
    payload: bytes


def snapshot_dir(directory: str | os.PathLike[str]) -> Path:
    return Path(directory) / SNAPSHOT_DIR


def _crc(seq: int, frame_crc: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(seq.to_bytes(8, "little") + frame_crc.to_bytes(4, "little")))


def write_snapshot(
    directory: str | os.PathLike[str],
    seq: int,
    payload: bytes,
    frame_crc: int | None = None,
    *,
    folder: Path | None = None,
    durable: bool = True,
) -> Path:
    """Store `payload` as the state at `seq` of the journal in `directory`, atomically: a reader sees the
    whole file or none. `frame_crc` is the CRC of the journal's frame at `seq` (the writer knows it even
    before the frame reaches the file); by default it is read from the journal. `folder`: where to keep
    it instead of the journal's snapshot directory (a reader's own cache of states); such a cache need
    not be `durable` (no fsync: a file torn by a crash fails its CRC and is dropped)."""
    if seq < 0:
        raise ValueError(f"snapshot seq must be >= 0, not {seq}")
    if frame_crc is None:
        frame_crc = frame_crc_at(directory, seq)
        if frame_crc is None:
            raise ValueError(f"the journal in {directory} holds no frame at seq {seq} to snapshot")
    folder = folder or snapshot_dir(directory)
    make_dir(folder)
    final = folder / f"{seq:0{_DIGITS}d}{_SUFFIX}"
    temp = folder / f".{final.name}.{os.getpid()}.tmp"
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, seq, len(payload), frame_crc, _crc(seq, frame_crc, payload))
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(folder)
    return final


def load_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """One snapshot file, checked; `CorruptSnapshot` if any check fails."""
    with Path(path).open("rb") as file:
        head = file.read(_HEADER.size)
        if len(head) < _HEADER_V1.size or head[:8] != MAGIC:
            raise CorruptSnapshot(f"{path} is not a snapshot (no {MAGIC!r} header)")
        version = int.from_bytes(head[8:12], "little")
        if version == 1:
            _, _, seq, length, crc = _HEADER_V1.unpack_from(head)
            payload, frame_crc = head[_HEADER_V1.size :] + file.read(), None
            expected = zlib.crc32(payload, zlib.crc32(seq.to_bytes(8, "little")))
        elif version == FORMAT_VERSION and len(head) == _HEADER.size:
            _, _, seq, length, frame_crc, crc = _HEADER.unpack_from(head)
            held = os.fstat(file.fileno()).st_size - _HEADER.size
            if held != length:
                raise CorruptSnapshot(f"{path} holds {held} payload bytes, its header says {length}")
            payload = file.read(length)  # in one read, one copy: a state may be 80 MB
            expected = _crc(seq, frame_crc, payload)
        else:
            raise CorruptSnapshot(f"{path} is snapshot format {version}; this code reads {FORMAT_VERSION}")
    if len(payload) != length:
        raise CorruptSnapshot(f"{path} holds {len(payload)} payload bytes, its header says {length}")
    if expected != crc:
        raise CorruptSnapshot(f"{path} fails its CRC")
    return Snapshot(seq, frame_crc, payload)


def read_snapshot(path: str | os.PathLike[str]) -> tuple[int, bytes]:
    """(seq, payload) of one snapshot file; `CorruptSnapshot` if any check fails."""
    snapshot = load_snapshot(path)
    return snapshot.seq, snapshot.payload


def frame_crc_at(directory: str | os.PathLike[str], seq: int) -> int | None:
    """The CRC of the journal frame at `seq` as the files hold it now (0 for seq 0), or None when the
    journal holds no complete, intact frame at `seq`. Reads one segment."""
    if seq == 0:
        return 0
    segments = [s for s in list_segments(Path(directory)) if s[0] <= seq]
    if not segments:
        return None
    first, path = segments[-1]
    try:
        indexed = index.frame_at(path, first, seq)
        if indexed is not None:
            return indexed[1]
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    for at, start, _ in iter_frames(data, SEGMENT_HEADER_SIZE, first):  # each one's CRC checked
        if at == seq:
            crc: int = HEADER.unpack_from(data, start - HEADER_SIZE)[1]
            return crc
    return None


def list_snapshots(directory: str | os.PathLike[str], folder: Path | None = None) -> list[SnapshotInfo]:
    """Every snapshot file by name, oldest first (not validated: `read_snapshot` does that); `folder`: a
    directory of them other than the journal's own."""
    folder = folder or snapshot_dir(directory)
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
    directory: str | os.PathLike[str],
    max_seq: int | None = None,
    *,
    discard: bool = False,
    frame_crc: Callable[[int], int | None] | None = None,
    folder: Path | None = None,
) -> tuple[int, bytes] | None:
    """The newest valid snapshot of the journal in `directory` at or below `max_seq` (pass the journal's
    last seq) whose seq the journal still holds with the same frame. Corrupt or stale ones are skipped
    with a `CorruptSnapshotWarning` (`StaleSnapshotWarning`), and deleted when `discard` is set (only
    the journal's writer may: readers never change the directory). `frame_crc`: the writer's own (it
    knows its last frame without reading the segment), else `frame_crc_at`. `folder`: look there instead
    of the journal's snapshot directory (checked against the journal in `directory` all the same)."""
    for info in reversed(list_snapshots(directory, folder)):
        if max_seq is not None and info.seq > max_seq:
            continue
        try:
            snapshot = load_snapshot(info.path)
        except FileNotFoundError:  # pruned by the writer since we listed it: an older one will do
            continue
        except CorruptSnapshot as exc:
            _skip(info.path, str(exc), CorruptSnapshotWarning, discard)
            continue
        if snapshot.seq != info.seq:
            _skip(
                info.path,
                f"{info.path} holds seq {snapshot.seq}, not its name's",
                CorruptSnapshotWarning,
                discard,
            )
            continue
        problem = _identity_problem(snapshot, frame_crc or partial(frame_crc_at, directory))
        if problem is None:
            return snapshot.seq, snapshot.payload
        _skip(info.path, f"{info.path}: {problem}; not used", StaleSnapshotWarning, discard)
    return None


def _identity_problem(snapshot: Snapshot, frame_crc: Callable[[int], int | None]) -> str | None:
    if snapshot.frame_crc is None:
        return "a format 1 snapshot records no journal frame identity"
    actual = frame_crc(snapshot.seq)
    if actual is None:
        return f"the journal holds no frame at seq {snapshot.seq} any more"
    if actual != snapshot.frame_crc:
        return (
            f"the journal's frame at seq {snapshot.seq} is not the one it was taken at "
            "(the log was cut and grew again)"
        )
    return None


def _skip(path: Path, message: str, category: type[Warning], discard: bool) -> None:
    if discard:
        path.unlink(missing_ok=True)
        message += " (deleted)"
    warnings.warn(message, category, stacklevel=3)


def discard_snapshots_beyond(directory: str | os.PathLike[str], last_seq: int) -> list[Path]:
    """Delete the snapshots beyond the journal's end (its tail was cut): they hold events the log no
    longer has. Returns what was deleted."""
    removed = [info.path for info in list_snapshots(directory) if info.seq > last_seq]
    for path in removed:
        path.unlink(missing_ok=True)
    if removed:
        fsync_dir(snapshot_dir(directory))
    return removed


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
