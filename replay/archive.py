"""`oms archive`: import a journal into DuckDB, incrementally, in bulk through Arrow.

Each batch becomes a few column-wise Arrow tables (events, entity changes, order links) inserted with one
statement each; DuckDB pulls the typed identifier columns out of the event JSON itself. The fold runs
alongside, so the archive also holds what the service believed after every event. One run is one
transaction: an archive holds whole runs only, and its stored state always matches its last seq.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from events.schema import Envelope, UnknownEvent, kind_of
from oms.fold import step
from oms.snapshot_codec import decode_state, encode_state
from oms.state import Account, Order, Position, Removed, State, initial_state
from replay.links import Linker
from replay.private import make_private, private_umask
from replay.schema_sql import (
    FORMAT,
    INDEXES,
    INSERT_CHANGES,
    INSERT_EVENTS,
    INSERT_ORDER_EVENTS,
    META,
    REPLACE_CURRENT,
    TABLES,
    VIEWS,
)
from replay.source import JournalSource, decode_event_json

BATCH = 20_000
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


def event_json(event: Any) -> bytes:
    if isinstance(event, UnknownEvent):  # verbatim, as its writer put it
        return _json.encode(msgspec.msgpack.decode(event.raw))
    return _json.encode(event)


def entity_row(entity: object) -> tuple[str, str, bytes]:
    """(entity, key, JSON) of a changed entity: the staging row the *_states tables are cut from."""
    if isinstance(entity, Order):
        entity_name, key = "order", entity.client_order_id
    elif isinstance(entity, Position):
        entity_name, key = ("strategy_position" if entity.strategy_id else "position"), entity.key
    elif isinstance(entity, Account):
        entity_name, key = "account", entity.account
    elif isinstance(entity, Removed):
        entity_name, key = "removed", entity.key
    else:
        raise TypeError(f"unknown entity {type(entity).__name__}")
    return entity_name, key, _json.encode(entity)


def current_rows(state: State) -> list[tuple[str, str, bytes]]:
    """The fold's final entities: the staging rows of orders, positions, fills, accounts."""
    rows = [entity_row(entity) for entity in state.orders.values()]
    rows += [entity_row(entity) for entity in state.positions.values()]
    rows += [entity_row(entity) for entity in state.strategy_positions.values()]
    rows += [entity_row(entity) for entity in state.accounts.values()]
    rows += [("fill", base, _json.encode(fill)) for base, fill in state.fills.items()]
    return rows


def archive_journal(
    data_dir: Path,
    archive_path: Path,
    *,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    batch: int = BATCH,
) -> ArchiveReport:
    """Add the journal's seqs the archive does not hold yet. `on_start(total)`, then `on_progress(n)`.

    DuckDB loads batch k on a worker thread (it releases the GIL) while this thread folds batch k + 1;
    the connection is only ever used by one thread at a time."""
    source = JournalSource(data_dir)  # refuses a directory that is not a journal before anything is created
    with private_umask():
        con = duckdb.connect(str(archive_path))
        try:
            _check_format(con)
            con.execute(TABLES)
            con.execute(VIEWS)
            archived, blob = _archived(con)
            _check_same_journal(con, source, archived)
            state = decode_state(blob) if blob is not None else initial_state()
            journal_last = source.last_seq()
            if on_start:
                on_start(max(0, journal_last - archived))
            con.execute("BEGIN TRANSACTION")
            linker = Linker(_unlinked_commissions(con))
            imported = 0
            envs = source.read(archived + 1)
            with ThreadPoolExecutor(1, thread_name_prefix="archive-load") as loader:
                loading: Future[None] | None = None
                while chunk := list(islice(envs, batch)):
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
                _replace_current(con, state)
                con.execute("DELETE FROM archive_state")
                con.execute("INSERT INTO archive_state VALUES (?, ?)", [state.seq, encode_state(state)])
            con.execute("COMMIT")
            con.execute("CHECKPOINT")
        finally:
            con.close()
    make_private(archive_path)
    first = archived + 1 if imported else 0
    return ArchiveReport(str(archive_path), imported, first, archived + imported, _torn_note(source))


def _check_format(con: Any) -> None:
    """A new archive gets this code's format; an existing one must have it (else its columns differ)."""
    con.execute(META)
    row = con.execute("SELECT format FROM archive_format").fetchone()
    if row is None:
        if con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'events'").fetchone()[0]:
            raise ArchiveMismatch("this DuckDB file holds an events table but is not an oms archive")
        con.execute("INSERT INTO archive_format VALUES (?)", [FORMAT])
    elif row[0] != FORMAT:
        raise ArchiveMismatch(
            f"archive format {row[0]} was written by another version of oms (this one writes {FORMAT}): "
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


def _check_same_journal(con: Any, source: JournalSource, archived: int) -> None:
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
    """Fold a batch and build its Arrow tables: (state after it, [(insert SQL, table name, table)])."""
    changes: list[tuple[int, int, str, str, bytes]] = []
    links: list[tuple[int, str]] = []
    for env in chunk:
        state, changed = step(state, env)
        changes.extend((env.seq, env.ts, *entity_row(entity)) for entity in changed)
        links.extend((linked.seq, key) for linked, key in linker.link(env, changed, state))
    events = pa.table(
        {
            "seq": pa.array([env.seq for env in chunk], pa.int64()),
            "ts_ns": pa.array([env.ts for env in chunk], pa.int64()),
            "kind": pa.array([kind_of(env.event) for env in chunk], pa.string()),
            "v": pa.array([env.v for env in chunk], pa.int32()),
            "event": _text([event_json(env.event) for env in chunk]),
        }
    )
    staged = [(INSERT_EVENTS, "batch", events)]
    if changes:
        seqs, stamps, entities, keys, states = zip(*changes, strict=True)
        table = pa.table(
            {
                "seq": pa.array(seqs, pa.int64()),
                "ts_ns": pa.array(stamps, pa.int64()),
                "entity": pa.array(entities, pa.string()),
                "entity_key": pa.array(keys, pa.string()),
                "state": _text(states),
            }
        )
        staged.append((INSERT_CHANGES, "changes_batch", table))
    if links:
        link_seqs, order_keys = zip(*links, strict=True)
        table = pa.table(
            {"seq": pa.array(link_seqs, pa.int64()), "order_key": pa.array(order_keys, pa.string())}
        )
        staged.append((INSERT_ORDER_EVENTS, "links_batch", table))
    return state, staged


def _load(con: Any, staged: list[tuple[str, str, Any]]) -> None:
    for sql, name, table in staged:
        _insert(con, sql, name, table)


def _replace_current(con: Any, state: State) -> None:
    rows = current_rows(state)
    entities, keys, states = zip(*rows, strict=True) if rows else ((), (), ())
    table = pa.table(
        {
            "entity": pa.array(entities, pa.string()),
            "entity_key": pa.array(keys, pa.string()),
            "state": _text(states),
        }
    )
    _insert(con, REPLACE_CURRENT, "current_batch", table)


def _text(values: Iterable[bytes]) -> Any:
    """UTF-8 JSON bytes as an Arrow string column, without decoding each one in Python."""
    return pa.array(values, pa.binary()).cast(pa.string())


def _insert(con: Any, sql: str, name: str, table: Any) -> None:
    con.register(name, table)
    try:
        con.execute(sql)
    finally:
        con.unregister(name)


def _torn_note(source: JournalSource) -> str:
    damage = source.tail_damage()
    if damage is None:
        return ""
    return (
        f"the journal ends in an incomplete frame (a torn tail, or a write in progress: {damage}); "
        "archived up to the last good frame"
    )
