"""What the blotter lists and how, without a server: instruments named as IB names them (oms.listing,
shared with the command line), positions listed by default only when open, working or filled, the
session's finished orders and fills kept after the fold retires them, the one clock, the sessions list,
the Host allow-list, and `oms web --session` with a path that is not there."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from events.schema import Contract, Envelope, ExecutionReported, SessionStarted
from oms.cli.web import ReplayRecording
from oms.listing import instrument_name, listed_by_default
from oms.state.fold import step
from oms.state.model import Position, initial_state
from oms.web import views
from oms.web.charts import Charts
from oms.web.finished import Finished
from oms.web.security import Guard
from oms.web.session import Session
from tests.client_helpers import REPO
from tests.test_fold_history import _envs, _filled_order, _retired_c1
from tests.test_replay_support import T0, explicit_events, write_journal

OPTION = Contract(symbol="AAPL", sec_type="OPT", last_trade_date="20261218", strike=200.0, right="C",
                  multiplier="100", local_symbol="AAPL  261218C00200000", con_id=700000101)  # fmt: skip


def test_instruments_are_named_as_ib_names_them() -> None:
    assert instrument_name(OPTION) == "AAPL 20261218 200 C"
    assert instrument_name(Contract(symbol="AAPL", sec_type="OPT", last_trade_date="20261218", strike=192.5,
                                    right="PUT")) == "AAPL 20261218 192.5 P"  # fmt: skip
    assert (
        instrument_name(
            Contract(symbol="ES", sec_type="FUT", last_trade_date="20261218", local_symbol="ESZ6")
        )
        == "ESZ6"
    )
    assert instrument_name(Contract(symbol="ES", sec_type="FUT", last_trade_date="202703")) == "ESH7"
    assert instrument_name(Contract(symbol="EUR", sec_type="CASH", currency="USD")) == "EUR.USD"
    assert instrument_name(Contract(symbol="AAPL")) == "AAPL"


def _position(**fields: object) -> Position:
    return Position(key="DU1|AAPL", account="DU1", contract=Contract(symbol="AAPL"), **fields)  # type: ignore[arg-type]


def test_a_lifecycle_that_never_filled_is_listed_only_on_request() -> None:
    rejected = _position(status="closed", close_reason="rejected", lifecycle=1)
    assert not listed_by_default(rejected)
    assert listed_by_default(_position(status="pending", lifecycle=1))  # working
    assert listed_by_default(_position(status="filled", quantity=Decimal(3), lifecycle=1))  # open
    assert listed_by_default(_position(status="closed", close_reason="flat", lifecycle=1))  # had fills
    assert listed_by_default(
        _position(status="closed", close_reason="rejected", lifecycle=2, commission={"USD": Decimal(1)})
    )  # an earlier lifecycle filled
    assert not views.Filter().lists(rejected) and views.Filter(everything=True).lists(rejected)
    assert views.Filter.of({"all": "1"}).query() == "all=1"


def test_a_rejected_order_s_lifecycle_is_left_out_of_the_chart_legend() -> None:
    charts = Charts()
    env = Envelope(1, T0, SessionStarted(version="1", config_digest="x"))
    charts.record(env, (_position(status="closed", close_reason="rejected", lifecycle=1),))
    option = Position(
        key="DU1|700000101", account="DU1", contract=OPTION, quantity=Decimal(1), status="filled"
    )
    fill = ExecutionReported(exec_id="e1", order_id=1, perm_id=1, client_id=1, order_ref="x", account="DU1",
                             contract=OPTION, side="BOT", shares=Decimal(1), price=12.5)  # fmt: skip
    charts.record(Envelope(2, T0 + 1, fill), (option,))
    assert [p["label"] for p in charts.data(views.Filter())["positions"]] == ["DU1 AAPL 20261218 200 C"]
    assert len(charts.data(views.Filter(everything=True))["positions"]) == 2


def test_finished_orders_and_fills_stay_listed_after_the_fold_retires_them() -> None:
    """The fold retires c1 after 15 quiet minutes; the blotter still lists it and its fill."""
    retired, envelopes = _retired_c1()
    assert "c1" not in retired.orders
    assert views.order_rows(retired, views.Filter(), 10)[1] == []  # what the live state alone shows
    finished = Finished(limit=10)
    state = initial_state()
    for env in envelopes:
        state, changes = step(state, env)
        finished.record(state, env, changes)
    done = views.order_rows(state, views.Filter(), 10, finished)[1]
    assert [row["id"] for row in done] == ["c1"] and done[0]["status"] == "filled"
    assert [row["order"] for row in views.fill_rows(state, views.Filter(), 10, finished)] == ["c1"]


def test_finished_keeps_only_the_newest() -> None:
    """Three orders finish one after another with room for one: the trim (past twice the limit) runs and
    keeps the newest order and its fill."""
    events = [
        event
        for i, coid in enumerate(("c1", "c2", "c3"))
        for event in _filled_order(coid, order_id=101 + i, perm_id=9001 + i)
    ]
    finished = Finished(limit=1)
    state = initial_state()
    for env in _envs(events):
        state, changes = step(state, env)
        finished.record(state, env, changes)
        assert len(finished.orders) <= 2 and len(finished.fills) <= 2
    assert list(finished.orders) == ["c3"] and finished.orders["c3"].status == "filled"
    assert [(key, fill.client_order_id) for key, fill in finished.fills.items()] == [("0001.9003", "c3")]


def test_the_one_clock_reads_in_the_service_s_zone() -> None:
    ts = 1_796_000_000_000_000_000  # 2026-11-30 00:53:20 UTC, 19:53:20 the day before in New York
    new_york = views.Clock("America/New_York", simulator=True)
    assert views.Clock().time(ts) == "00:53:20" and new_york.time(ts) == "19:53:20"
    assert new_york.precise(ts) == "2026-11-29 19:53:20.000 America/New_York"
    assert "the simulator's clock" in new_york.ib_time(ts) and "TWS's clock" in views.Clock().ib_time(ts)
    assert views.Clock("Not/AZone").zone == "UTC"


def test_only_the_configured_host_names_are_served() -> None:
    guard = Guard("127.0.0.1")
    for host in ("127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:8080", "[::1]"):
        assert guard.host_allowed(host), host
    for host in ("evil.example", "evil.example:8080", "127.0.0.1.evil.example", "", "[::2]:80"):
        assert not guard.host_allowed(host), host
    exposed = Guard("0.0.0.0", token="t" * 24, token_given=True, allowed_hosts=frozenset({"Blotter.lan"}))
    assert exposed.host_allowed("blotter.lan:8080") and not exposed.host_allowed("0.0.0.0:8080")
    assert Guard("10.0.0.5", token="t" * 24, token_given=True).host_allowed("10.0.0.5:8080")


def test_the_sessions_list_says_what_each_session_is(tmp_path: Path) -> None:
    data = write_journal(tmp_path / "data" / "journal", explicit_events()).parent
    summary = Session(ReplayRecording(data)).summary()
    assert (summary.orders, summary.fills) == (2, 2)
    assert summary.date and summary.span.endswith(" UTC") and " - " in summary.span
    assert summary.size.endswith((" B", " kB")) and summary.name == str(data)


def test_a_session_that_is_not_there_is_a_clear_error(tmp_path: Path) -> None:
    for path in (tmp_path / "nonexistent", _not_an_archive(tmp_path)):
        done = subprocess.run([sys.executable, "-m", "oms", "web", "--no-service", "--session", str(path)],
                              cwd=REPO, capture_output=True, text=True, timeout=30)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"oms web: --session {path}:") and "Traceback" not in done.stderr


def _not_an_archive(tmp_path: Path) -> Path:
    path = tmp_path / "session.duckdb"
    path.write_text("not a database")
    return path


@pytest.mark.parametrize("order_type,limit,stop,shown", [
    ("MKT", "", "", "MKT"), ("LMT", "1.5", "", "LMT 1.5"), ("STP", "", "5", "STP 5"),
    ("STP LMT", "4.9", "5", "STP LMT 4.9 (stop 5)"),
])  # fmt: skip
def test_an_order_s_type_and_prices_share_one_column(
    order_type: str, limit: str, stop: str, shown: str
) -> None:
    assert views.terms(order_type, limit, stop) == shown
