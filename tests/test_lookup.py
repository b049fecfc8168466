"""Lookups through the segment indexes (events/lookup.py): an order's events, the seq at a time, and
`oms replay --order` / `--at` on them, checked against folding the whole log."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from events.journal import JournalWriter
from events.lookup import order_events, seq_at
from events.reader import JournalReader
from events.schema import (
    AnyEvent,
    CommissionReported,
    ConnectionChanged,
    Contract,
    Envelope,
    ExecutionReported,
    OrderRequested,
    PositionMismatch,
)
from events.snapshots import write_snapshot
from oms.cli import main
from oms.state.codec import encode_state
from oms.state.fold import fold
from replay.points import seq_at_time
from replay.source import JournalSource
from replay.states import state_at
from replay.timeline import folded_timelines, order_timelines
from tests.fold_strategies import Session, sessions
from tests.test_replay_support import A1_SEQS, AAPL_IB, T0, explicit_events, fresh_dir, write_journal

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _write(directory: Path, envelopes: list[Envelope], segment_bytes: int) -> Path:
    with JournalWriter.open(directory, durability="never", segment_bytes=segment_bytes) as writer:
        for env in envelopes:
            writer.append(env.event, ts=env.ts)
    return directory


@SETTINGS
@given(session=sessions(max_orders=6))
def test_folding_an_orders_indexed_events_gives_the_order_of_the_full_fold(tmp_path: Path, session: Session):
    directory = _write(fresh_dir(tmp_path), session.envelopes, segment_bytes=2048)
    final = fold(session.envelopes)
    for coid, order in final.orders.items():
        events = order_events(directory, coid)
        assert fold(events).orders[coid] == order, coid
        by_perm = [order_events(directory, str(perm)) for perm in order.perm_ids]
        assert all(fold(envs).orders[coid] == order for envs in by_perm)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(session=sessions(max_orders=4))
def test_indexed_timelines_equal_the_folded_ones(tmp_path: Path, session: Session) -> None:
    source = JournalSource(_write(fresh_dir(tmp_path), session.envelopes, segment_bytes=2048))
    for coid in fold(session.envelopes).orders:
        assert order_timelines(source, coid) == folded_timelines(source, coid)


def test_an_order_requested_by_symbol_takes_the_conid_the_fold_learned_not_a_mismatch_s(tmp_path: Path):
    """c1 is requested with AAPL's conId; a position mismatch (which teaches the fold nothing) names it
    again; then c0 is requested by symbol alone. The lookup brings the request that named the conId."""
    aapl = Contract(symbol="AAPL")
    events: list[AnyEvent] = [
        ConnectionChanged(state="connected", client_id=7),
        OrderRequested(client_order_id="c1", strategy_id="s", account="DU1", contract=AAPL_IB, side="BUY",
                       quantity=Decimal(1), order_type="MKT"),
        PositionMismatch(account="DU1", contract=AAPL_IB, broker_position=Decimal(1),
                         folded_position=Decimal(0)),
        OrderRequested(client_order_id="c0", strategy_id="s", account="DU1", contract=aapl, side="BUY",
                       quantity=Decimal(1), order_type="MKT"),
    ]  # fmt: skip
    envelopes = [Envelope(seq, T0 + seq, event) for seq, event in enumerate(events, start=1)]
    directory = _write(fresh_dir(tmp_path), envelopes, segment_bytes=2048)
    found = order_events(directory, "c0")
    assert [env.seq for env in found] == [1, 2, 4]
    order = fold(found).orders["c0"]
    assert order == fold(envelopes).orders["c0"] and order.contract.con_id == AAPL_IB.con_id


def _explicit(tmp_path: Path) -> Path:
    """The explicit session, then a correction of A1's execution and its commission (named by execId
    only), and enough other events to roll segments."""
    directory = write_journal(tmp_path / "data" / "journal", explicit_events())
    correction = ExecutionReported(
        exec_id="E1.02", order_id=5, perm_id=999, client_id=7, order_ref="A1", account="DU1",
        contract=AAPL_IB, side="BOT", shares=Decimal(40), price=10.5,
    )  # fmt: skip
    with JournalWriter.open(directory, segment_bytes=2048) as writer:
        for i in range(40):
            writer.append(explicit_events()[11], ts=T0 + (16 + i) * 10**9)  # an account value
        writer.append(correction, ts=T0 + 60 * 10**9)  # seq 56
        writer.append(CommissionReported(exec_id="E1.02", commission=1.5, currency="USD"), ts=T0 + 61 * 10**9)
    return directory


@pytest.mark.parametrize("ident", ["A1", "5", "999"])
def test_an_order_is_found_by_client_order_id_order_id_and_perm_id(tmp_path: Path, ident: str) -> None:
    directory = _explicit(tmp_path)
    seqs = [env.seq for env in order_events(directory, ident)]
    assert seqs == sorted({2, *A1_SEQS, 56, 57})  # 2: the session's clientId; 56, 57: the correction
    (timeline,) = order_timelines(JournalSource(directory), ident)
    assert timeline.client_order_id == "A1"
    assert timeline.entries[-1].order == fold(JournalReader(directory).read()).orders["A1"]


def test_an_unknown_order_finds_nothing(tmp_path: Path, capsys) -> None:
    directory = _explicit(tmp_path)
    assert order_events(directory, "nope") == [] == order_events(directory, "123456")
    assert main(["replay", str(directory.parent), "--order", "nope"]) == 1
    assert "no order is named 'nope'" in capsys.readouterr().err


def test_at_a_time_equals_folding_to_that_seq(tmp_path: Path, capsys) -> None:
    directory = _explicit(tmp_path)
    envs = list(JournalReader(directory).read())
    source = JournalSource(directory)
    write_snapshot(directory, 20, encode_state(fold(envs[:20])))
    for second in (0, 1, 9, 15, 35, 59, 61, 99):
        t = T0 + second * 10**9 + 1
        seq = seq_at(directory, t)
        assert seq == seq_at_time(envs, t)
        assert state_at(source, seq) == fold(envs[:seq]) if seq else True
    assert main(["replay", str(directory.parent), "--at", "14:03:15"]) == 0
    assert "state at seq 9" in capsys.readouterr().out


def test_an_order_retired_from_the_state_still_has_its_timeline(tmp_path: Path) -> None:
    """Finished and quiet for 15 minutes, c1 is gone from the folded state; its timeline (indexed, and
    folded as for an archive) still ends with it filled."""
    from oms.state.history import RETIRE_AFTER_NS
    from tests.test_fold_history import QUIET, _filled_order

    journal = tmp_path / "j"
    with JournalWriter.open(journal) as writer:
        for i, event in enumerate(_filled_order()):
            writer.append(event, ts=T0 + i)  # type: ignore[arg-type]
        writer.append(QUIET, ts=T0 + RETIRE_AFTER_NS + 10**9)
    source = JournalSource(journal)
    assert "c1" not in state_at(source, source.last_seq()).orders
    for timelines in (order_timelines(source, "c1"), folded_timelines(source, "c1")):
        [timeline] = timelines
        last = timeline.entries[-1].order
        assert last is not None and (last.status, last.filled) == ("filled", 10)
