"""The DuckDB archive: bulk incremental import, its views against the fold, refusals, the archive as a
replay source, Parquet exports, file modes."""

from __future__ import annotations

import os
import stat
from decimal import Decimal
from pathlib import Path

import duckdb
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.journal import JournalWriter
from events.journal_errors import NotAJournal
from events.reader import JournalReader
from events.schema import UnknownEvent
from events.segments import list_segments
from oms.state.fold import fold
from oms.state.model import State
from replay.archive import ArchiveMismatch, archive_journal
from replay.queries import EXPORTED, connect, export_all, export_parquet, find_orders, order_timeline, run
from replay.source import ArchiveSource, JournalSource
from replay.states import state_at
from replay.timeline import order_timelines
from tests.fold_strategies import sessions
from tests.test_replay_support import A1_SEQS, explicit_events, fresh_dir, write_journal

SETTINGS = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TABLES = (
    "events", "order_events", "order_states", "position_states", "position_moves", "account_states",
    "fold_errors", "orders", "positions", "strategy_positions", "fills", "accounts", "archive_state",
)  # fmt: skip


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def dump(archive: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(archive), read_only=True)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}
    finally:
        con.close()


def as_fold_sees_it(con: duckdb.DuckDBPyConnection) -> tuple[dict, dict, dict]:
    orders = {
        r[0]: r[1:]
        for r in run(
            con, "SELECT client_order_id, status, quantity, filled, avg_fill_price, perm_ids FROM orders"
        ).rows
    }
    fills = {
        r[0]: r[1:]
        for r in run(con, "SELECT exec_id, client_order_id, shares, price, commission FROM fills").rows
    }
    positions = {r[0]: r[1:] for r in run(con, "SELECT key, quantity, avg_price, status FROM positions").rows}
    return orders, fills, positions


def from_fold(state: State) -> tuple[dict, dict, dict]:
    orders = {
        o.client_order_id: (o.status, o.quantity, o.filled, o.avg_fill_price, list(o.perm_ids))
        for o in state.orders.values()
    }
    fills = {f.exec_id: (f.client_order_id, f.shares, f.price, f.commission) for f in state.fills.values()}
    positions = {p.key: (p.quantity, p.avg_price, p.status) for p in state.positions.values()}
    return orders, fills, positions


@SETTINGS
@given(session=sessions(max_orders=5), split=st.floats(0.0, 1.0))
def test_archive_then_query_gives_the_fold_and_incremental_equals_full(
    tmp_path: Path, session, split
) -> None:
    base = fresh_dir(tmp_path)
    envs = session.envelopes
    cut = int(len(envs) * split)
    write_journal(base / "inc", envs[:cut])
    first = archive_journal(base / "inc", base / "inc.duckdb", batch=7)
    write_journal(base / "inc", envs[cut:])
    second = archive_journal(base / "inc", base / "inc.duckdb", batch=7)
    assert (first.imported, second.imported, second.last_seq) == (cut, len(envs) - cut, len(envs))
    write_journal(base / "full", envs)
    archive_journal(base / "full", base / "full.duckdb")
    assert dump(base / "inc.duckdb") == dump(base / "full.duckdb")

    state = fold(envs)
    con = connect(base / "full.duckdb")
    try:
        assert as_fold_sees_it(con) == from_fold(state)
        latest = run(
            con, "SELECT client_order_id, status, filled FROM orders_at(TIMESTAMP '2100-01-01')"
        ).rows
        assert sorted(latest) == sorted((c, o.status, o.filled) for c, o in state.orders.items())
        source = JournalSource(base / "full")
        for coid in state.orders:  # the SQL timeline is the journal's, event for event
            (journal_timeline,) = order_timelines(source, coid)
            sql = order_timeline(con, coid).rows
            assert [r[0] for r in sql] == [e.env.seq for e in journal_timeline.entries]
            assert [r[3] for r in sql] == [
                e.order.status if e.order else None for e in journal_timeline.entries
            ]
    finally:
        con.close()
    # the archive is a replay source too
    assert state_at(ArchiveSource(base / "full.duckdb"), len(envs)) == state
    assert list(ArchiveSource(base / "full.duckdb").read()) == list(JournalReader(base / "full").read())


@SETTINGS
@given(session=sessions(max_orders=5), points=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4))
def test_orders_and_positions_at_any_seq_are_the_folds_after_that_seq(
    tmp_path: Path, session, points
) -> None:
    """`orders_at` / `positions_at` read the stored history: after event k they equal fold(events[:k])."""
    base = fresh_dir(tmp_path)
    envs = session.envelopes
    write_journal(base / "j", envs)
    archive_journal(base / "j", base / "a.duckdb", batch=5)
    con = connect(base / "a.duckdb")
    try:
        for k in sorted({max(1, round(p * len(envs))) for p in points} & set(range(1, len(envs) + 1))):
            at = {"t": envs[k - 1].ts // 1000}  # microseconds, as the archive's `ts`
            orders = run(
                con,
                "SELECT client_order_id, status, quantity, filled, avg_fill_price, perm_ids "
                "FROM orders_at(make_timestamp($t))",
                at,
            ).rows
            positions = run(
                con, "SELECT key, quantity, avg_price, status FROM positions_at(make_timestamp($t))", at
            ).rows
            fold_orders, _, fold_positions = from_fold(fold(envs[:k]))
            assert ({r[0]: r[1:] for r in orders}, {r[0]: r[1:] for r in positions}) == (
                fold_orders,
                fold_positions,
            ), f"after seq {k}"
    finally:
        con.close()


def test_the_explicit_session_in_sql(tmp_path: Path) -> None:
    write_journal(tmp_path / "j", explicit_events())
    report = archive_journal(tmp_path / "j", tmp_path / "a.duckdb")
    assert (report.imported, report.first_seq, report.last_seq, report.note) == (15, 1, 15, "")
    assert mode(tmp_path / "a.duckdb") == 0o600
    con = connect(tmp_path / "a.duckdb")
    try:
        assert find_orders(con, "999") == find_orders(con, "5") == find_orders(con, "A1") == ["A1"]
        assert find_orders(con, "12345") == []
        assert [r[0] for r in order_timeline(con, "A1").rows] == A1_SEQS
        row = run(
            con,
            "SELECT kind, client_order_id, order_id, perm_id, exec_id, con_id, symbol FROM events "
            "WHERE seq = 9",
        )
        assert row.rows == [("execution", "A1", 5, 999, "E1.01", 265598, "AAPL")]
        assert run(con, "SELECT seq, code, req_id, error_class FROM errors").rows == [
            (10, 10349, 5, "information")
        ]
        execs = run(
            con, "SELECT exec_id, shares, commission, commission_seq FROM executions ORDER BY seq"
        ).rows
        assert execs == [("E1.01", 40.0, 1.0, 5), ("E2.01", 10.0, None, None)]
        assert all(isinstance(shares, Decimal) for _, shares, _, _ in execs)  # exact, not a float
        assert isinstance(execs[0][2], Decimal)  # money too: a sum over commissions stays exact
        at = run(
            con, "SELECT client_order_id, status, filled FROM orders_at(TIMESTAMP '2026-11-20 14:03:15')"
        ).rows
        assert sorted(at) == [("A1", "partially_filled", 40.0), ("B2", "pending", 0.0)]
        moves = run(
            con,
            "SELECT seq, quantity FROM position_states "
            "WHERE strategy_id = '' AND con_id = 265598 ORDER BY seq",
        )
        assert list(dict.fromkeys(q for _, q in moves.rows))[-2:] == [40.0, 30.0]  # after seq 9, then 13
        pos = run(con, "SELECT key, quantity FROM positions_at(TIMESTAMP '2026-11-20 14:03:15')").rows
        assert pos == [("DU1|265598", 40.0)]
    finally:
        con.close()


def test_archiving_twice_changes_nothing(tmp_path: Path) -> None:
    write_journal(tmp_path / "j", explicit_events())
    archive_journal(tmp_path / "j", tmp_path / "a.duckdb")
    before = dump(tmp_path / "a.duckdb")
    again = archive_journal(tmp_path / "j", tmp_path / "a.duckdb")
    assert (again.imported, again.first_seq, again.last_seq) == (0, 0, 15)
    assert dump(tmp_path / "a.duckdb") == before


def test_a_torn_tail_is_archived_up_to_the_last_good_frame(tmp_path: Path) -> None:
    write_journal(tmp_path / "j", explicit_events())
    segment = list_segments(tmp_path / "j")[-1][1]
    data = segment.read_bytes()
    with segment.open("ab") as f:  # a frame whose write never finished: its first 20 bytes
        f.write(data[-60:-40])
    report = archive_journal(tmp_path / "j", tmp_path / "a.duckdb")
    assert report.last_seq == 15
    assert "incomplete frame" in report.note and "after seq 15" in report.note


def test_not_a_journal_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(NotAJournal, match="not a journal"):
        archive_journal(tmp_path / "photos", tmp_path / "a.duckdb")
    assert not (tmp_path / "a.duckdb").exists()


def test_an_archive_of_another_journal_is_refused(tmp_path: Path) -> None:
    write_journal(tmp_path / "one", explicit_events())
    write_journal(tmp_path / "two", explicit_events(), step_ns=2_000_000_000)
    archive_journal(tmp_path / "one", tmp_path / "a.duckdb")
    with pytest.raises(ArchiveMismatch, match="not the journal"):
        archive_journal(tmp_path / "two", tmp_path / "a.duckdb")


def test_parquet_exports_are_private_and_complete(tmp_path: Path) -> None:
    write_journal(tmp_path / "j", explicit_events())
    archive_journal(tmp_path / "j", tmp_path / "a.duckdb")
    con = connect(tmp_path / "a.duckdb")
    try:
        written = export_all(con, tmp_path / "out")
        export_parquet(con, "SELECT seq, kind FROM events WHERE kind = 'execution'", tmp_path / "x.parquet")
    finally:
        con.close()
    assert [p.stem for p in written] == list(EXPORTED)
    assert mode(tmp_path / "out") == 0o700
    assert all(mode(p) == 0o600 for p in [*written, tmp_path / "x.parquet"])
    read = duckdb.connect()
    assert read.execute(f"SELECT count(*) FROM '{tmp_path / 'out' / 'events.parquet'}'").fetchone() == (15,)
    assert read.execute(f"SELECT * FROM '{tmp_path / 'x.parquet'}'").fetchall() == [
        (9, "execution"),
        (13, "execution"),
    ]


def test_a_journal_is_read_and_archived_while_its_writer_appends(tmp_path: Path) -> None:
    events = explicit_events()
    with JournalWriter.open(tmp_path / "j", durability="never") as writer:
        for event in events[:6]:
            writer.append(event)
        writer.flush()  # handed to the OS: what a reader in another process sees
        assert archive_journal(tmp_path / "j", tmp_path / "a.duckdb").last_seq == 6
        assert state_at(JournalSource(tmp_path / "j"), 6).orders["A1"].status == "submitted"
        for event in events[6:]:
            writer.append(event)
        writer.flush()
        second = archive_journal(tmp_path / "j", tmp_path / "a.duckdb")
    assert (second.first_seq, second.last_seq) == (7, 15)
    con = connect(tmp_path / "a.duckdb")
    try:
        assert [r[0] for r in order_timeline(con, "A1").rows] == A1_SEQS
    finally:
        con.close()


def test_an_event_of_a_newer_kind_is_archived_verbatim_and_read_back(tmp_path: Path) -> None:
    raw = msgspec.msgpack.encode({"kind": "margin_call", "account": "DU1", "amount": 12.5})
    write_journal(
        tmp_path / "j", [*explicit_events()[:3], UnknownEvent(original_kind="margin_call", raw=raw)]
    )
    archive_journal(tmp_path / "j", tmp_path / "a.duckdb")
    con = connect(tmp_path / "a.duckdb")
    try:
        row = run(con, "SELECT kind, account, event FROM events WHERE seq = 4").rows
    finally:
        con.close()
    assert row == [("margin_call", "DU1", '{"kind":"margin_call","account":"DU1","amount":12.5}')]
    assert list(ArchiveSource(tmp_path / "a.duckdb").read()) == list(JournalReader(tmp_path / "j").read())


def test_an_archive_of_another_format_or_a_foreign_duckdb_file_is_refused(tmp_path: Path) -> None:
    write_journal(tmp_path / "j", explicit_events())
    archive_journal(tmp_path / "j", tmp_path / "a.duckdb")
    with duckdb.connect(str(tmp_path / "a.duckdb")) as con:
        con.execute("UPDATE archive_format SET format = 'older'")
    with pytest.raises(ArchiveMismatch, match="another version"):
        archive_journal(tmp_path / "j", tmp_path / "a.duckdb")
    with duckdb.connect(str(tmp_path / "foreign.duckdb")) as con:
        con.execute("CREATE TABLE events (id INTEGER)")
    with pytest.raises(ArchiveMismatch, match="not an oms archive"):
        archive_journal(tmp_path / "j", tmp_path / "foreign.duckdb")


def test_events_only_fills_the_events_table_alone_and_is_never_mixed_with_a_full_archive(
    tmp_path: Path,
) -> None:
    envs = list(JournalReader(write_journal(tmp_path / "all", explicit_events())).read())
    archive_journal(tmp_path / "all", tmp_path / "full.duckdb")
    cut = len(envs) // 2
    write_journal(tmp_path / "j", envs[:cut])
    first = archive_journal(tmp_path / "j", tmp_path / "ev.duckdb", events_only=True, batch=3)
    write_journal(tmp_path / "j", envs[cut:])
    second = archive_journal(tmp_path / "j", tmp_path / "ev.duckdb", events_only=True, batch=3)
    assert (first.imported, second.imported, second.last_seq) == (cut, len(envs) - cut, len(envs))
    full, events_only = dump(tmp_path / "full.duckdb"), dump(tmp_path / "ev.duckdb")
    assert events_only["events"] == full["events"]
    assert {t: rows for t, rows in events_only.items() if rows} == {"events": full["events"]}
    assert archive_journal(tmp_path / "j", tmp_path / "ev.duckdb", events_only=True).imported == 0
    assert list(ArchiveSource(tmp_path / "ev.duckdb").read()) == envs
    with pytest.raises(ArchiveMismatch, match="holds events only"):
        archive_journal(tmp_path / "j", tmp_path / "ev.duckdb")
    with pytest.raises(ArchiveMismatch, match="history"):
        archive_journal(tmp_path / "all", tmp_path / "full.duckdb", events_only=True)


@pytest.mark.parametrize("batch", [3, 1000])
def test_the_archive_keeps_the_orders_and_fills_the_live_state_retired(tmp_path: Path, batch: int) -> None:
    """c1 finishes, 16 quiet minutes retire it from the folded state, c2 finishes: the archive, which is
    for questions after the fact, still has both orders and both fills (also across incremental runs)."""
    from oms.state.history import RETIRE_AFTER_NS
    from tests.test_fold_history import MS, QUIET, _envs, _filled_order

    first = _envs(_filled_order("c1", 101, 9001))
    quiet = _envs([QUIET], len(first) + 1, first[-1].ts + RETIRE_AFTER_NS + MS)
    second = _envs(_filled_order("c2", 102, 9002), len(first) + 2, quiet[-1].ts + MS)
    envs = [*first, *quiet, *second]
    assert set(fold(envs).orders) == {"c2"}
    base = fresh_dir(tmp_path)
    write_journal(base / "j", envs[:8])
    archive_journal(base / "j", base / "a.duckdb", batch=batch)
    write_journal(base / "j", envs[8:])
    archive_journal(base / "j", base / "a.duckdb", batch=batch)
    con = connect(base / "a.duckdb")
    try:
        assert sorted(run(con, "SELECT client_order_id, status FROM orders").rows) == [
            ("c1", "filled"),
            ("c2", "filled"),
        ]
        assert sorted(run(con, "SELECT client_order_id, exec_id FROM fills").rows) == [
            ("c1", "0001.9001.01"),
            ("c2", "0001.9002.01"),
        ]
    finally:
        con.close()


def test_an_event_the_fold_cannot_apply_is_archived_as_a_fold_error(tmp_path: Path) -> None:
    """A correction of a retired order's fill is refused by the fold (RetiredOrder): the archive records it
    in `fold_errors`, as the state does, and goes on (it used to stop on the FoldError change)."""
    from msgspec.structs import replace

    from events.schema import ExecutionReported
    from oms.state.history import RETIRE_AFTER_NS
    from tests.test_fold_history import MS, QUIET, _envs, _filled_order

    first = _envs(_filled_order("c1", 101, 9001))
    quiet = _envs([QUIET], len(first) + 1, first[-1].ts + RETIRE_AFTER_NS + MS)
    (execution,) = [e.event for e in first if isinstance(e.event, ExecutionReported)]
    late = _envs([replace(execution, exec_id="0001.9001.02")], len(first) + 2, quiet[-1].ts + MS)
    envs = [*first, *quiet, *late]
    state = fold(envs)
    assert list(state.fold_errors) == [late[0].seq]
    write_journal(tmp_path / "j", envs)

    report = archive_journal(tmp_path / "j", tmp_path / "a.duckdb")

    assert report.last_seq == len(envs)
    con = connect(tmp_path / "a.duckdb")
    try:
        rows = run(con, "SELECT seq, kind, error FROM fold_errors").rows
        assert rows == [(e.seq, e.kind, e.error) for e in state.fold_errors.values()]
        assert "RetiredOrder" in rows[0][2]
        assert run(con, "SELECT client_order_id, status FROM orders").rows == [("c1", "filled")]
    finally:
        con.close()
