"""Finished orders retire to history (oms.state.history): the live state holds what is live, money never
changes by retiring, and IB repeating a retired order's reports after a reconnect changes nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from msgspec.structs import replace

from events.schema import (
    CommissionReported,
    Envelope,
    ExecutionReported,
    OpenOrderReported,
    OrderStatusReported,
    SessionStarted,
)
from oms.state.codec import SnapshotError, decode_state, encode_state
from oms.state.fills import INFERRED
from oms.state.fold import fold, step
from oms.state.history import MINUTE_NS, RETIRE_AFTER_NS, SEAL_AT
from oms.state.model import TERMINAL, State, initial_state
from oms.state.tombstones import TOMBSTONE_NS, retired, taken
from tests.fold_strategies import AAPL_IB, KEY, Session, execution, requested, sent, sessions

PROPS = settings(max_examples=150, deadline=None)
MS = 10**6
QUIET = SessionStarted(version="test", config_digest="")


def _filled_order(coid: str = "c1", order_id: int = 101, perm_id: int = 9001) -> list[object]:
    """One order's events, from request to its commission: filled and final."""
    execution = ExecutionReported(
        exec_id=f"0001.{perm_id}.01", order_id=order_id, perm_id=perm_id, client_id=7, order_ref=coid,
        account="DU111", contract=AAPL_IB, side="BOT", shares=Decimal(10), price=100.5,
    )  # fmt: skip
    return [
        requested(coid),
        sent(coid, order_id),
        OpenOrderReported(
            order_id=order_id,
            perm_id=perm_id,
            client_id=7,
            order_ref=coid,
            account="DU111",
            contract=AAPL_IB,
            side="BUY",
            quantity=Decimal(10),
            order_type="LMT",
            limit_price=100.0,
            status="Submitted",
        ),
        execution,
        CommissionReported(exec_id=execution.exec_id, commission=1.25, currency="USD"),
        OrderStatusReported(
            order_id=order_id,
            perm_id=perm_id,
            client_id=7,
            status="Filled",
            filled=Decimal(10),
            remaining=Decimal(0),
            avg_fill_price=100.5,
        ),
    ]


def _envs(events: list[object], start_seq: int = 1, start_ts: int = MS) -> list[Envelope]:
    return [Envelope(start_seq + i, start_ts + i * MS, e) for i, e in enumerate(events)]  # type: ignore[arg-type]


def _retired_c1() -> tuple[State, list[Envelope]]:
    """c1 filled and final, then 16 quiet minutes and the next event: c1 has retired."""
    envs = _envs(_filled_order())
    later = _envs([QUIET], len(envs) + 1, envs[-1].ts + RETIRE_AFTER_NS + MS)
    return fold([*envs, *later]), [*envs, *later]


def test_a_final_quiet_order_retires_and_its_position_and_money_stay() -> None:
    kept = fold(_envs(_filled_order()))
    state, _ = _retired_c1()
    assert not state.orders
    assert not state.fills and not state.perm_ids
    assert (state.history.orders, state.history.fills) == (1, 1)
    assert state.positions == kept.positions and state.accounts == kept.accounts
    assert taken(state, "c1") and not taken(state, "c3")


def test_repeats_of_a_retired_orders_reports_change_nothing() -> None:
    """After a reconnect IB re-sends the day's executions, commissions and completed orders."""
    state, envs = _retired_c1()
    before = encode_state(state)
    seq, ts = envs[-1].seq, envs[-1].ts
    for i, event in enumerate(_filled_order()[2:], start=1):  # openOrder, execution, commission, status
        state, changes = step(state, Envelope(seq + i, ts + i * MS, event))  # type: ignore[arg-type]
        assert changes == ()
    assert decode_state(before).orders == state.orders and decode_state(before).positions == state.positions
    assert not state.fold_errors


def test_a_repeated_execution_of_a_retired_order_leaves_every_table_as_it_was() -> None:
    """The execution names an order the state no longer knows: what the step worked out for it (an
    external order's ids, its instrument) is dropped once its fill is recognised as a retired one's."""
    state, envs = _retired_c1()
    before = encode_state(replace(state, seq=0, ts=0))
    execution = next(e.event for e in envs if isinstance(e.event, ExecutionReported))
    state, changes = step(state, Envelope(envs[-1].seq + 1, envs[-1].ts + MS, execution))
    assert changes == ()
    assert encode_state(replace(state, seq=0, ts=0)) == before


def test_a_correction_of_a_retired_fill_is_refused_and_recorded() -> None:
    state, envs = _retired_c1()
    fill = next(e.event for e in envs if isinstance(e.event, ExecutionReported))
    correction = replace(fill, exec_id=fill.exec_id[:-2] + "02", shares=Decimal(8))
    positions = dict(state.positions)
    state, changes = step(state, Envelope(envs[-1].seq + 1, envs[-1].ts + MS, correction))
    assert state.positions == positions
    error = state.fold_errors[envs[-1].seq + 1]
    assert "RetiredOrder" in error.error and changes == (error,)


def test_a_retired_fills_commission_sent_again_with_another_amount_is_refused_and_recorded() -> None:
    """The same report again changes nothing (a reconnect); another amount would change a retired
    order's money without its order, so it is a RetiredOrder fold error, never silently dropped."""
    state, envs = _retired_c1()
    report = next(e.event for e in envs if isinstance(e.event, CommissionReported))
    seq, ts = envs[-1].seq, envs[-1].ts
    state, changes = step(state, Envelope(seq + 1, ts + MS, report))
    assert changes == () and not state.fold_errors
    accounts = dict(state.accounts)
    state, changes = step(state, Envelope(seq + 2, ts + 2 * MS, replace(report, commission=2.5)))
    error = state.fold_errors[seq + 2]
    assert "RetiredOrder" in error.error and report.exec_id in error.error and changes == (error,)
    assert state.accounts == accounts


def test_a_retired_client_order_id_is_taken_for_a_day_then_free() -> None:
    state, envs = _retired_c1()
    state, changes = step(state, Envelope(envs[-1].seq + 1, envs[-1].ts + MS, requested("c1")))
    assert "c1" not in state.orders and changes == ()
    day_later = envs[-1].ts + TOMBSTONE_NS + RETIRE_AFTER_NS
    state, _ = step(state, Envelope(envs[-1].seq + 2, day_later, QUIET))
    assert not retired(state.history, "c", "c1") and not taken(state, "c1")


def test_tombstones_seal_into_sorted_blocks_that_still_answer() -> None:
    """Enough retired orders seal the recent tombstones into an immutable sorted block."""
    events: list[object] = []
    for i in range(SEAL_AT // 5 + 1):  # five identifiers per order
        events += _filled_order(f"o{i}", 1000 + i, 50_000 + i)
    envs = _envs(events)
    last = envs[-1]
    state = fold([*envs, Envelope(last.seq + 1, last.ts + RETIRE_AFTER_NS + MS, QUIET)])
    assert state.history.orders == SEAL_AT // 5 + 1 and len(state.history.sealed) == 1
    assert not state.history.recent
    assert all(taken(state, f"o{i}") for i in (0, 77, SEAL_AT // 5))
    assert decode_state(encode_state(state)) == state


def test_an_order_known_only_by_its_executions_waits_a_day_before_retiring() -> None:
    """The case test_what_stays_live_is_working_recent_unexplained_or_held exists for, which its
    generated sessions reach in only a few examples in a hundred: an external order taken as filled by
    its executions stays live past the quiet spell (IB's openOrder may still show it working), a day."""
    envs = _envs([execution("t1.01", 3, coid="", order_id=0, perm_id=4242, client_id=0)])
    ts = envs[-1].ts
    quiet = fold([*envs, *_envs([QUIET], 2, ts + RETIRE_AFTER_NS + MS)])
    assert quiet.orders["ext:perm:4242"].status == "filled" and quiet.history.orders == 0
    day = fold(
        [*envs, *_envs([QUIET], 2, ts + RETIRE_AFTER_NS + MS), *_envs([QUIET], 3, ts + TOMBSTONE_NS + MS)]
    )
    assert not day.orders and day.history.orders == 1
    assert day.positions[KEY].quantity == Decimal(3)  # the position stays


def test_a_snapshot_of_another_fold_version_is_refused() -> None:
    old = replace(initial_state(), fold_version=1)
    with pytest.raises(SnapshotError, match="fold version 1"):
        decode_state(encode_state(old))


@PROPS
@given(sessions(gaps=(RETIRE_AFTER_NS + MINUTE_NS,)))
def test_retiring_never_changes_positions_or_money(session: Session) -> None:
    """The same events with and without quiet spells (within a day: IB repeats only a day's reports):
    unless a report for a retired order was refused (recorded), positions and accounts are equal, and
    every order is either live or counted in history."""
    spread = fold(session.envelopes)
    assume(not any("RetiredOrder" in e.error for e in spread.fold_errors.values()))
    packed = fold(Envelope(e.seq, e.seq * MS, e.event) for e in session.envelopes)
    assert spread.positions == packed.positions
    assert spread.strategy_positions == packed.strategy_positions
    assert spread.accounts == packed.accounts
    assert spread.history.orders + len(spread.orders) == len(packed.orders)
    for coid, order in spread.orders.items():
        assert replace(order, created_ts=0, updated_ts=0) == replace(
            packed.orders[coid], created_ts=0, updated_ts=0
        )


@PROPS
@given(sessions(gaps=(RETIRE_AFTER_NS + MINUTE_NS, TOMBSTONE_NS + MINUTE_NS)))
def test_what_stays_live_is_working_recent_unexplained_or_held(session: Session) -> None:
    """A final, quiet order stays only while IB's word, its quantity or a commission is missing, or while
    one of its fills sits behind a live fill in a position's history; no history names a retired fill."""
    state = fold(session.envelopes)
    filled = {f.client_order_id for f in state.fills.values()}
    for order in state.orders.values():
        quiet = order.updated_ts < state.history.swept_ts - RETIRE_AFTER_NS
        if order.status in TERMINAL and quiet and not state.reconciling:
            unexplained = order.broker_filled > order.filled + order.overfill
            untold = order.external and not order.quantity  # waits a day for IB's openOrder
            assert unexplained or untold or order.client_order_id in filled, order
    for inputs in state.position_inputs.values():
        assert all(e in state.fills or e.startswith(INFERRED) for e in inputs if isinstance(e, str))
