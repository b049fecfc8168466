"""Replay from a real journal: state at any seq or time, diffs, order timelines, the stepper, verify."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace
from rich.console import Console

from events.journal_errors import NotAJournal
from events.reader import JournalReader
from events.schema import BrokerError, Envelope
from events.snapshots import write_snapshot
from oms.state.codec import encode_state
from oms.state.fold import step
from oms.state.model import Order, initial_state
from replay.points import BadPoint, parse_time, resolve_point
from replay.render import render_event
from replay.source import JournalSource, open_source
from replay.states import diff_states, state_at, states_at
from replay.stepper import run as run_stepper
from replay.timeline import UnknownOrder, find_orders, order_timelines
from replay.verify import verify
from tests.fold_strategies import sessions
from tests.test_replay_support import (
    A1_SEQS,
    B2_SEQS,
    T0,
    explicit_events,
    fresh_dir,
    live_states,
    write_journal,
)

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def explicit(tmp_path: Path) -> JournalSource:
    return JournalSource(write_journal(tmp_path / "data" / "journal", explicit_events()).parent)


@SETTINGS
@given(session=sessions(max_orders=5), data=st.data())
def test_replayed_state_equals_the_live_state_at_every_seq(tmp_path: Path, session, data) -> None:
    directory = write_journal(fresh_dir(tmp_path), session.envelopes)
    live = live_states(session.envelopes)
    source = JournalSource(directory)
    seqs = list(range(1, len(live) + 1))
    assert list(states_at(source, seqs, use_snapshots=False)) == live
    # from a snapshot plus the tail: the same states
    snap = data.draw(st.integers(1, len(live)), label="snapshot seq")
    write_snapshot(directory, snap, encode_state(live[snap - 1]))
    later = seqs[snap - 1 :]
    assert list(states_at(source, later)) == live[snap - 1 :]


@SETTINGS
@given(session=sessions(max_orders=4), data=st.data())
def test_a_timeline_lists_exactly_the_events_that_touched_its_order(tmp_path: Path, session, data) -> None:
    directory = write_journal(fresh_dir(tmp_path), session.envelopes)
    source = JournalSource(directory)
    state = initial_state()
    changed_by: dict[str, list[int]] = {}
    for env in session.envelopes:
        state, changes = step(state, env)
        for change in changes:
            if isinstance(change, Order):
                changed_by.setdefault(change.client_order_id, []).append(env.seq)
    for coid, order in state.orders.items():
        (timeline,) = order_timelines(source, coid)
        seqs = [entry.env.seq for entry in timeline.entries]
        assert seqs == sorted(set(seqs))
        assert [e.env.seq for e in timeline.entries if e.changed] == changed_by[coid]
        assert timeline.entries[-1].order == order
        for entry in timeline.entries:
            if not entry.changed:  # it names the order by one of its ids
                assert _names(entry.env.event, order, session.envelopes), entry.env
    # with a snapshot to start from (as the service writes them), the same timelines
    before = {coid: order_timelines(source, coid) for coid in state.orders}
    snap = data.draw(st.integers(1, len(session.envelopes)), label="snapshot seq")
    write_snapshot(directory, snap, encode_state(live_states(session.envelopes)[snap - 1]))
    assert {coid: order_timelines(source, coid) for coid in state.orders} == before


def _names(event: object, order: Order, envs: list) -> bool:
    ids = {order.client_order_id, order.order_id, *order.perm_ids}
    exec_ids = {
        e.event.exec_id.rpartition(".")[0]
        for e in envs
        if getattr(e.event, "perm_id", None) in order.perm_ids and hasattr(e.event, "exec_id")
    }
    named = {
        getattr(event, f, None) for f in ("client_order_id", "order_ref", "order_id", "perm_id", "req_id")
    }
    exec_id = getattr(event, "exec_id", None)
    return bool(named & ids) or (exec_id is not None and exec_id.rpartition(".")[0] in exec_ids)


def test_explicit_timelines_by_client_order_id_order_id_and_perm_id(explicit: JournalSource) -> None:
    for ident in ("A1", "5", "999"):
        (timeline,) = order_timelines(explicit, ident)
        assert timeline.client_order_id == "A1"
        assert [e.env.seq for e in timeline.entries] == A1_SEQS
    (b2,) = order_timelines(explicit, "B2")
    assert [e.env.seq for e in b2.entries] == B2_SEQS
    entries = {e.env.seq: e for e in order_timelines(explicit, "A1")[0].entries}
    assert entries[5].order is not None and entries[5].order.status == "pending"  # the early commission
    assert not entries[5].changed and not entries[10].changed
    assert entries[9].order is not None
    assert entries[9].order.status == "partially_filled" and entries[9].order.filled == 40
    assert entries[14].order is not None and entries[14].order.status == "pending_cancel"
    assert entries[15].order is not None and entries[15].order.status == "cancelled"
    with pytest.raises(UnknownOrder):
        order_timelines(explicit, "nope")
    assert find_orders(state_at(explicit, 15).orders, "424242") == []


def test_state_at_a_time_and_the_diff_between_two_points(explicit: JournalSource) -> None:
    assert resolve_point(explicit, "14:03:15") == 9  # seq n was received at T0 + (n - 1) s
    assert resolve_point(explicit, "2026-11-20T14:03:15.5") == 9
    assert resolve_point(explicit, "2026-11-20T15:03:15+01:00") == 9
    assert resolve_point(explicit, "14:00:00") == 0
    assert resolve_point(explicit, "12") == 12
    with pytest.raises(BadPoint):
        resolve_point(explicit, "yesterday")
    before, after = states_at(explicit, [7, 9])
    changes = {(c.collection, c.key, c.field): (c.before, c.after) for c in diff_states(before, after)}
    assert changes[("orders", "A1", "status")] == ("submitted", "partially_filled")
    assert changes[("orders", "A1", "filled")] == (0.0, 40.0)
    assert changes[("orders", "B2", "*")][0] is None  # B2 appeared at seq 8
    assert ("orders", "A1", "quantity") not in changes
    assert state_at(explicit, 9).orders["A1"].filled == 40


def test_parse_time_forms() -> None:
    assert parse_time("2026-11-20T14:03:07", None) == T0
    assert parse_time("2026-11-20 14:03:07Z", None) == T0
    assert parse_time("9:03:07", T0) == T0 - 5 * 3600 * 10**9
    with pytest.raises(BadPoint):
        parse_time("14:03:07", None)


def test_not_a_journal_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NotAJournal):
        open_source(tmp_path)
    with pytest.raises(NotAJournal):
        open_source(tmp_path / "notes.txt")


def test_the_stepper_is_driven_through_stdin(explicit: JournalSource) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    assert run_stepper(explicit, io.StringIO("\n\n9\n\nbogus\n4\nq\n"), console) == 0
    text = out.getvalue()
    for shown in ("#1 ", "#2 ", "#9 ", "#10 ", "#4 "):
        assert shown in text
    assert "#3 " not in text.split("#4 ")[0]  # a jump does not show what it folds through
    assert "partially_filled" in text  # what #9 changed
    assert "(changes nothing)" in text  # #1, a session marker
    assert "Enter = next" in text


def test_verify_passes_good_snapshots_and_finds_a_planted_difference(explicit: JournalSource) -> None:
    directory = explicit.path
    live = live_states(list(JournalReader(directory).read()))
    write_snapshot(directory, 4, encode_state(live[3]))
    assert verify(directory).ok
    bad = live[12]  # state after seq 13, with A1's filled quantity wrong
    bad.orders["A1"] = replace(bad.orders["A1"], filled=41.0)
    write_snapshot(directory, 13, encode_state(bad))
    write_snapshot(directory, 15, encode_state(live[14]))
    report = verify(directory)
    assert not report.ok
    assert report.bad_snapshot == 13 and report.after_seq == 4
    assert report.parted_at == 6  # the first event after seq 4 that changed A1
    assert any(d.key == "A1" and d.field == "filled" for d in report.differences)
    assert [c.ok for c in report.checks] == [True, False]  # it stops at the first bad one


def test_ib_text_with_brackets_is_shown_as_sent() -> None:
    out = io.StringIO()
    message = "Order rejected [reason: 201] [/bold]"
    render_event(Console(file=out, width=200, color_system=None), Envelope(7, T0, BrokerError(
        req_id=5, code=201, message=message, error_class="rejection")))  # fmt: skip
    assert message in out.getvalue()
