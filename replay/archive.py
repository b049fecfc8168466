"""`oms archive`: import a journal into DuckDB, incrementally, in bulk through Arrow.

Each batch becomes a few column-wise Arrow tables (events, entity changes, order links) inserted with one
statement each; DuckDB pulls the typed identifier columns out of the event JSON itself. Only what needs
the state after each event (the fold, the order links) runs per event in Python. The fold runs
alongside, so the archive also holds what the service believed after every event. One run is one
transaction: an archive holds whole runs only, and its stored state always matches its last seq.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from itertools import chain, islice, repeat
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from events.schema import Envelope, UnknownEvent, kind_of
from oms.state.codec import decode_state, encode_state
from oms.state.fold import step
from oms.state.history import sweep_due
from oms.state.model import Account, Fill, FoldError, Order, Position, Removed, State, initial_state
from replay.links import Linker
from replay.private import make_private, private_umask
from replay.schema_sql import (
    FORMAT,
    INDEXES,
    INSERT_CHANGES,
    INSERT_EVENTS,
    INSERT_ORDER_EVENTS,
    INSERT_RETIRED_FILLS,
    META,
    REPLACE_CURRENT,
    REPLACE_FILLS,
    TABLES,
    VIEWS,
)
from replay.source import LogSource, close_source, decode_event_json, open_log

BATCH = 20_000
EVENTS_ONLY = "-events-only"  # the format of an archive made with events_only ends so
_json = msgspec.json.Encoder()


class ArchiveMismatch(RuntimeError):
    """The archive was made from another journal."""

    code = "archive_mismatch"


class ArchiveReport(msgspec.Struct, frozen=True):
    archive: str
    imported: int  # events added by this run
    first_seq: int  # first seq added (0 when nothing was new)
    last_seq: int  # last seq in the archive after this run
    note: str = ""  # e.g. the journal's torn tail, cut at the last good frame


def event_json(event: Any) -> Any:
    """What an event's JSON is made of: an unknown kind verbatim, as its writer put it."""
    if isinstance(event, UnknownEvent):
        return msgspec.msgpack.decode(event.raw)
    return event


# The staging name of each changed entity's kind (INSERT_CHANGES sends it to its *_states table).
_ENTITY_NAMES: dict[type, str] = {
    Order: "order",
    Position: "position",
    Account: "account",
    Removed: "removed",
    FoldError: "fold_error",
}


def archive_journal(
    data_dir: Path | str,
    archive_path: Path,
    *,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    batch: int = BATCH,
    events_only: bool = False,
) -> ArchiveReport:
    """Add the journal's seqs the archive does not hold yet. `on_start(total)`, then `on_progress(n)`.

    `events_only` skips the fold: only `events` is filled (the history, current-state and order_events
    tables stay empty), several times faster; such an archive can only be continued the same way.

    DuckDB loads batch k on a worker thread (it releases the GIL) while this thread folds batch k + 1;
    the connection is only ever used by one thread at a time."""
    source = open_log(data_dir)  # refuses what is not a journal (or a mirror) before anything is created
    with private_umask():
        con = duckdb.connect(str(archive_path))
        try:
            _check_format(con, FORMAT + EVENTS_ONLY if events_only else FORMAT)
            con.execute(TABLES)
            con.execute(VIEWS)
            archived, blob = _archived(con)
            _check_same_journal(con, source, archived)
            state = decode_state(blob) if blob is not None else initial_state()
            journal_last = source.last_seq()
            if on_start:
                on_start(max(0, journal_last - archived))
            con.execute("SET threads = 1")  # the loader's core; the fold has the other
            con.execute("BEGIN TRANSACTION")
            linker = Linker(() if events_only else _unlinked_commissions(con))
            imported = 0
            envs = source.read(archived + 1)
            with _no_cycle_collection(), ThreadPoolExecutor(1, thread_name_prefix="archive-load") as loader:
                loading: Future[None] | None = None
                while chunk := list(islice(envs, batch)):
                    if events_only:
                        staged = [_events_table(chunk)]
                    else:
                        state, staged = _stage(chunk, state, linker)
                    if loading is not None:
                        loading.result()
                    loading = loader.submit(_load, con, staged)
                    imported += len(chunk)
                    if on_progress:
                        on_progress(len(chunk))
                if loading is not None:
                    loading.result()
            if imported:
                con.execute(INDEXES)
            if imported and not events_only:
                _replace_current(con, state)
                con.execute("DELETE FROM archive_state")
                con.execute("INSERT INTO archive_state VALUES (?, ?)", [state.seq, encode_state(state)])
            con.execute("RESET threads")  # the commit writes every table: all cores
            con.execute("COMMIT")
            con.execute("CHECKPOINT")
        finally:
            con.close()
            close_source(source)
    make_private(archive_path)
    first = archived + 1 if imported else 0
    return ArchiveReport(str(archive_path), imported, first, archived + imported, _torn_note(source))


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The import allocates millions of objects and frees them by reference counting; the cyclic collector
    would walk them again and again for nothing (measured: a tenth of a 100,000-event import's CPU)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check_format(con: Any, fmt: str) -> None:
    """A new archive gets this code's format; an existing one must have it (else its columns differ, or
    it was made with(out) `events_only`)."""
    con.execute(META)
    row = con.execute("SELECT format FROM archive_format").fetchone()
    if row is None:
        if con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'events'").fetchone()[0]:
            raise ArchiveMismatch("this DuckDB file holds an events table but is not an oms archive")
        con.execute("INSERT INTO archive_format VALUES (?)", [fmt])
    elif row[0] != fmt and row[0].removesuffix(EVENTS_ONLY) == fmt.removesuffix(EVENTS_ONLY):
        held, how = (
            ("events only", "with --events-only")
            if row[0].endswith(EVENTS_ONLY)
            else ("the fold's history too", "without --events-only")
        )
        raise ArchiveMismatch(
            f"this archive holds {held}: continue it the same way ({how}), or archive into a new file"
        )
    elif row[0] != fmt:
        raise ArchiveMismatch(
            f"archive format {row[0]} was written by another version of oms (this one writes {fmt}): "
            "archive into a new file"
        )


def _archived(con: Any) -> tuple[int, bytes | None]:
    last = con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
    row = con.execute("SELECT seq, state FROM archive_state").fetchone()
    if row is not None and row[0] != last:
        raise ArchiveMismatch(
            f"archive state is at seq {row[0]} but its events end at {last}: damaged archive"
        )
    return int(last), (bytes(row[1]) if row else None)


def _unlinked_commissions(con: Any) -> list[Envelope]:
    """Commissions archived before their execution arrived: the next run links them (see replay.links)."""
    rows = con.execute(
        "SELECT seq, ts_ns, v, event FROM events e WHERE kind = 'commission' "
        "AND NOT EXISTS (SELECT 1 FROM order_events o WHERE o.seq = e.seq) ORDER BY seq"
    ).fetchall()
    return [Envelope(seq, ts, decode_event_json(event), v) for seq, ts, v, event in rows]


def _check_same_journal(con: Any, source: LogSource, archived: int) -> None:
    """The archive's last event must be the journal's event at that seq (same time, same kind)."""
    if archived == 0:
        return
    ours = con.execute("SELECT ts_ns, kind FROM events WHERE seq = ?", [archived]).fetchone()
    theirs = next(iter(source.read(archived, archived)), None)
    if theirs is None or (theirs.ts, kind_of(theirs.event)) != tuple(ours):
        raise ArchiveMismatch(
            f"{source.path} is not the journal this archive was made from (they differ at seq {archived})"
        )


def _stage(chunk: list[Envelope], state: State, linker: Linker) -> tuple[State, list[tuple[str, str, Any]]]:
    """Fold a batch and build its Arrow tables: (state after it, [(insert SQL, table name, table)]).

    The loop does only what needs the state after each event (the fold, the links); everything else
    is column-wise (see `json_strings`)."""
    changed_entities: list[Any] = []
    counts: list[int] = []
    link_seqs: list[int] = []
    link_keys: list[str] = []
    link = linker.link
    retired: list[Fill] = []
    for env in chunk:
        if sweep_due(state, env.ts):  # the step may retire orders: keep the fills that leave with them
            before = dict(state.fills)
            state, changed = step(state, env)
            gone = (f for k, f in before.items() if k not in state.fills)
            retired += (f for f in gone if f.client_order_id not in state.orders)
        else:
            state, changed = step(state, env)
        changed_entities += changed
        counts.append(len(changed))
        for linked, key in link(env, changed, state):
            link_seqs.append(linked.seq)
            link_keys.append(key)
    staged = [_events_table(chunk)]
    seqs = [env.seq for env in chunk]
    stamps = [env.ts for env in chunk]
    if changed_entities:
        table = pa.table(
            {
                "seq": pa.array(list(chain.from_iterable(map(repeat, seqs, counts))), pa.int64()),
                "ts_ns": pa.array(list(chain.from_iterable(map(repeat, stamps, counts))), pa.int64()),
                "entity": pa.array([_ENTITY_NAMES[type(e)] for e in changed_entities], pa.string()),
                "state": json_strings(changed_entities),
            }
        )
        staged.append((INSERT_CHANGES, "changes_batch", table))
    if link_seqs:
        table = pa.table(
            {"seq": pa.array(link_seqs, pa.int64()), "order_key": pa.array(link_keys, pa.string())}
        )
        staged.append((INSERT_ORDER_EVENTS, "links_batch", table))
    if retired:
        staged.append((INSERT_RETIRED_FILLS, "retired_batch", pa.table({"state": json_strings(retired)})))
    return state, staged


def _events_table(chunk: list[Envelope]) -> tuple[str, str, Any]:
    """A batch's `events` staging table: its columns, and every event's JSON in one buffer."""
    events = [env.event for env in chunk]
    if UnknownEvent in set(map(type, events)):
        events = [event_json(event) for event in events]
    table = pa.table(
        {
            "seq": pa.array([env.seq for env in chunk], pa.int64()),
            "ts_ns": pa.array([env.ts for env in chunk], pa.int64()),
            "kind": pa.array([kind_of(env.event) for env in chunk], pa.string()),
            "v": pa.array([env.v for env in chunk], pa.int32()),
            "event": json_column(json_strings(events)),
        }
    )
    return INSERT_EVENTS, "batch", table


def _load(con: Any, staged: list[tuple[str, str, Any]]) -> None:
    for sql, name, table in staged:
        _insert(con, sql, name, table)


def _replace_current(con: Any, state: State) -> None:
    con.execute(REPLACE_CURRENT)
    fills = pa.table({"state": json_strings(list(state.fills.values()))})
    _insert(con, REPLACE_FILLS, "fills_batch", fills)


def json_strings(values: list[Any]) -> Any:
    """Each value's JSON as an Arrow string column: msgspec encodes them one after the other into one
    buffer, which becomes the column's data as it is (no Python object, no copy per value)."""
    data = bytearray()
    ends = [0]
    encode_into, append = _json.encode_into, ends.append
    for value in values:
        encode_into(value, data, -1)
        append(len(data))
    offsets = pa.array(ends, pa.int64()).buffers()[1]
    return pa.LargeStringArray.from_buffers(len(values), offsets, pa.py_buffer(data))


def json_column(strings: Any) -> Any:
    """Strings of valid JSON (msgspec wrote them) typed as Arrow's JSON, which DuckDB takes as its JSON type
    without parsing each value again to check it (a plain string column would be)."""
    return pa.ExtensionArray.from_storage(_JSON, strings) if _JSON is not None else strings


_JSON = pa.json_(pa.large_string()) if hasattr(pa, "json_") else None  # pyarrow >= 19


def _insert(con: Any, sql: str, name: str, table: Any) -> None:
    con.register(name, table)
    try:
        con.execute(sql)
    finally:
        con.unregister(name)


def _torn_note(source: LogSource) -> str:
    damage = source.tail_damage()
    if damage is None:
        return ""
    return (
        f"the journal ends in an incomplete frame (a torn tail, or a write in progress: {damage}); "
        "archived up to the last good frame"
    )
