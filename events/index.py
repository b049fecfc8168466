"""Segment indexes: which frames name an identifier, and where time passes, so that one order's events
or the seq at a time are found by reading a few frames instead of the whole log.

`NNNNNNNNNNNNNNNNNNNN.idx` sits beside its segment `NNNNNNNNNNNNNNNNNNNN.seg` (mode 0600, written
atomically: temp file, fsync, rename, fsync of the directory). It holds a 16-byte header (magic
b"IBOMSIDX", u32 LE format version, u32 LE CRC-32 of the body) then the body, a msgpack `SegmentIndex`.

An index is a cache, never the truth. It records what it indexed (the segment's first seq, the bytes of
the segment it covers, the 16-byte header of the last frame it covers, whose CRC identifies that frame)
and is rebuilt when it is missing, corrupt (bad magic, version or CRC, undecodable) or stale (the
segment is shorter than what was indexed, or holds another frame where the last indexed one was). A
segment that grew past what was indexed is indexed on from there: so the last segment, which the
writer is still appending to, is never taken as complete from its stored index, only as far as that
index goes. The writer has `SegmentIndexer` write the index of each segment it closes, on a thread of
its own, so the append and fsync path never waits for it; readers store what they index. An index that
cannot be read (not a regular file, unreadable, malformed) is rebuilt with a warning on the
`events.index` logger; one whose frames are not what it says (damaged, or forged with a valid CRC:
`IndexMismatch`, found by events.lookup as it reads them) is rebuilt by a scan (`rebuild`).
Layout and rules: docs/journal.md.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import queue
import stat
import struct
import threading
import zlib
from array import array
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import msgspec

from events.codec import CodecError
from events.frames import HEADER, HEADER_SIZE, diagnose, iter_frames
from events.journal_errors import CorruptJournal, JournalError
from events.schema import exec_base
from events.segments import SEGMENT_HEADER_SIZE, check_segment_header, fsync_dir, list_segments

MAGIC = b"IBOMSIDX"
FORMAT_VERSION = 2  # 2: `s:` only from the kinds that teach the fold a conId
SUFFIX = ".idx"
SAMPLE_EVERY = 256  # one time sample per this many frames: `--at` decodes at most this many
GLOBAL = "@"  # the key of frames every order's fold needs: the session's clientId, reconciliations
_FILE_HEADER = struct.Struct("<8sII")
_GLOBAL_KINDS = frozenset({"connection", "reconciliation_started", "reconciliation_finished"})
# The kinds whose contract the fold learns a symbol's conId from (oms.state.links: a request, IB's
# openOrder, execution and position); a position mismatch's contract may be the fold's own, so it
# names nothing.
_NAMING_KINDS = frozenset({"order_requested", "open_order", "execution", "position"})

log = logging.getLogger(__name__)


class IndexMismatch(Exception):
    """An index disagrees with its segment (damaged, or forged with a valid CRC): rebuild it by a scan."""


class _Instrument(msgspec.Struct):
    symbol: str = ""
    con_id: int = 0


class _Ids(msgspec.Struct):
    """The identifier fields of any event kind (absent ones keep their defaults)."""

    kind: str = ""
    contract: _Instrument | None = None
    client_order_id: str = ""
    order_ref: str = ""
    order_id: int = 0
    perm_id: int = 0
    client_id: int = 0
    exec_id: str = ""
    req_id: int = 0


class _Light(msgspec.Struct):
    ts: int
    event: _Ids


class _TsOnly(msgspec.Struct):
    ts: int


_light = msgspec.msgpack.Decoder(_Light)
_ts_only = msgspec.msgpack.Decoder(_TsOnly)


def frame_names(payload: bytes | memoryview) -> tuple[int, list[str]]:
    """(ts, keys) of one envelope, decoding only the identifier fields (several times faster than a full
    decode). Keys: `c:` client order id or orderRef, `o:clientId:orderId`, `p:` permId, `x:` execId and
    its part before the last "." (a correction's), `e:` the orderId an error names, `s:` the symbol of a
    contract named by conId in a kind the fold learns conIds from, and `@`."""
    try:
        light = _light.decode(payload)
    except msgspec.ValidationError:  # a kind newer than this code, with other field types: names nothing
        return _ts_only.decode(payload).ts, []
    except msgspec.DecodeError as exc:
        raise CodecError(f"not a msgpack envelope: {exc}") from exc
    e = light.event
    if e.kind in _GLOBAL_KINDS:
        return light.ts, [GLOBAL] if e.kind != "connection" or e.client_id else []
    keys = []
    if e.client_order_id:
        keys.append("c:" + e.client_order_id)
    if e.order_ref and e.order_ref != e.client_order_id:
        keys.append("c:" + e.order_ref)
    if e.order_id > 0:
        keys.append(f"o:{e.client_id}:{e.order_id}")
    if e.perm_id:
        keys.append(f"p:{e.perm_id}")
    if e.exec_id:
        keys.append("x:" + e.exec_id)
        base = exec_base(e.exec_id)
        if base != e.exec_id:
            keys.append("x:" + base)
    if e.kind == "error" and e.req_id > 0:
        keys.append(f"e:{e.req_id}")
    if e.contract is not None and e.contract.con_id and e.kind in _NAMING_KINDS:
        keys.append("s:" + e.contract.symbol)
    return light.ts, keys


def key_hash(key: str) -> int:
    """64 bits of two checksums of different kinds (a collision only costs a frame read and dropped)."""
    data = key.encode()
    return zlib.crc32(data) << 32 | zlib.adler32(data)


class SegmentIndex(msgspec.Struct, array_like=True):
    """The stored body. Arrays are bytes in the machine's order (little-endian on x86-64 and arm64), read
    in place: `hashes` (u64, sorted, one per
    key), `starts` (u32, where each key's frames begin in `postings`, plus the end), `postings` (u32 frame
    numbers: seq - first_seq), `offsets` (u64 byte offset of each frame), `sample_frames` (u32: every
    SAMPLE_EVERY-th frame and the last) and `sample_ts` (u64: the latest ts up to that frame)."""

    first_seq: int
    length: int  # bytes of the segment indexed: its header and whole frames
    tail: bytes  # the header of the last frame indexed (its CRC identifies it); b"" when none
    client_ids: list[int]  # the clientIds of the `o:` keys, so an orderId alone can be looked up
    hashes: bytes
    starts: bytes
    postings: bytes
    offsets: bytes
    sample_frames: bytes
    sample_ts: bytes

    @property
    def frames(self) -> int:
        return len(self.offsets) // 8

    @property
    def next_seq(self) -> int:
        return self.first_seq + self.frames

    def lookup(self, key: str) -> list[int]:
        """Frame numbers of the frames naming `key` (a hash collision may add one that does not)."""
        hashes = memoryview(self.hashes).cast("Q")
        h = key_hash(key)
        i = bisect.bisect_left(hashes, h)
        if i == len(hashes) or hashes[i] != h:
            return []
        starts = memoryview(self.starts).cast("I")
        return list(memoryview(self.postings).cast("I")[starts[i] : starts[i + 1]])

    def span(self, lo: int, hi: int) -> tuple[int, int]:
        """Byte range of frames `lo` to `hi` (inclusive); `IndexMismatch` if the index has no such frames
        or no such bytes (so a forged one never asks for a read before the segment or past its end)."""
        offsets = memoryview(self.offsets).cast("Q")
        if not 0 <= lo <= hi < len(offsets):
            raise IndexMismatch(f"frames {lo} to {hi} of an index of {len(offsets)} frames")
        start, stop = offsets[lo], offsets[hi + 1] if hi + 1 < len(offsets) else self.length
        if not SEGMENT_HEADER_SIZE <= start < stop <= self.length:
            raise IndexMismatch(f"frames {lo} to {hi} at bytes {start} to {stop} of {self.length}")
        return start, stop

    def after(self, ts: int) -> tuple[int, int] | None:
        """Frames `lo` to `hi` that hold the first frame received after `ts`; None if none here."""
        latest = memoryview(self.sample_ts).cast("Q")
        k = bisect.bisect_right(latest, ts)
        if k == len(latest):
            return None
        frames = memoryview(self.sample_frames).cast("I")
        return (frames[k - 1] + 1 if k else 0), frames[k]


class _Builder:
    """A segment index being built, in plain Python containers; continues a packed one."""

    def __init__(self, first_seq: int, start: SegmentIndex | None) -> None:
        self.first_seq = first_seq
        self.offsets = array("Q")
        self.postings: dict[int, list[int]] = {}  # key hash -> frames, as packed
        self.by_key: dict[str, list[int]] = {}  # key -> frames, added since
        self.samples: list[tuple[int, int]] = []  # (frame, latest ts) at every SAMPLE_EVERY-th frame
        self.client_ids: set[int] = set()
        self.latest = 0
        if start is not None:
            self.offsets.frombytes(start.offsets)
            starts, postings = memoryview(start.starts).cast("I"), memoryview(start.postings).cast("I")
            for i, h in enumerate(memoryview(start.hashes).cast("Q")):
                self.postings[h] = list(postings[starts[i] : starts[i + 1]])
            sampled = zip(
                memoryview(start.sample_frames).cast("I"), memoryview(start.sample_ts).cast("Q"), strict=True
            )
            self.samples = [(f, t) for f, t in sampled if f % SAMPLE_EVERY == 0]
            self.client_ids = set(start.client_ids)
            self.latest = memoryview(start.sample_ts).cast("Q")[-1] if start.frames else 0

    def add(self, offset: int, ts: int, keys: list[str]) -> None:
        frame = len(self.offsets)
        self.offsets.append(offset)
        if ts > self.latest:
            self.latest = ts
        if frame % SAMPLE_EVERY == 0:
            self.samples.append((frame, self.latest))
        by_key = self.by_key
        for key in keys:
            frames = by_key.get(key)
            if frames is None:
                by_key[key] = [frame]
            else:
                frames.append(frame)

    def pack(self, length: int, tail: bytes) -> SegmentIndex:
        """Hash each new key once, here; a key's frames are ascending (a collision merges two keys)."""
        postings_by_hash = self.postings
        for key, frames in self.by_key.items():
            h = key_hash(key)
            if h in postings_by_hash:
                postings_by_hash[h] = sorted({*postings_by_hash[h], *frames})
            else:
                postings_by_hash[h] = frames
            if key.startswith("o:"):
                self.client_ids.add(int(key.split(":")[1]))
        self.by_key = {}
        hashes, starts, postings = array("Q"), array("I", [0]), array("I")
        for h in sorted(postings_by_hash):
            hashes.append(h)
            postings.extend(postings_by_hash[h])
            starts.append(len(postings))
        samples = list(self.samples)
        last = len(self.offsets) - 1
        if last >= 0 and samples[-1][0] != last:
            samples.append((last, self.latest))
        return SegmentIndex(
            first_seq=self.first_seq,
            length=length,
            tail=tail,
            client_ids=sorted(self.client_ids),
            hashes=hashes.tobytes(),
            starts=starts.tobytes(),
            postings=postings.tobytes(),
            offsets=self.offsets.tobytes(),
            sample_frames=array("I", [f for f, _ in samples]).tobytes(),
            sample_ts=array("Q", [t for _, t in samples]).tobytes(),
        )


def build(path: Path, first_seq: int, *, closed: bool, start: SegmentIndex | None = None) -> SegmentIndex:
    """Index the segment at `path` (from where `start` ended, if given). A closed segment must end with a
    whole frame; the last may end with a torn or unfinished one, which is left out."""
    builder = _Builder(first_seq, start)
    with path.open("rb") as file:
        if start is None:
            data = file.read()
            check_segment_header(path, data, first_seq)
            base, pos, seq, tail = 0, SEGMENT_HEADER_SIZE, first_seq, b""
        else:
            file.seek(start.length)
            data = file.read()
            base, pos, seq, tail = start.length, 0, start.next_seq, start.tail
    view = memoryview(data)
    last = -1
    for seq_, begin, end in iter_frames(data, pos, seq):
        ts, keys = frame_names(view[begin:end])
        last = begin - HEADER_SIZE
        builder.add(base + last, ts, keys)
        pos, seq = end, seq_ + 1
    if last >= 0:
        tail = data[last : last + HEADER_SIZE]
    damage = diagnose(data, pos, seq)
    if damage is not None and (closed or not damage.torn):
        where = "at the end of a segment that has a successor" if damage.torn else ""
        raise CorruptJournal(path, base + damage.offset, f"{damage.reason} {where}".strip())
    return builder.pack(base + pos, tail)


def index_path(segment: Path) -> Path:
    return segment.with_suffix(SUFFIX)


_decoder = msgspec.msgpack.Decoder(SegmentIndex)
_encoder = msgspec.msgpack.Encoder()


def load(segment: Path, first_seq: int) -> SegmentIndex | None:
    """The stored index of `segment` if it is intact and well formed (None: missing, or unreadable or
    corrupt, with a warning; it is not checked against the segment here)."""
    path = index_path(segment)
    try:
        data = _read_regular(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("journal index %s cannot be read (%s); rebuilding it from its segment", path, exc)
        return None
    problem, index = _parse(data, first_seq)
    if problem:
        log.warning("journal index %s is %s; rebuilding it from its segment", path, problem)
    return index


def _read_regular(path: Path) -> bytes:
    """The bytes of the regular file at `path`: a directory, a FIFO (which would block), a device or a
    symlink in its place is an OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise IsADirectoryError(f"not a regular file (mode {mode:o})")
        return file.read()


def _parse(data: bytes, first_seq: int) -> tuple[str, SegmentIndex | None]:
    """(what is wrong, "" if nothing; the index if nothing is)."""
    if len(data) < _FILE_HEADER.size:
        return f"{len(data)} bytes long, shorter than its header", None
    magic, version, crc = _FILE_HEADER.unpack_from(data)
    body = memoryview(data)[_FILE_HEADER.size :]
    if magic != MAGIC or version != FORMAT_VERSION:
        return f"not an index of format {FORMAT_VERSION} (magic {magic!r}, version {version})", None
    if zlib.crc32(body) != crc:
        return "corrupt (bad CRC)", None
    try:
        index = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return f"undecodable ({exc})", None
    if index.first_seq != first_seq:
        return f"the index of the segment starting at seq {index.first_seq}", None
    problem = _malformed(index)
    return (f"malformed ({problem})", None) if problem else ("", index)


def _malformed(index: SegmentIndex) -> str:
    """What makes `index` inconsistent in itself, "" if nothing: checks of its sizes and ends only, so
    that loading stays O(1) in its frames; each frame it points to is checked when it is read."""
    sizes = (len(index.hashes), len(index.starts), len(index.postings), len(index.offsets))
    if sizes[0] % 8 or sizes[1] != sizes[0] // 2 + 4 or sizes[2] % 4 or sizes[3] % 8:
        return f"array sizes {sizes}"
    frames = index.frames
    sampled = array("I", range(0, frames, SAMPLE_EVERY))
    if frames and sampled[-1] != frames - 1:
        sampled.append(frames - 1)
    if index.sample_frames != sampled.tobytes() or len(index.sample_ts) != 8 * len(sampled):
        return f"its time samples are not of every {SAMPLE_EVERY}th of its {frames} frames and the last"
    latest = memoryview(index.sample_ts).cast("Q")
    if any(a > b for a, b in pairwise(latest)):
        return "its time samples go back in time"
    starts = memoryview(index.starts).cast("I")
    if starts[0] != 0 or starts[-1] != sizes[2] // 4:
        return "its postings do not add up"
    if not frames:
        return "" if index.length == SEGMENT_HEADER_SIZE and not index.tail else "no frames, yet a length"
    offsets = memoryview(index.offsets).cast("Q")
    if offsets[0] != SEGMENT_HEADER_SIZE or len(index.tail) != HEADER_SIZE:
        return "its first frame or its last frame's header is not where a frame is"
    length, _, seq = HEADER.unpack(index.tail)
    if seq != index.next_seq - 1 or offsets[-1] + HEADER_SIZE + length != index.length:
        return f"its last frame (seq {seq}, at byte {offsets[-1]}) does not end at its length {index.length}"
    return ""


def store(segment: Path, index: SegmentIndex) -> Path:
    """Write the index of `segment` atomically (a reader sees the old file or the new one)."""
    final = index_path(segment)
    body = _encoder.encode(index)
    temp = final.with_name(f".{final.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, _FILE_HEADER.pack(MAGIC, FORMAT_VERSION, zlib.crc32(body)) + body)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.rename(temp, final)
    except OSError:  # a directory in its place, say: leave no temp file behind
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)
    return final


def covers(segment: Path, index: SegmentIndex, size: int) -> bool:
    """Whether `segment` still holds what `index` indexed: at least its bytes, and the very frame it
    indexed last (same header, so same seq, length and CRC) where it was."""
    if size < index.length:
        return False
    if not index.frames:
        return True
    offset = memoryview(index.offsets).cast("Q")[-1]
    with segment.open("rb") as file:
        file.seek(offset)
        return file.read(HEADER_SIZE) == index.tail


def frame_at(segment: Path, first_seq: int, seq: int) -> tuple[int, int] | None:
    """(byte offset, CRC) of the frame at `seq` through the segment's stored index: one frame read and
    checked (its seq, length and CRC) instead of the segment scanned up to it. None when there is no
    usable index, it does not reach `seq`, or the frame where it points is not that frame intact: the
    caller scans then."""
    stored = load(segment, first_seq)
    if stored is None or not first_seq <= seq < stored.next_seq:
        return None
    try:
        offset, stop = stored.span(seq - first_seq, seq - first_seq)
    except IndexMismatch:
        return None
    with segment.open("rb") as file:
        file.seek(offset)
        frame = file.read(stop - offset)
    if len(frame) < HEADER_SIZE:
        return None
    length, crc, frame_seq = HEADER.unpack_from(frame)
    if frame_seq != seq or len(frame) != HEADER_SIZE + length or zlib.crc32(frame[8:]) != crc:
        return None
    return offset, crc


def segment_index(segment: Path, first_seq: int, *, closed: bool) -> SegmentIndex:
    """The index of `segment`, checked against it: the stored one if it still covers the segment, indexed
    on from where it stopped if the segment grew (the last one, while the writer appends), else built
    anew; stored again whenever it changed."""
    size = segment.stat().st_size
    known = load(segment, first_seq)
    if known is not None and not covers(segment, known, size):
        known = None
    if known is None or known.length < size:
        grown = build(segment, first_seq, closed=closed, start=known)
        if grown != known:
            _keep(segment, grown)
        known = grown
    return known


def rebuild(segment: Path, first_seq: int, *, why: str) -> SegmentIndex:
    """The index of `segment` built anew by a scan, stored in place of one that turned out wrong (a rare
    path: so it looks for a later segment to know whether this one is closed)."""
    log.warning("journal index %s: %s; rebuilding it from its segment", index_path(segment), why)
    closed = any(first > first_seq for first, _ in list_segments(segment.parent))
    index = build(segment, first_seq, closed=closed)
    _keep(segment, index)
    return index


def _keep(segment: Path, index: SegmentIndex) -> None:
    """Store `index` if the directory lets us: it is a cache, so a read-only directory (or a directory
    in the index's place) still answers, from the index built in memory."""
    with contextlib.suppress(OSError):
        store(segment, index)


def indexes(directory: Path) -> Iterator[tuple[Path, SegmentIndex]]:
    """(segment, its index) oldest first, following the seq chain as a reader does."""
    segments = list_segments(directory)
    expected = None
    for i, (first, path) in enumerate(segments):
        if expected is not None and first != expected:
            raise CorruptJournal(path, 0, f"segment starts at seq {first}, not {expected}")
        index = segment_index(path, first, closed=i + 1 < len(segments))
        expected = index.next_seq
        yield path, index


class SegmentIndexer:
    """Writes the index of each segment the writer closes, on its own thread, so the append and fsync
    path never waits for it; a failure only means readers build that index themselves."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"journal-index {directory}", daemon=True)
        self._thread.start()

    def closed(self, next_first_seq: int) -> None:
        """The segment before the one starting at `next_first_seq` is complete."""
        self._queue.put(next_first_seq)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (successor := self._queue.get()) is not None:
            before = [s for s in list_segments(self._directory) if s[0] < successor]
            if before:
                first, path = before[-1]
                with contextlib.suppress(OSError, JournalError, CodecError):
                    segment_index(path, first, closed=True)
