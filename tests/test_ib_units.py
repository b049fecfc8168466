"""The adapter's pure parts: error classes, normalization of IB's sentinels and times, pacing, and the
position comparison of a reconciliation."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.ib import normalize
from adapters.ib.errors import classify
from adapters.ib.pacing import Pacing, TokenBucket
from adapters.ib.reconcile import LogView, NewFacts, position_mismatches
from events.schema import Contract, ExecutionReported, PositionReported
from tests.ib_helpers import FoldingSink

UNSET_DOUBLE = sys.float_info.max
UNSET_INTEGER = 2**31 - 1


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (201, "rejection"), (203, "rejection"), (10289, "rejection"), (10293, "rejection"),
        (200, "rejection"), (103, "rejection"), (451, "rejection"),
        (202, "cancel"),
        (10147, "cancel_failed"), (10148, "cancel_failed"), (161, "cancel_failed"),
        (104, "warning"), (105, "warning"), (110, "warning"), (165, "warning"), (321, "warning"),
        (399, "warning"), (404, "warning"), (434, "warning"), (492, "warning"), (10167, "warning"),
        (1100, "connectivity"), (1101, "connectivity"), (1102, "connectivity"), (1300, "connectivity"),
        (2110, "connectivity"), (326, "connectivity"), (502, "connectivity"), (504, "connectivity"),
        (2104, "information"), (2106, "information"), (2158, "information"), (10349, "information"),
        (100, "error"), (0, "error"),
    ],
)  # fmt: skip
def test_error_classes(code: int, expected: str) -> None:
    assert classify(code) == expected


@given(st.integers(2100, 2199).filter(lambda c: c != 2110))
def test_farm_status_range_is_information(code: int) -> None:
    assert classify(code) == "information"


def test_unset_sentinels_become_none_or_zero() -> None:
    assert normalize.number(UNSET_DOUBLE) is None and normalize.amount(UNSET_DOUBLE) == 0.0
    assert normalize.price(0.0) is None and normalize.price(12.5) == 12.5
    assert normalize.integer(UNSET_INTEGER) == 0 and normalize.integer(7) == 7
    assert normalize.text("?") == "" and normalize.text("SMART") == "SMART"
    report = SimpleNamespace(execId="e.01", commission=1.5, currency="USD", realizedPNL=UNSET_DOUBLE)
    assert normalize.commission_report(report).realized_pnl is None
    status = normalize.order_status(
        UNSET_INTEGER, "Filled", 5, 0, 10.0, 99, 0, UNSET_DOUBLE, 3, "", UNSET_DOUBLE
    )
    assert (status.order_id, status.last_fill_price, status.mkt_cap_price) == (0, 0.0, 0.0)


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from(["UTC", "US/Eastern", "America/New_York", "Europe/London", "Asia/Hong_Kong"]),
)
def test_execution_time_forms_parse_to_utc_ns(local: datetime, zone: str) -> None:
    local = local.replace(microsecond=0)
    aware = local.replace(tzinfo=ZoneInfo(zone))
    expected = (aware - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1) * 10**9
    stamp = local.strftime("%Y%m%d %H:%M:%S")
    assert normalize.parse_ib_time(f"{stamp} {zone}") == expected
    assert normalize.parse_ib_time(stamp.replace(" ", "  "), default_timezone=zone) == expected
    utc = aware.astimezone(UTC)
    assert normalize.parse_ib_time(utc.strftime("%Y%m%d-%H:%M:%S")) == expected
    assert normalize.parse_ib_time(str(expected // 10**9)) == expected


@pytest.mark.parametrize("raw", ["", "garbage", "20230224 12:04:56 Atlantis/Capital", "2023-02-24"])
def test_unparsable_execution_time_is_zero(raw: str) -> None:
    assert normalize.parse_ib_time(raw) == 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0, 0.2), min_size=1, max_size=300),
    st.floats(1, 50),
    st.integers(1, 10),
)
def test_token_bucket_never_exceeds_rate_plus_burst_in_any_second(
    gaps: list[float], rate: float, burst: int
) -> None:
    clock = FakeClock()
    bucket = TokenBucket(Pacing(rate=rate, burst=burst), clock=clock)
    taken: list[float] = []
    for gap in gaps:
        clock.now += gap
        wait = bucket.wait_time()
        if wait:
            clock.now += wait
        assert bucket.try_take()
        taken.append(clock.now)
    for i, start in enumerate(taken):
        in_window = sum(1 for t in taken[i:] if t <= start + 1.0)
        assert in_window <= burst + rate + 1e-9


def test_default_pacing_stays_under_ibs_limit() -> None:
    pacing = Pacing()
    assert pacing.burst + pacing.rate < 50


AAPL = Contract(symbol="AAPL", con_id=265598)
MSFT = Contract(symbol="MSFT", con_id=272093)


def report(contract: Contract, qty: float) -> PositionReported:
    return PositionReported(account="DU1", contract=contract, position=qty, avg_cost=1.0)


def test_positions_that_agree_give_no_mismatch() -> None:
    folded = {("DU1", 265598): (AAPL, 10.0)}
    assert position_mismatches([report(AAPL, 10)], folded) == []


def test_a_folded_position_is_matched_by_symbol_before_its_conid_is_known() -> None:
    folded = {("DU1", "AAPL"): (Contract(symbol="AAPL"), 10.0)}
    assert position_mismatches([report(AAPL, 10)], folded) == []


def test_each_disagreement_is_a_mismatch_including_positions_one_side_lacks() -> None:
    folded = {("DU1", 265598): (AAPL, 10.0), ("DU1", 1): (Contract(symbol="X", con_id=1), 5.0)}
    found = position_mismatches([report(AAPL, 7), report(MSFT, 3)], folded)
    got = {(m.contract.symbol, m.broker_position, m.folded_position) for m in found}
    assert got == {("AAPL", 7, 10), ("X", 0, 5), ("MSFT", 3, 0)}


def execution(exec_id: str, req_id: int) -> ExecutionReported:
    return ExecutionReported(
        exec_id=exec_id, order_id=1, perm_id=1, client_id=7, order_ref="c", account="DU1",
        contract=AAPL, side="BOT", shares=1, price=1.0, req_id=req_id,
    )  # fmt: skip


# a delivery: (execution number, its correction suffix 1 or 2, live?) or None for a service restart
deliveries = st.lists(
    st.one_of(st.tuples(st.integers(0, 5), st.integers(1, 2), st.booleans()), st.none()), max_size=60
)


@settings(max_examples=150, deadline=None)
@given(deliveries)
def test_syncs_log_each_execution_at_most_once_and_lose_none(
    plan: list[tuple[int, int, bool] | None],
) -> None:
    sink = FoldingSink()
    facts = NewFacts(LogView(lambda: sink.state))
    logged: Counter[str] = Counter()
    delivered: set[str] = set()
    for step_ in plan:
        if step_ is None:  # the service restarts: the adapter's memory is gone, the log is not
            facts = NewFacts(LogView(lambda: sink.state))
            continue
        n, suffix, live = step_
        event = execution(f"e{n}.0{suffix}", -1 if live else 9)
        delivered.add(event.exec_id)
        known_before = logged[event.exec_id] > 0 or any(logged[f"e{n}.0{s}"] for s in range(suffix + 1, 3))
        if facts.admit(event, syncing=not live):
            sink(event)
            logged[event.exec_id] += 1
            assert live or not known_before  # a sync never restates what the log holds
        else:
            assert not live  # live callbacks are always logged
    for exec_id in delivered:  # nothing lost: logged, or covered by a logged correction
        prefix, _, suffix = exec_id.rpartition(".")
        assert any(logged[f"{prefix}.0{s}"] for s in range(int(suffix), 3)), exec_id
