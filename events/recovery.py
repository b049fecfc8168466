"""Start-up recovery of the writer: find where the log ends, cutting off a torn tail.

Only the last segment can have a torn tail: the writer fsyncs a segment completely before it creates
the next one. Every segment's header is checked; the last segment is scanned frame by frame (so its
size bounds the scan, and start-up, whatever the journal's length).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from events.frames import HEADER_SIZE, diagnose, iter_frames
from events.journal_errors import CorruptJournal
from events.segments import (
    SEGMENT_HEADER_SIZE,
    check_segment_header,
    create_segment,
    remove_temp_files,
    segment_name,
)


class Recovery(msgspec.Struct, frozen=True):
    """A torn tail that was cut off on open: what was lost was never acknowledged as durable."""

    segment: str
    offset: int
    cut_from_seq: int
    cut_bytes: int
    reason: str

    def __str__(self) -> str:
        return (
            f"journal recovery: cut {self.cut_bytes} bytes of a torn tail from {self.segment} at byte "
            f"{self.offset} ({self.reason}); the log now ends at seq {self.cut_from_seq - 1}"
        )


@dataclass(frozen=True, slots=True)
class LogEnd:
    """Where the writer continues: the last segment, its size, the last good seq."""

    segment_first: int
    fd: int
    size: int
    last_seq: int
    recovery: Recovery | None
    last_header: bytes  # the last frame's header (b"" in an empty log): its CRC identifies the frame


def recover(directory: Path, segments: list[tuple[int, Path]]) -> LogEnd:
    """Open the end of the log for appending (creating segment 1 in an empty journal)."""
    remove_temp_files(directory)
    if not segments:
        return LogEnd(1, create_segment(directory, 1), SEGMENT_HEADER_SIZE, 0, None, b"")
    for first, path in segments[:-1]:
        with open(path, "rb") as f:
            check_segment_header(path, f.read(SEGMENT_HEADER_SIZE), first)
    first, path = segments[-1]
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        data = _read_all(fd)
        check_segment_header(path, data, first)
        pos, seq, last = SEGMENT_HEADER_SIZE, first, 0
        for seq_, start, end_ in iter_frames(data, pos, seq):
            pos, seq, last = end_, seq_ + 1, start
        last_header = data[last - HEADER_SIZE : last] if last else b""
        damage = diagnose(data, pos, seq)
        recovery = None
        if damage is not None:
            if not damage.torn:
                raise CorruptJournal(path, damage.offset, damage.reason)
            os.ftruncate(fd, pos)
            os.fsync(fd)
            recovery = Recovery(segment_name(first), pos, seq, len(data) - pos, damage.reason)
    except BaseException:
        os.close(fd)
        raise
    return LogEnd(first, fd, pos, seq - 1, recovery, last_header)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
