"""The journal writer: the single sequencer of the service, appending framed envelopes to segments.

`append` only encodes into an in-memory buffer (fast); `flush` hands the buffer to the OS in one write
(the service flushes before it publishes, so a published event survives kill -9); durability comes from
the policy:

- `always`: `append` writes and fsyncs before it returns;
- `group`: a committer thread writes and fsyncs at most `group_commit_ms` after the first unsynced
  append, covering everything appended by then (callers never block on the disk);
- `never`: the committer writes within `group_commit_ms` but never fsyncs (benchmarks); `durable_seq`
  then advances only through `sync()`, a segment roll or `close()`.

`commit_now()` asks the committer for that write + fsync at once, cutting the window short (an intent a
client waits for); the committer stays the only thread that fsyncs, so two fsyncs never queue on one file.

`durable_seq` is always the last seq known fsynced. Layout and guarantees: docs/journal.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from events.codec import encode
from events.frames import HEADER, HEADER_SIZE, MAX_PAYLOAD, frame_header
from events.index import SegmentIndexer
from events.journal_errors import FrameTooLarge, JournalClosed, JournalIOError
from events.lock import DirectoryLock
from events.recovery import Recovery, recover
from events.schema import Envelope, Event
from events.segments import SEGMENT_HEADER_SIZE, check_journal_dir, create_segment, make_dir
from events.snapshots import discard_snapshots_beyond, frame_crc_at

Durability = Literal["always", "group", "never"]
_Waiter = tuple[int, asyncio.AbstractEventLoop, "asyncio.Future[bool]"]


class JournalWriter:
    """Use `JournalWriter.open(...)`; thread-safe; also a context manager that closes."""

    def __init__(
        self,
        directory: Path,
        lock: DirectoryLock,
        durability: Durability,
        group_commit_ms: float,
        segment_bytes: int,
        clock: Callable[[], int],
    ) -> None:
        self.directory = directory
        self._lock_file = lock
        self._durability = durability
        self._window = group_commit_ms / 1000.0
        self._segment_bytes = segment_bytes
        self._clock = clock
        self._lock = threading.Lock()  # buffer, seqs, descriptor, segment roll
        self._cond = threading.Condition()  # durable_seq and its waiters
        self._buf = bytearray()
        self._fd = -1
        self._segment_size = 0
        self._last_seq = 0
        self._written_seq = 0
        self._durable_seq = 0
        self._waiters: list[_Waiter] = []
        self._dirty = False
        self._dirty_at = 0.0
        self._wake = threading.Event()
        self._hurry = threading.Event()  # cuts the commit window short (commit_now)
        self._closing = False
        self._closed = False
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.recovery: Recovery | None = None
        self.discarded_snapshots: list[Path] = []
        self._last_header = b""  # the header of the last frame appended (its CRC identifies it)
        self._indexer: SegmentIndexer | None = None  # indexes closed segments; started at the first roll

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        durability: Durability = "group",
        group_commit_ms: float = 2.0,
        segment_bytes: int = 16 << 20,
        clock: Callable[[], int] = time.time_ns,
    ) -> JournalWriter:
        """Lock the directory (creating it 0o700 if missing), recover its tail, and start appending.

        Raises `JournalLocked`, `NotAJournal`, `CorruptJournal`; `writer.recovery` reports a cut tail.
        Snapshots beyond the log's end (its tail was cut) are deleted: `writer.discarded_snapshots`."""
        if durability not in ("always", "group", "never"):
            raise ValueError(f"durability must be always, group or never, not {durability!r}")
        if segment_bytes <= SEGMENT_HEADER_SIZE or group_commit_ms < 0:
            raise ValueError("segment_bytes must exceed the segment header; group_commit_ms must be >= 0")
        path = Path(directory)
        make_dir(path)
        segments = check_journal_dir(path)
        lock = DirectoryLock.acquire(path)
        try:
            end = recover(path, segments)
            discarded = discard_snapshots_beyond(path, end.last_seq)
        except BaseException:
            lock.release()
            raise
        writer = cls(path, lock, durability, group_commit_ms, segment_bytes, clock)
        writer._fd, writer._segment_size, writer.recovery = end.fd, end.size, end.recovery
        writer._last_header = end.last_header
        writer._last_seq = writer._written_seq = writer._durable_seq = end.last_seq
        writer.discarded_snapshots = discarded
        if durability != "always":
            name = f"journal-commit {path}"
            writer._thread = threading.Thread(target=writer._commit_loop, name=name, daemon=True)
            writer._thread.start()
        return writer

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def durable_seq(self) -> int:
        return self._durable_seq

    def frame_crc(self, seq: int) -> int | None:
        """The CRC identifying the frame at `seq` (a snapshot records it): the last frame's from memory,
        any other from the files (None if they hold no such frame yet)."""
        with self._lock:
            if seq == self._last_seq and self._last_header:
                crc: int = HEADER.unpack(self._last_header)[1]
                return crc
            self._write()
        return frame_crc_at(self.directory, seq)

    def append(self, event: Event, ts: int | None = None) -> Envelope:
        """Give `event` the next seq and a receive time (`clock()` unless `ts`) and buffer it."""
        with self._lock:
            if self._closing or self._failure is not None:
                self._raise_unusable()
            seq = self._last_seq + 1
            env = Envelope(seq, self._clock() if ts is None else ts, event)  # type: ignore[arg-type]
            payload = encode(env)
            if len(payload) > MAX_PAYLOAD:
                raise FrameTooLarge(f"event of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte limit")
            buf = self._buf
            self._last_header = header = frame_header(seq, payload)
            buf += header
            buf += payload
            self._last_seq = seq
            self._segment_size += HEADER_SIZE + len(payload)
            if self._durability == "always":
                self._write()
                self._fsync(self._fd, seq)
            elif not self._dirty:
                self._dirty = True
                self._dirty_at = time.monotonic()
                self._wake.set()
            if self._segment_size >= self._segment_bytes:
                self._roll()
        return env

    def flush(self) -> int:
        """Hand everything appended to the OS (one write); returns the last seq written."""
        with self._lock:
            if self._failure is not None:
                self._raise_unusable()
            self._write()
            return self._written_seq

    def sync(self) -> int:
        """Flush and fsync now; returns `durable_seq`."""
        with self._lock:
            if self._closing or self._failure is not None:
                self._raise_unusable()
            self._write()
            target, fd = self._written_seq, os.dup(self._fd)
        try:
            self._fsync(fd, target)
        finally:
            os.close(fd)
        return self._durable_seq

    def commit_now(self) -> None:
        """Have the committer write and fsync what is appended now, without waiting for the rest of the
        group-commit window; pair with `wait_durable_async`. No effect unless durability is `group`."""
        if self._durability == "group":
            self._hurry.set()
            self._wake.set()

    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        """Block until `seq` is fsynced (True) or `timeout` passes / the writer closes (False)."""
        with self._cond:
            self._cond.wait_for(lambda: self._durable_seq >= seq or self._closed or self._failure, timeout)
            if self._durable_seq < seq and self._failure is not None:
                self._raise_unusable()
            return self._durable_seq >= seq

    async def wait_durable_async(self, seq: int) -> bool:
        """Await `seq` being fsynced (True) or the writer closing or failing first (False); woken by the
        committer thread through `call_soon_threadsafe`, never by polling."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        with self._cond:
            if self._durable_seq >= seq:
                return True
            if self._failure is not None:
                self._raise_unusable()
            if self._closed:
                return False
            self._waiters.append((seq, loop, future))
        return await future

    def close(self) -> None:
        """Flush, fsync, stop the committer and release the lock (idempotent)."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        self._wake.set()
        self._hurry.set()
        if self._thread is not None:
            self._thread.join()
        try:
            with self._lock:
                if self._failure is None:
                    self._write()
                    self._fsync(self._fd, self._written_seq)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
                waiters, self._waiters = self._waiters, []
            for _, loop, future in waiters:
                _resolve_soon(loop, future, False)
            with self._lock:
                os.close(self._fd)
            if self._indexer is not None:
                self._indexer.close()
            self._lock_file.release()

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- inside; callers of _write, _roll and _fsync on self._fd hold self._lock ------------------------

    def _write(self) -> None:
        buf = self._buf
        if not buf:
            return
        try:
            with memoryview(buf) as view:
                done = 0
                while done < len(view):
                    done += os.write(self._fd, view[done:])
        except OSError as exc:
            self._fail(exc)
        buf.clear()
        self._written_seq = self._last_seq

    def _fsync(self, fd: int, target: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            self._fail(exc)
        self._publish(target)

    def _roll(self) -> None:
        """Finish the full segment (written and fsynced) before its successor exists, so only the last
        segment can ever have a torn tail; then queue the finished one for its index (events.index)."""
        self._write()
        self._fsync(self._fd, self._written_seq)
        old = self._fd
        try:
            self._fd = create_segment(self.directory, self._last_seq + 1)
        except OSError as exc:
            self._fail(exc)
        self._segment_size = SEGMENT_HEADER_SIZE
        os.close(old)
        if self._indexer is None:
            self._indexer = SegmentIndexer(self.directory)
        self._indexer.closed(self._last_seq + 1)  # indexed on its thread: appends never wait for it

    def _commit_loop(self) -> None:
        while True:
            self._wake.wait()
            delay = self._dirty_at + self._window - time.monotonic()
            if delay > 0 and not self._closing:
                self._hurry.wait(delay)  # the commit window: gather what arrives before the deadline
            with self._lock:
                if self._closing or self._failure is not None:
                    return
                self._wake.clear()
                self._hurry.clear()
                self._dirty = False
                try:
                    self._write()
                except JournalIOError:
                    return
                if self._durability == "never" or self._written_seq <= self._durable_seq:
                    continue
                target, fd = self._written_seq, os.dup(self._fd)
            try:
                self._fsync(fd, target)
            except JournalIOError:
                return
            finally:
                os.close(fd)

    def _publish(self, target: int) -> None:
        with self._cond:
            if target <= self._durable_seq:
                return
            self._durable_seq = target
            self._cond.notify_all()
            if not self._waiters:
                return
            ready = [w for w in self._waiters if w[0] <= target]
            self._waiters = [w for w in self._waiters if w[0] > target]
        for _, loop, future in ready:
            _resolve_soon(loop, future, True)

    def _fail(self, exc: OSError) -> None:
        with self._cond:
            self._failure = exc
            self._cond.notify_all()
            waiters, self._waiters = self._waiters, []
        for _, loop, future in waiters:
            _resolve_soon(loop, future, False)
        raise JournalIOError(f"journal {self.directory} failed and stopped: {exc}") from exc

    def _raise_unusable(self) -> None:
        if self._failure is not None:
            raise JournalIOError(f"journal {self.directory} failed earlier: {self._failure}")
        raise JournalClosed(f"journal {self.directory} is closed")


def _resolve_soon(loop: asyncio.AbstractEventLoop, future: asyncio.Future[bool], value: bool) -> None:
    def resolve() -> None:
        if not future.done():
            future.set_result(value)

    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(resolve)
