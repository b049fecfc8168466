"""The adapter's pure parts: error classes, normalization of IB's sentinels and times, pacing, and the
position comparison of a reconciliation."""

from __future__ import annotations

import logging
import struct
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from adapters.ib import normalize
from adapters.ib.adapter import IBAdapter
from adapters.ib.errors import ExpectedCodes, classify
from adapters.ib.pacing import Pacing, TokenBucket
from adapters.ib.reconcile import LogView, NewFacts, PositionKey, position_mismatches
from adapters.ib.refdata import choose_price
from adapters.ib.timezones import HandshakeReader, zone_of_connect_time
from events.schema import Contract, Envelope, ExecutionReported, PositionReported
from oms.state.fold import fold
from oms.state.model import initial_state
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
    # IB's wall-clock text carries no DST fold: in the repeated hour it means the first one (fold 0)
    local = local.replace(microsecond=0, fold=0)
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


Folded = dict[PositionKey, tuple[Contract, Decimal]]  # the fold's positions, as reconcile takes them


def report(contract: Contract, qty: int) -> PositionReported:
    return PositionReported(account="DU1", contract=contract, position=Decimal(qty), avg_cost=1.0)


def test_positions_that_agree_give_no_mismatch() -> None:
    folded: Folded = {("DU1", 265598): (AAPL, Decimal(10))}
    assert position_mismatches([report(AAPL, 10)], folded) == []


def test_a_folded_position_is_matched_by_symbol_before_its_conid_is_known() -> None:
    folded: Folded = {("DU1", "AAPL"): (Contract(symbol="AAPL"), Decimal(10))}
    assert position_mismatches([report(AAPL, 10)], folded) == []


def test_each_disagreement_is_a_mismatch_including_positions_one_side_lacks() -> None:
    folded: Folded = {
        ("DU1", 265598): (AAPL, Decimal(10)),
        ("DU1", 1): (Contract(symbol="X", con_id=1), Decimal(5)),
    }
    found = position_mismatches([report(AAPL, 7), report(MSFT, 3)], folded)
    got = {(m.contract.symbol, m.broker_position, m.folded_position) for m in found}
    assert got == {("AAPL", 7, 10), ("X", 0, 5), ("MSFT", 3, 0)}


def execution(exec_id: str, req_id: int) -> ExecutionReported:
    return ExecutionReported(
        exec_id=exec_id, order_id=1, perm_id=1, client_id=7, order_ref="c", account="DU1",
        contract=AAPL, side="BOT", shares=Decimal(1), price=1.0, req_id=req_id,
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
        prefix, _, correction = exec_id.rpartition(".")
        assert any(logged[f"{prefix}.0{s}"] for s in range(int(correction), 3)), exec_id


# -- the TWS time zone: the handshake's connection time, and IB's execution time forms (real strings) --


@pytest.mark.parametrize(
    ("conn_time", "now", "expected"),
    [
        # real TWS (rust-ibapi PR #232): Java's long name of the machine's zone
        ("20250323 22:21:01 Greenwich Mean Time", datetime(2025, 3, 23, 22, 21, tzinfo=UTC), "Europe/London"),
        ("20240101 12:00:00 UTC", datetime(2024, 1, 1, 12, 0, tzinfo=UTC), "UTC"),  # the simulator
        ("20231203 20:15:20 US/Eastern", datetime(2023, 12, 4, 1, 15, 20, tzinfo=UTC), "US/Eastern"),
        ("20240105 09:30:00 EST", datetime(2024, 1, 5, 14, 30, tzinfo=UTC), "America/New_York"),
        # CST is Chicago or Shanghai: the offset against the clock decides
        ("20240105 09:30:00 CST", datetime(2024, 1, 5, 15, 30, 2, tzinfo=UTC), "America/Chicago"),
        ("20240105 09:30:00 CST", datetime(2024, 1, 5, 1, 29, 58, tzinfo=UTC), "Asia/Shanghai"),
        ("20240705 09:30:00 GMT", datetime(2024, 7, 5, 9, 30, tzinfo=UTC), "UTC"),  # London says BST then
        ("20240105 09:30:00 中国标准时间", datetime(2024, 1, 5, 1, 30, tzinfo=UTC), "Asia/Shanghai"),
        ("20240105 09:30:00 \ufffd\ufffd\ufffd", datetime(2024, 1, 5, 1, 30, tzinfo=UTC), "Asia/Shanghai"),
        ("20240105 09:30:00 Atlantis/Capital", datetime(2024, 1, 5, 9, 30, tzinfo=UTC), None),
        ("20240105", datetime(2024, 1, 5, 9, 30, tzinfo=UTC), None),
    ],
)  # fmt: skip
def test_zone_of_the_handshake_connection_time(conn_time: str, now: datetime, expected: str | None) -> None:
    assert zone_of_connect_time(conn_time, now) == expected


def test_handshake_reader_keeps_the_connection_time_of_the_first_frame_only() -> None:
    payload = b"176\x0020250323 22:21:01 Greenwich Mean Time\x00"
    frame = struct.pack(">I", len(payload)) + payload
    next_valid_id = struct.pack(">I", 7) + b"9\x001\x001\x00"
    reader = HandshakeReader()
    reader.feed(frame[:3])  # the frame may arrive in pieces
    assert reader.conn_time == ""
    reader.feed(frame[3:20])
    reader.feed(frame[20:] + next_valid_id)
    assert reader.conn_time == "20250323 22:21:01 Greenwich Mean Time"
    reader.feed(frame)  # later traffic is not a handshake
    assert reader.conn_time == "20250323 22:21:01 Greenwich Mean Time"
    reader.reset()
    assert reader.conn_time == ""


@pytest.mark.parametrize(
    ("raw", "tws_zone", "expected_s"),
    [
        ("20231203 20:15:20 US/Eastern", "UTC", 1701652520),  # nautilus execution_details_1
        ("20230224  12:04:56", "US/Eastern", 1677258296),  # rust-ibapi tsla capture, TWS in New York
        ("20230224  12:04:56", "UTC", 1677240296),
        ("20230224  12:04:56", "EST", 1677258296),  # a zone named as the handshake names it
        ("20230224 12:04:56 Greenwich Mean Time", "UTC", 1677240296),
        ("1752606307", "US/Eastern", 1752606307),  # epoch seconds (rust-ibapi tws_interactions)
    ],
)
def test_real_execution_time_strings_parse_to_utc(raw: str, tws_zone: str, expected_s: int) -> None:
    assert normalize.parse_ib_time(raw, tws_zone) == expected_s * 10**9


# -- the libraries' log lines of expected codes --


@pytest.mark.parametrize(
    ("message", "level"),
    [
        ("Error 202, reqId 12: Order Canceled - reason:", logging.INFO),
        ("Error 10349, reqId 12: Order TIF was set to DAY based on order preset.", logging.INFO),
        ("Warning 2104, reqId -1: Market data farm connection is OK:usfarm", logging.INFO),
        ("Error 2110, reqId -1: Connectivity between TWS and server is broken.", logging.ERROR),
        ("Error 201, reqId 12: Order rejected - reason:", logging.ERROR),
        ("Canceled order: Trade(...)", logging.ERROR),
        (
            "orderStatus: No order found for orderId %s and clientId %s",
            logging.INFO,
        ),  # released by retention.py
    ],
)
def test_library_log_lines_of_expected_codes_are_info(message: str, level: int) -> None:
    record = logging.LogRecord("ib_async.wrapper", logging.ERROR, __file__, 1, message, None, None)
    assert ExpectedCodes().filter(record)
    assert (record.levelno, record.levelname) == (level, logging.getLevelName(level))


def test_the_librarys_cancelled_conclusion_after_an_expected_code_is_info() -> None:
    quiet = ExpectedCodes()
    lines = [
        ("Error 10349, reqId 4: Order TIF was set to DAY based on order preset.", logging.ERROR),
        ("Canceled order: Trade(orderId=4)", logging.WARNING),  # ib_insync believes 10349 ended it
        ("Error 201, reqId 5: Order rejected - reason: no", logging.ERROR),
        ("Canceled order: Trade(orderId=5)", logging.WARNING),  # a real rejection: stays a warning
    ]
    records = [logging.LogRecord("ib_insync.wrapper", lv, __file__, 1, m, None, None) for m, lv in lines]
    assert all(quiet.filter(r) for r in records)
    assert [r.levelno for r in records] == [logging.INFO, logging.INFO, logging.ERROR, logging.WARNING]


# -- reference prices: which snapshot field is the reference --


NAN = float("nan")


@pytest.mark.parametrize(
    ("ticks", "expected"),
    [
        ((187.5, 187.4, 187.6, 186.0), (187.5, "last")),
        ((NAN, 187.4, 187.6, 186.0), (187.5, "midpoint")),
        ((-1.0, -1.0, 187.6, 186.0), (186.0, "close")),  # IB's -1: no bid
        ((NAN, NAN, NAN, NAN), None),
        ((UNSET_DOUBLE, 0.0, 0.0, UNSET_DOUBLE), None),
    ],
)
def test_reference_price_is_last_else_midpoint_else_close(
    ticks: tuple[float, float, float, float], expected: tuple[float, str] | None
) -> None:
    assert choose_price(*ticks) == expected


def test_an_unknown_tws_time_zone_setting_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'US/Easter'"):
        IBAdapter(tws_timezone="US/Easter")
    assert IBAdapter(tws_timezone="Greenwich Mean Time").tws_timezone == "Greenwich Mean Time"


def test_master_client_in_the_configuration_makes_the_adapter_client_zero(tmp_path: Path) -> None:
    from oms.cli.run import broker_factory
    from oms.service.config import load_config

    path = tmp_path / "oms.toml"
    path.write_text("client_id = 5\nmaster_client = true\n")
    config = load_config(path)
    adapter = broker_factory(config, "127.0.0.1", 7497)(lambda _e: None, initial_state)
    assert isinstance(adapter, IBAdapter)
    assert (adapter.client_id, adapter.master_client) == (0, True)
    plain = broker_factory(load_config(None), "127.0.0.1", 7497)(lambda _e: None, initial_state)
    assert isinstance(plain, IBAdapter)
    assert (plain.client_id, plain.master_client) == (1, False)


def test_a_sync_restating_an_order_the_fold_retired_logs_nothing() -> None:
    """After a reconnect IB restates the day's executions, commissions and completed orders; for an order
    the fold has retired to history (only its tombstones remain), none of it is new. Live callbacks are
    logged whatever the fold holds."""
    from oms.state.history import RETIRE_AFTER_NS
    from tests.test_fold_history import QUIET, _envs, _filled_order

    done = _envs(_filled_order())
    later = Envelope(len(done) + 1, done[-1].ts + RETIRE_AFTER_NS + 1, QUIET)
    state = fold([*done, later])
    assert "c1" not in state.orders
    facts = NewFacts(LogView(lambda: state))
    execution_, commission, status = (e.event for e in done[3:6])
    restated = [replace(execution_, req_id=9), commission, status]  # type: ignore[type-var]
    assert [facts.admit(e, syncing=True) for e in restated] == [False, False, False]
    assert facts.admit(execution_, syncing=False)  # live: always logged (the fold dedupes)
    facts.sync_closed()
    assert not facts.admit(replace(execution_, req_id=9), syncing=True)  # type: ignore[type-var]
