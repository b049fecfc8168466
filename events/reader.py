"""Reading and tailing a journal, in any process, while its writer appends; readers never lock.

A reader follows the seq chain: within a segment frame seqs are contiguous, and the segment after it
must be named by the next seq. The last frame of the last segment may be half written while the
writer is live: the reader stops there (or waits, when tailing) instead of failing. A segment that has
a successor is complete (the writer finishes a segment before creating the next), so damage there,
and damage followed by a good frame anywhere, raises `CorruptJournal`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path
from typing import BinaryIO

from events.codec import decode
from events.frames import diagnose, iter_frames
from events.index import frame_at
from events.journal_errors import CorruptJournal
from events.schema import Envelope
from events.segments import SEGMENT_HEADER_SIZE, check_journal_dir, check_segment_header, list_segments


class JournalReader:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        """Raises `NotAJournal` for a path that is not a journal directory. An empty directory is an
        empty journal (a writer may not have started yet)."""
        self.directory = Path(directory)
        check_journal_dir(self.directory)

    def segments(self) -> list[tuple[int, Path]]:
        """(first seq, path) of every segment, oldest first."""
        return list_segments(self.directory)

    def segment_for(self, seq: int) -> Path | None:
        """The segment that holds `seq` if it was written (found from the names alone)."""
        segments = self.segments()
        index = bisect.bisect_right([first for first, _ in segments], seq) - 1
        return segments[index][1] if index >= 0 and seq >= 1 else None

    def read_payloads(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[tuple[int, bytes]]:
        """(seq, msgpack envelope) of each event written so far, without decoding (the fast path)."""
        for seq, view in _Cursor(self.directory, from_seq).drain():
            if to_seq is not None and seq > to_seq:
                return
            yield seq, bytes(view)
            if seq == to_seq:
                return

    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[Envelope]:
        """Decoded envelopes from `from_seq` to `to_seq` (inclusive) or to the current end."""
        for seq, view in _Cursor(self.directory, from_seq).drain():
            if to_seq is not None and seq > to_seq:
                return
            yield decode(view)
            if seq == to_seq:
                return

    def follow_payloads(
        self, from_seq: int = 1, most: int = 4096
    ) -> Generator[list[tuple[int, bytes]], None, None]:
        """Batches of at most `most` (seq, msgpack envelope) from `from_seq` on, without decoding, forever;
        an empty batch each time the reader has caught up (the caller waits its own way). Holds the
        segment open between batches, so following costs one read per batch, not a rescan."""
        cursor = _Cursor(self.directory, from_seq)
        try:
            while True:
                batch: list[tuple[int, bytes]] = []
                for seq, view in cursor.drain():
                    batch.append((seq, bytes(view)))
                    if len(batch) >= most:
                        yield batch
                        batch = []
                yield batch
        finally:
            cursor.close()

    def last_seq(self) -> int:
        """The last complete event's seq (0 when empty); reads only the last segment."""
        segments = self.segments()
        if not segments:
            return 0
        last = segments[-1][0] - 1
        for seq, _ in _Cursor(self.directory, segments[-1][0]).drain():
            last = seq
        return last

    def tail(
        self, from_seq: int = 1, *, poll_s: float = 0.02, stop: Callable[[], bool]
    ) -> Iterator[Envelope]:
        """Every event from `from_seq` on, following the writer across segments, until `stop()` is true
        (checked whenever the reader has caught up)."""
        with contextlib.closing(self._follow(from_seq, stop)) as events:
            for env in events:
                if env is None:
                    time.sleep(poll_s)
                else:
                    yield env

    async def tail_async(
        self, from_seq: int = 1, *, poll_s: float = 0.02, stop: Callable[[], bool] = lambda: False
    ) -> AsyncIterator[Envelope]:
        """`tail` for asyncio: `async for env in reader.tail_async(seq)`; end it with `stop` or `break`."""
        with contextlib.closing(self._follow(from_seq, stop)) as events:
            for env in events:
                if env is None:
                    await asyncio.sleep(poll_s)
                else:
                    yield env

    def _follow(self, from_seq: int, stop: Callable[[], bool]) -> Generator[Envelope | None, None, None]:
        """What `tail` and `tail_async` share: each new event, and None each time the reader has caught
        up (the caller then waits its own way: a thread sleeps, a coroutine yields to the loop)."""
        cursor = _Cursor(self.directory, from_seq)
        try:
            while not stop():
                caught_up = True
                for _, view in cursor.drain():
                    caught_up = False
                    yield decode(view)
                if caught_up:
                    yield None
        finally:
            cursor.close()


class _Cursor:
    """A position in the seq chain: the open segment, the byte after the last good frame, the next seq."""

    def __init__(self, directory: Path, from_seq: int) -> None:
        self._directory = directory
        self._from = max(from_seq, 1)
        self._file: BinaryIO | None = None
        self._path = directory
        self._first = 0
        self._pos = 0
        self._next = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def drain(self) -> Iterator[tuple[int, memoryview]]:
        """(seq, payload) of each good frame written so far at or after `from_seq`."""
        while True:
            segments = list_segments(self._directory)
            if self._file is None and not self._open(segments):
                return
            successor = next((s for s in segments if s[0] > self._first), None)
            # read only after looking for a successor: if one exists, this segment is complete
            assert self._file is not None
            self._file.seek(self._pos)
            data = self._file.read()
            if not data and os.fstat(self._file.fileno()).st_size < self._pos:
                raise CorruptJournal(self._path, self._pos, "the segment was cut below what was already read")
            view = memoryview(data)
            pos = 0
            for seq, start, end in iter_frames(data, 0, self._next):
                self._pos += end - pos
                pos = end
                self._next = seq + 1
                if seq >= self._from:
                    yield seq, view[start:end]
            damage = diagnose(data, pos, self._next)
            if damage is not None and not damage.torn:
                raise CorruptJournal(self._path, self._pos, damage.reason)
            if damage is not None and successor is not None:
                reason = f"{damage.reason} at the end of a segment that has a successor"
                raise CorruptJournal(self._path, self._pos, reason)
            if successor is None:
                return
            if successor[0] != self._next:
                reason = f"segment starts at seq {successor[0]}, not {self._next}"
                raise CorruptJournal(successor[1], 0, reason)
            self.close()

    def _open(self, segments: list[tuple[int, Path]]) -> bool:
        """Open the segment holding the next seq wanted (False: the journal has no segment yet)."""
        if not segments:
            return False
        wanted = self._next or self._from
        index = bisect.bisect_right([first for first, _ in segments], wanted) - 1
        if index < 0:
            raise CorruptJournal(segments[0][1], 0, f"no segment holds seq {wanted}")
        self._first, self._path = segments[index]
        self._file = open(self._path, "rb")  # noqa: SIM115 (held across drain() calls; closed by close())
        check_segment_header(self._path, self._file.read(SEGMENT_HEADER_SIZE), self._first)
        self._pos = SEGMENT_HEADER_SIZE
        self._next = self._first
        # far into a segment, start at the wanted frame where its stored index points (that frame is
        # checked there first), instead of reading and checking every frame before it
        found = frame_at(self._path, self._first, wanted) if wanted > self._first else None
        if found is not None:
            self._pos, self._next = found[0], wanted
        return True
