"""Segment files: naming, the header that marks a file as ours, listing, and atomic creation.

A journal directory holds `NNNNNNNNNNNNNNNNNNNN.seg` files (20-digit first seq), their `.idx` indexes
(events.index), the writer's `LOCK` file and an optional `snapshots/` directory. Each segment starts
with a 24-byte header:

    offset 0   8 bytes  magic b"IBOMSJNL"
    offset 8   u32 LE   format version (1)
    offset 12  u64 LE   first seq (equals the file name)
    offset 20  u32 LE   CRC-32 of bytes 0..19
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from events.journal_errors import CorruptJournal, NotAJournal

MAGIC = b"IBOMSJNL"
FORMAT_VERSION = 1
SEGMENT_HEADER = struct.Struct("<8sIQI")
SEGMENT_HEADER_SIZE = SEGMENT_HEADER.size
SUFFIX = ".seg"
LOCK_NAME = "LOCK"
SNAPSHOT_DIR = "snapshots"
_NAME_DIGITS = 20


def segment_name(first_seq: int) -> str:
    return f"{first_seq:0{_NAME_DIGITS}d}{SUFFIX}"


def encode_segment_header(first_seq: int) -> bytes:
    head = SEGMENT_HEADER.pack(MAGIC, FORMAT_VERSION, first_seq, 0)[:-4]
    return head + struct.pack("<I", zlib.crc32(head))


def check_segment_header(path: Path, data: bytes, first_seq: int) -> None:
    """Refuse a file that is not ours (`NotAJournal`) or whose header was damaged (`CorruptJournal`)."""
    if data[: len(MAGIC)] != MAGIC:
        raise NotAJournal(f"{path} is not a journal segment (no {MAGIC!r} header)")
    if len(data) < SEGMENT_HEADER_SIZE:
        raise CorruptJournal(path, 0, f"segment header is {len(data)} of {SEGMENT_HEADER_SIZE} bytes")
    _, version, seq, crc = SEGMENT_HEADER.unpack_from(data)
    if zlib.crc32(data[: SEGMENT_HEADER_SIZE - 4]) != crc:
        raise CorruptJournal(path, 0, "bad segment header CRC")
    if version != FORMAT_VERSION:
        raise NotAJournal(f"{path} is journal format version {version}; this code reads {FORMAT_VERSION}")
    if seq != first_seq:
        raise CorruptJournal(path, 12, f"header says first seq {seq}, file name says {first_seq}")


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(first seq, path) of every segment, oldest first."""
    found = []
    for entry in os.scandir(directory):
        stem = entry.name[: -len(SUFFIX)]
        if entry.name.endswith(SUFFIX) and len(stem) == _NAME_DIGITS and stem.isdigit():
            found.append((int(stem), Path(entry.path)))
    found.sort()
    return found


def check_journal_dir(directory: Path) -> list[tuple[int, Path]]:
    """The segments of `directory`; `NotAJournal` when it is not a directory, or holds foreign files
    and no segment (so a writer never scribbles into the wrong directory)."""
    if not directory.is_dir():
        raise NotAJournal(f"{directory} is not a journal directory (not a directory)")
    segments = list_segments(directory)
    if not segments:
        ours = {LOCK_NAME, SNAPSHOT_DIR}
        foreign = sorted(
            n for n in os.listdir(directory) if n not in ours and not _is_temp(n) and not n.endswith(".idx")
        )
        if foreign:
            raise NotAJournal(f"{directory} is not a journal directory (holds {', '.join(foreign[:3])} ...)")
    return segments


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def remove_temp_files(directory: Path) -> None:
    """Leftovers of a segment creation interrupted by a crash (never renamed, so never part of the log)."""
    for name in os.listdir(directory):
        if _is_temp(name) and name[1:].startswith(tuple("0123456789")):
            os.unlink(directory / name)


def create_segment(directory: Path, first_seq: int) -> int:
    """Create a segment atomically (header written and fsynced before the name appears) and return a
    write descriptor positioned at its end."""
    final = directory / segment_name(first_seq)
    temp = directory / f".{final.name}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    try:
        os.write(fd, encode_segment_header(first_seq))
        os.fsync(fd)
        os.rename(temp, final)
        fsync_dir(directory)
    except BaseException:
        os.close(fd)
        raise
    return fd


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dir(directory: Path) -> None:
    """Create `directory` (and missing parents) with mode 0o700."""
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fsync_dir(directory.parent)
