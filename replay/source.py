"""Where a recorded session comes from: a data directory's journal, or a DuckDB archive of one.

Both give the same thing, envelopes in seq order, so every replay tool works on either. The journal may
be written by a running service while it is read: a read sees every frame complete when it got there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import msgspec

from events.frames import diagnose, iter_frames
from events.reader import JournalReader
from events.schema import AnyEvent, Envelope, UnknownEvent
from events.segments import SEGMENT_HEADER_SIZE
from oms.state.model import State
from replay import checkpoints

ARCHIVE_SUFFIXES = (".duckdb", ".ddb", ".db")


class Source(Protocol):
    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[Envelope]: ...

    def last_seq(self) -> int: ...

    def snapshot(self, max_seq: int | None = None) -> tuple[int, bytes] | None:
        """The latest stored state (snapshot_codec bytes) at or below `max_seq`, if any: a cache only."""
        ...


class LogSource(Source, Protocol):
    """A source `oms archive` can import: a journal, or a stream mirrored from one (named by `path`)."""

    @property
    def path(self) -> Path | str: ...

    def tail_damage(self) -> str | None: ...


# URL scheme -> opener of a source at that URL; the command line registers them (nats:// is added by
# oms.cli.mirror), so replay never imports the adapters that read remote logs.
URL_SOURCES: dict[str, Callable[[str], LogSource]] = {}


def journal_dir(path: Path) -> Path:
    """The service keeps its journal in DATA_DIR/journal; a journal directory itself is accepted too."""
    inner = path / "journal"
    return inner if inner.is_dir() else path


class JournalSource:
    """A data directory's journal, and its snapshots to start folding from."""

    def __init__(self, data_dir: Path) -> None:
        self.path = journal_dir(data_dir)
        self._reader = JournalReader(self.path)

    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[Envelope]:
        return self._reader.read(from_seq, to_seq)

    def last_seq(self) -> int:
        return self._reader.last_seq()

    def snapshot(self, max_seq: int | None = None) -> tuple[int, bytes] | None:
        """The service's newest snapshot at or below `max_seq`, or replay's own checkpoint if nearer."""
        return checkpoints.start(self.path, max_seq)

    def keep(self, seq: int, state: State) -> None:
        """Cache the state after `seq` for the next replay near it (replay.checkpoints)."""
        checkpoints.keep(self.path, seq, state)

    def tail_damage(self) -> str | None:
        """Why the last segment ends before its last byte (a torn tail, or a frame being written now)."""
        segments = self._reader.segments()
        if not segments:
            return None
        first, path = segments[-1]
        data = path.read_bytes()
        pos, seq = SEGMENT_HEADER_SIZE, first
        for frame_seq, _, end in iter_frames(data, pos, first):
            pos, seq = end, frame_seq + 1
        damage = diagnose(data, pos, seq)
        if damage is None:
            return None
        left = len(data) - pos
        return f"{damage.reason} at byte {damage.offset} of {path.name}, {left} bytes after seq {seq - 1}"


_event_decoder = msgspec.json.Decoder(AnyEvent)


def decode_event_json(text: str | bytes) -> AnyEvent:
    """An archived event back to its Struct; a kind newer than this code stays verbatim (as the codec)."""
    try:
        return _event_decoder.decode(text)
    except msgspec.ValidationError:
        raw = msgspec.json.decode(text)
        return UnknownEvent(original_kind=str(raw.get("kind", "")), raw=msgspec.msgpack.encode(raw))


class ArchiveSource:
    """A DuckDB archive written by `oms archive`, opened read-only."""

    BATCH = 50_000

    def __init__(self, archive: Path) -> None:
        import duckdb

        if not archive.is_file():
            raise FileNotFoundError(f"{archive}: no such archive")
        self.path = archive
        self._con = duckdb.connect(str(archive), read_only=True)

    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[Envelope]:
        last = self.last_seq() if to_seq is None else to_seq
        query = "SELECT seq, ts_ns, v, event FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq"
        cursor = self._con.cursor().execute(query, [from_seq, last])
        while rows := cursor.fetchmany(self.BATCH):
            for seq, ts, v, event in rows:
                yield Envelope(seq, ts, decode_event_json(event), v)

    def last_seq(self) -> int:
        row = self._con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        return int(row[0]) if row else 0

    def snapshot(self, max_seq: int | None = None) -> tuple[int, bytes] | None:
        row = self._con.execute("SELECT seq, state FROM archive_state ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None or (max_seq is not None and row[0] > max_seq):
            return None
        return int(row[0]), bytes(row[1])


def is_archive(path: Path) -> bool:
    """A DuckDB file: by its name, or by its magic bytes ("DUCK" at offset 8)."""
    if not path.is_file():
        return False
    with path.open("rb") as file:
        return path.suffix in ARCHIVE_SUFFIXES or file.read(12)[8:12] == b"DUCK"


def open_log(location: Path | str) -> LogSource:
    """A data directory's journal, or a registered URL (nats://...); NotAJournal for anything else."""
    text = str(location)
    scheme = text.split("://", 1)[0] if "://" in text else ""
    if scheme in URL_SOURCES:
        return URL_SOURCES[scheme](text)
    if scheme:
        known = ", ".join(f"{name}://" for name in sorted(URL_SOURCES)) or "none"
        raise FileNotFoundError(f"{text}: no reader for {scheme}:// (known: {known})")
    return JournalSource(Path(location))


def close_source(source: object) -> None:
    """Let go of what a source holds open (a URL source's connection); files need nothing."""
    close = getattr(source, "close", None)
    if callable(close):
        close()


def open_source(path: Path | str) -> Source:
    """An archive file, a data directory or a registered URL; NotAJournal for anything else."""
    return ArchiveSource(Path(path)) if is_archive(Path(path)) else open_log(path)


def location(text: str) -> Path | str:
    """A command-line SOURCE: a URL stays text (Path would fold its '//'), anything else is a path."""
    return text if "://" in text else Path(text)
