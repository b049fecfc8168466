"""One order's events, and the seq at a time, read through the segment indexes (events.index): only the
frames needed are read, each checked by its CRC as every reader checks frames (events.frames).

An order's events are the closure of its identifiers: its events name its orderId, permIds and execIds,
a commission names only an execId, an error only an orderId, so the identifiers are followed until no
new frame turns up. Frames that every order's fold needs come with them: the session's clientId (which
an error's orderId is read against), reconciliations (which infer fills), and for an order requested by
symbol the latest event that named that symbol's conId (which the request takes). Folding just these from
the initial state gives the order exactly as a fold of the whole log does (tests/test_lookup.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from events.codec import decode
from events.frames import diagnose, iter_frames
from events.index import GLOBAL, SegmentIndex, frame_names, indexes
from events.journal_errors import CorruptJournal
from events.schema import Contract, Envelope, OrderRequested, symbol_key

_Segments = list[tuple[Path, SegmentIndex]]


def order_events(journal_dir: Path, ident: str) -> list[Envelope]:
    """The events of the orders named `ident` (client order id, orderId or permId) and what their fold
    needs besides, in seq order; empty when no frame names `ident`."""
    segments = list(indexes(journal_dir))
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
    wanted = symbol_key(contract)
    for path, index in reversed(segments):
        frames = [f for f in reversed(index.lookup("s:" + contract.symbol)) if index.first_seq + f < before]
        for seq, payload in _read_frames(path, index, [(f, f) for f in frames]):
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
            if keys.intersection(names):  # else a hash collision in the index
                found[seq] = bytes(payload)
                new[seq] = names
    return new


def _read_frames(
    path: Path, index: SegmentIndex, ranges: Iterable[tuple[int, int]]
) -> Iterator[tuple[int, memoryview]]:
    """(seq, payload) of frames `lo` to `hi` of each range, read where the index says they are."""
    fd = os.open(path, os.O_RDONLY)
    try:
        for lo, hi in ranges:
            start, stop = index.span(lo, hi)
            data = os.pread(fd, stop - start, start)
            pos, seq = 0, index.first_seq + lo
            view = memoryview(data)
            for seq_, begin, end in iter_frames(data, 0, seq):
                yield seq_, view[begin:end]
                pos, seq = end, seq_ + 1
            if seq != index.first_seq + hi + 1:
                damage = diagnose(data, pos, seq)
                reason = damage.reason if damage else f"the file ends before seq {seq}"
                raise CorruptJournal(path, start + pos, f"{reason} (where its index has a frame)")
    finally:
        os.close(fd)


def seq_at(journal_dir: Path, ts_ns: int) -> int:
    """The last seq received at or before `ts_ns` (0: before the session): the seq before the first frame
    with a later ts, found by the time samples of the indexes and at most SAMPLE_EVERY decoded frames."""
    last = 0
    for path, index in indexes(journal_dir):
        block = index.after(ts_ns)
        if block is None:
            last = index.next_seq - 1
            continue
        for seq, payload in _read_frames(path, index, [block]):
            if frame_names(payload)[0] > ts_ns:
                return seq - 1
    return last
