"""One order's events, and the seq at a time, read through the segment indexes (events.index): only the
frames needed are read, each checked by its CRC as every reader checks frames (events.frames).

An order's events are the closure of its identifiers: its events name its orderId, permIds and execIds,
a commission names only an execId, an error only an orderId, so the identifiers are followed until no
new frame turns up. Frames that every order's fold needs come with them: the session's clientId (which
an error's orderId is read against), reconciliations (which infer fills), and for an order requested by
symbol the latest event that named that symbol's conId (which the request takes). Folding just these from
the initial state gives the order exactly as a fold of the whole log does (tests/test_lookup.py).

An index is a cache, never the truth: every frame it points to is checked before use (its CRC, that it
is the seq the index says and where it says, and that it names the identifier looked up, or for a time
that the block holds the time the index says), and a mismatch rebuilds that segment's index by a scan
(events.index.rebuild) and starts the lookup again, so a damaged or forged index gives what a scan gives.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import TypeVar

from events.codec import decode
from events.frames import iter_frames
from events.index import GLOBAL, IndexMismatch, SegmentIndex, frame_names, indexes, rebuild
from events.journal_errors import CorruptJournal
from events.schema import Contract, Envelope, OrderRequested, symbol_key

_T = TypeVar("_T")


class _Segments(list[tuple[Path, SegmentIndex]]):
    """(segment, index) oldest first, and which indexes were rebuilt by a scan during this lookup: a
    frame such an index points to that does not name the key is a hash collision, not a lie."""

    rebuilt: set[Path]


class _Mismatch(Exception):
    def __init__(self, segment: Path, why: str) -> None:
        super().__init__(why)
        self.segment, self.why = segment, why

    def corrupt(self) -> CorruptJournal:
        """A mismatch against an index just built from the segment: the segment changed under us, or
        is damaged."""
        return CorruptJournal(self.segment, 0, f"{self.why} (by the index just built from it)")


def _checked(journal_dir: Path, lookup: Callable[[_Segments], _T]) -> _T:
    """`lookup` over the indexes of `journal_dir`; each time a frame an index points to is not what it
    says, that index is rebuilt by a scan and the lookup starts again (at most once per segment)."""
    segments = _Segments(indexes(journal_dir))
    segments.rebuilt = set()
    while True:
        try:
            return lookup(segments)
        except _Mismatch as exc:
            if exc.segment in segments.rebuilt:
                raise exc.corrupt() from exc
            i = next(i for i, (path, _) in enumerate(segments) if path == exc.segment)
            segments[i] = (exc.segment, rebuild(exc.segment, segments[i][1].first_seq, why=exc.why))
            segments.rebuilt.add(exc.segment)


def _names(segments: _Segments, path: Path, seq: int, keys: set[str], names: list[str]) -> bool:
    """Whether the frame at `seq`, which the index of `path` says names one of `keys`, does; one that
    does not is a lie of a stored index (`_Mismatch`), or a hash collision of one just rebuilt (False)."""
    if keys.intersection(names):
        return True
    if path in segments.rebuilt:
        return False
    raise _Mismatch(path, f"its frame at seq {seq} names none of {sorted(keys)}")


def order_events(journal_dir: Path, ident: str) -> list[Envelope]:
    """The events of the orders named `ident` (client order id, orderId or permId) and what their fold
    needs besides, in seq order; empty when no frame names `ident`."""
    return _checked(journal_dir, partial(_order_events, ident=ident))


def _order_events(segments: _Segments, ident: str) -> list[Envelope]:
    found: dict[int, bytes] = {}
    followed: set[str] = set()
    frontier = _entry_keys(ident, segments)
    while frontier:
        followed |= frontier
        named = _read_named(segments, frontier, found).values()
        frontier = {follow for keys in named for key in keys for follow in _follows(key)} - followed
    if found:
        _read_named(segments, {GLOBAL}, found)
        for env in [decode(found[seq]) for seq in sorted(found)]:
            if isinstance(env.event, OrderRequested) and not env.event.contract.con_id:
                _add_instrument_teacher(segments, found, env.seq, env.event.contract)
    return [decode(found[seq]) for seq in sorted(found)]


def _add_instrument_teacher(
    segments: _Segments, found: dict[int, bytes], before: int, contract: Contract
) -> None:
    """An order requested by symbol takes the conId the fold last learned for that symbol, from any
    event before it that carried the instrument with its conId: add the latest such frame."""
    wanted, key = symbol_key(contract), "s:" + contract.symbol
    for path, index in reversed(segments):
        frames = [f for f in reversed(index.lookup(key)) if index.first_seq + f < before]
        for seq, payload in _read_frames(path, index, [(f, f) for f in frames]):
            if not _names(segments, path, seq, {key}, frame_names(payload)[1]):
                continue
            taught = getattr(decode(payload).event, "contract", None)
            if isinstance(taught, Contract) and taught.con_id and symbol_key(taught) == wanted:
                found[seq] = bytes(payload)
                return


def _follows(key: str) -> tuple[str, ...]:
    """The keys to follow from a key a frame names: an orderId's errors too; never the global frames or
    an instrument's (those are context, not the order's)."""
    if key == GLOBAL or key.startswith("s:"):
        return ()
    return (key, "e:" + key.rpartition(":")[2]) if key.startswith("o:") else (key,)


def _entry_keys(ident: str, segments: _Segments) -> set[str]:
    """The keys `ident` may be: a client order id (ours, an orderRef, or the id of an external order),
    or a number, as a permId or as an orderId under any clientId the journal has seen."""
    keys = {"c:" + ident}
    if ident.startswith("ext:perm:"):
        keys.add("p:" + ident.removeprefix("ext:perm:"))
    elif ident.startswith("ext:"):
        keys.add("o:" + ident.removeprefix("ext:"))
    elif ident.lstrip("-").isdigit():
        number = int(ident)
        keys.add(f"p:{number}")
        keys.update(f"o:{client_id}:{number}" for _, index in segments for client_id in index.client_ids)
    return keys


def _read_named(segments: _Segments, keys: set[str], found: dict[int, bytes]) -> dict[int, list[str]]:
    """Read the frames naming any of `keys` not in `found` yet, add them, and return their keys."""
    new: dict[int, list[str]] = {}
    for path, index in segments:
        frames = sorted({frame for key in keys for frame in index.lookup(key)})
        wanted = [f for f in frames if index.first_seq + f not in found]
        for seq, payload in _read_frames(path, index, [(f, f) for f in wanted]):
            names = frame_names(payload)[1]
            if _names(segments, path, seq, keys, names):
                found[seq] = bytes(payload)
                new[seq] = names
    return new


def _read_frames(
    path: Path, index: SegmentIndex, ranges: Iterable[tuple[int, int]]
) -> Iterator[tuple[int, memoryview]]:
    """(seq, payload) of frames `lo` to `hi` of each range, read where the index says they are; each
    checked before it is yielded to be whole (its CRC), the seq the index says and where it says (right
    after the one before), and the range to end where the index says, else `_Mismatch`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        for lo, hi in ranges:
            try:
                start, stop = index.span(lo, hi)
            except IndexMismatch as exc:
                raise _Mismatch(path, str(exc)) from exc
            data = os.pread(fd, stop - start, start)
            pos, seq = 0, index.first_seq + lo
            view = memoryview(data)
            for seq_, begin, end in iter_frames(data, 0, seq):
                if seq_ > index.first_seq + hi:
                    break
                yield seq_, view[begin:end]
                pos, seq = end, seq_ + 1
            if seq != index.first_seq + hi + 1 or pos != len(data):
                raise _Mismatch(path, f"no frame with seq {seq} at byte {start + pos}, or frames past {stop}")
    finally:
        os.close(fd)


def seq_at(journal_dir: Path, ts_ns: int) -> int:
    """The last seq received at or before `ts_ns` (0: before the session): the seq before the first frame
    with a later ts, found by the time samples of the indexes and at most SAMPLE_EVERY decoded frames;
    the indexes after that segment are not even read. A segment whose index is found lying is looked up
    again through an index rebuilt by a scan."""
    last = 0
    for path, index in indexes(journal_dir):
        try:
            found = _seq_in(path, index, ts_ns)
        except _Mismatch as exc:
            try:
                found = _seq_in(path, rebuild(path, index.first_seq, why=exc.why), ts_ns)
            except _Mismatch as again:
                raise again.corrupt() from again
        if found is not None:
            return found
        last = index.next_seq - 1
    return last


def _seq_in(path: Path, index: SegmentIndex, ts_ns: int) -> int | None:
    """The seq before the first frame of the segment received after `ts_ns`; None: none was."""
    block = index.after(ts_ns)
    if block is None:
        return None
    for seq, payload in _read_frames(path, index, [block]):
        if frame_names(payload)[0] > ts_ns:
            return seq - 1
    raise _Mismatch(path, f"no frame of its block {block} was received after {ts_ns}, as it says")
