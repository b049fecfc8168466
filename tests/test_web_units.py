"""The web app's pure parts, no server and no browser: display rows (both shapes of money), charts, the
recorded-session stepper (journal and DuckDB archive), intake mapping and config, and the safety rules."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from http.cookiejar import CookieJar
from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest
from jinja2 import Environment, FileSystemLoader
from msgspec.structs import replace

from events.schema import Contract, Envelope, ExecutionReported, KillSwitchChanged, OrderRequested, OrderSent
from oms.cli.web import ReplayRecording, split_listen
from oms.protocol import PlaceRequest
from oms.state.fold import fold, step
from oms.state.model import Order, Position, Removed, initial_state
from oms.web import views
from oms.web.app import build_app
from oms.web.charts import Charts
from oms.web.finished import Finished
from oms.web.intake import Intake, IntakeConfigError, WebhookConfig, load_intake, order_of_alert
from oms.web.security import Guard, is_loopback_host
from oms.web.session import Session
from replay.archive import archive_journal
from replay.states import state_at
from tests.test_replay_support import T0, explicit_events, write_journal
from tests.waiting import wait_until
from tests.web_helpers import http

AAPL = Contract(symbol="AAPL", con_id=265598)


def test_numbers_are_shown_exactly() -> None:
    assert views.num(0.1) == "0.1"
    assert views.num(Decimal("10.000")) == "10"
    assert views.num(Decimal("0.00012")) == "0.00012"
    assert views.num(1e-7) == "0.0000001"
    assert views.num(None) == ""
    assert views.amount(Decimal("-0.000")) == "0.00"
    assert views.amount(Decimal("1234.5")) == "1,234.50"
    assert views.amount(Decimal("0.0035")) == "0.0035"


def test_money_per_currency_is_never_summed_across_currencies() -> None:
    assert views.money_text({"USD": Decimal("12.5"), "EUR": Decimal("-3")}) == "-3.00 EUR  12.50 USD"
    total: dict[str, Decimal] = {}
    views.add_money(total, {"USD": Decimal(1)})
    views.add_money(total, {"EUR": Decimal(2), "USD": Decimal("0.5")})
    assert total == {"USD": Decimal("1.5"), "EUR": Decimal(2)}


def test_unrealized_needs_a_known_price() -> None:
    position = Position(
        key="DU1|AAPL:265598", account="DU1", contract=AAPL, quantity=Decimal(-2), avg_price=Decimal("100.25")
    )
    assert views.unrealized(position, {}) is None
    assert views.unrealized(position, {"AAPL:265598": Decimal("101")}) == {"USD": Decimal("-1.500")}
    flat = msgspec.structs.replace(position, quantity=Decimal(0))
    assert views.unrealized(flat, {}) == {}


def session_envelopes() -> list[Envelope]:
    return [Envelope(seq, T0 + seq * 1_000_000_000, e) for seq, e in enumerate(explicit_events(), 1)]


def test_rows_follow_the_filters() -> None:
    state = fold(session_envelopes())
    working, done = views.order_rows(state, views.Filter(), limit=10)
    assert [o["id"] for o in done] == ["A1", "B2"] and working == []  # newest change first
    assert done[0]["filled"] == "40" and done[0]["remaining"] == "0" and done[0]["perm_ids"] == "999"
    only_s2 = views.Filter(strategy="s2")
    assert [o["id"] for o in views.order_rows(state, only_s2, 10)[1]] == ["B2"]
    assert views.position_rows(state, only_s2, per_strategy=False) == []  # accounts are not per strategy
    assert {p["strategy"] for p in views.position_rows(state, only_s2, per_strategy=True)} == {"s2"}
    assert views.order_rows(state, views.Filter(symbol="MSFT"), 10) == ([], [])
    assert [f["exec_id"] for f in views.fill_rows(state, views.Filter(), 1)] == ["E2.01"]  # newest first
    accounts = views.account_rows(state, views.Filter())
    assert accounts[0]["NetLiquidation"] == "1000" and accounts[-1]["currency"] == "ours"
    assert views.Filter.of({"symbol": " aapl ", "account": "DU1"}).query() == "symbol=AAPL&account=DU1"


def test_charts_mark_fills_and_sum_pnl_per_currency() -> None:
    charts = Charts()
    state = initial_state()
    for env in session_envelopes():
        state, changes = step(state, env)
        charts.record(env, changes)
    data = charts.data(views.Filter())
    assert [p["label"] for p in data["positions"]] == ["DU1 AAPL"]
    line = data["positions"][0]
    assert line["qty"][-1] == 30.0  # +40 then -10
    assert [q for q in line["fills"] if q is not None] == [40.0, 30.0]
    assert set(data["pnl"]["series"]) == {"USD"}
    assert len(data["pnl"]["x"]) == len(data["pnl"]["series"]["USD"]) > 0
    per_strategy = charts.data(views.Filter(strategy="s1"))
    assert [p["label"] for p in per_strategy["positions"]] == ["DU1 s1 AAPL"]


def test_a_moved_position_key_takes_its_history_along() -> None:
    charts = Charts()
    early = Position(key="DU1|AAPL:0", account="DU1", contract=Contract(symbol="AAPL"), quantity=Decimal(5))
    charts.record(Envelope(1, T0, OrderSent(client_order_id="x", order_id=1, client_id=1)), (early,))
    later = Position(key="DU1|AAPL:265598", account="DU1", contract=AAPL, quantity=Decimal(7))
    env = Envelope(2, T0 + 1, OrderSent(client_order_id="x", order_id=1, client_id=1))
    charts.record(env, (Removed("DU1|AAPL:0", "DU1|AAPL:265598"), later))
    (line,) = charts.data(views.Filter())["positions"]
    assert line["qty"] == [5.0, 7.0]


def test_charts_stay_bounded() -> None:
    charts = Charts(max_points=50)
    for seq in range(1, 400):
        position = Position(key="DU1|AAPL:265598", account="DU1", contract=AAPL, quantity=Decimal(seq))
        event = ExecutionReported(
            exec_id=f"e{seq}", order_id=1, perm_id=1, client_id=1, order_ref="x", account="DU1",
            contract=AAPL, side="BOT", shares=Decimal(1), price=10.0,
        )  # fmt: skip
        charts.record(Envelope(seq, T0 + seq, event), (position,))
    (line,) = charts.data(views.Filter())["positions"]
    assert len(line["x"]) <= 50 and line["qty"][-1] == 399.0


@pytest.mark.parametrize("kind", ["journal", "archive"])
def test_session_steps_back_and_forth_like_replay(tmp_path: Path, kind: str) -> None:
    data = write_journal(tmp_path / "data" / "journal", explicit_events()).parent
    path = data
    if kind == "archive":
        path = tmp_path / "session.duckdb"
        archive_journal(data, path)
    recording = ReplayRecording(path)
    session = Session(recording)
    session.load()
    assert session.last == len(explicit_events())
    for seq in (9, 3, 15, 0, 14, 14):
        assert session.state_at(seq) == state_at(recording._source, seq), seq
    assert session.ts_of(9) == T0 + 8 * 1_000_000_000 and session.ts_of(99) == 0
    assert [e.seq for e in session.events_before(5, count=3)] == [5, 4, 3]
    (timeline,) = recording.timelines("999")  # by permId
    assert timeline.client_order_id == "A1" and [e.env.seq for e in timeline.entries][:2] == [3, 4]
    with pytest.raises(LookupError):
        recording.timelines("nope")


HOOK = WebhookConfig(
    secret="s" * 16,
    strategy="tv",
    fields={"symbol": "ticker", "side": "strategy.action", "quantity": "size", "client_order_id": "id"},
    defaults={"tif": "GTC"},
    id_prefix="tv-",
)


def test_an_alert_maps_to_a_place_request() -> None:
    alert = {"ticker": "AAPL", "strategy": {"action": "buy"}, "size": "3", "id": "alert-7"}
    assert order_of_alert(HOOK, alert) == {
        "tif": "GTC",
        "side": "BUY",
        "quantity": "3",
        "client_order_id": "tv-alert-7",
        "contract": {"symbol": "AAPL"},
        "strategy_id": "tv",
    }
    with pytest.raises(KeyError, match="size"):
        order_of_alert(HOOK, {"ticker": "AAPL", "strategy": {"action": "buy"}, "id": "x"})


def test_intake_config_must_be_private_and_complete(tmp_path: Path) -> None:
    path = tmp_path / "intake.toml"
    path.write_text('[[tokens]]\ntoken = "0123456789abcdef"\nstrategies = ["tv"]\n')
    path.chmod(0o644)
    with pytest.raises(IntakeConfigError, match="chmod 600"):
        load_intake(path)
    path.chmod(0o600)
    assert load_intake(path).tokens[0].strategies == ["tv"]
    path.write_text('[[tokens]]\ntoken = "short"\nstrategies = ["tv"]\n')
    with pytest.raises(IntakeConfigError, match="length"):
        load_intake(path)
    path.write_text('[webhooks.tv]\nsecret = "0123456789abcdef"\nstrategy = "tv"\nfields = {symbol = "t"}\n')
    with pytest.raises(IntakeConfigError, match="maps no field"):
        load_intake(path)


def test_beyond_loopback_a_token_is_required() -> None:
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("localhost")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("192.168.1.5")
    assert not Guard("127.0.0.1").pages_need_token
    with pytest.raises(ValueError, match="without a token"):
        Guard("0.0.0.0")
    assert Guard("0.0.0.0", token="t" * 20, token_given=True).pages_need_token
    assert split_listen("[::1]:8080") == ("::1", 8080)
    with pytest.raises(ValueError):
        split_listen("8080")


def test_the_web_package_is_a_client_never_the_service() -> None:
    code = (
        "import sys, oms.web.app, oms.web.live, oms.web.intake, oms.web.session;"
        "bad = sorted(m for m in sys.modules if m.startswith(('oms.service', 'replay', 'adapters')));"
        "print(','.join(bad))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == ""


def test_order_requested_is_a_working_order_row() -> None:
    env = Envelope(1, T0, OrderRequested(client_order_id="c1", strategy_id="s", account="DU1",
                                         contract=AAPL, side="BUY", quantity=Decimal("0.5")))  # fmt: skip
    state, _ = step(initial_state(), env)
    (row,) = views.order_rows(state, views.Filter(), 5)[0]
    assert row["qty"] == "0.5" and row["working"] == "1" and row["status"] == "pending"


@pytest.fixture
def exposed_app(tmp_path: Path) -> Iterator[str]:
    """The app as bound beyond loopback would be (a Guard for 0.0.0.0 with a token), served over real
    HTTP on a loopback socket, with one recorded session and no service."""
    import socket
    import threading

    import uvicorn

    data = write_journal(tmp_path / "data" / "journal", explicit_events()).parent
    guard = Guard("0.0.0.0", token=TOKEN, token_given=True)
    app = build_app(None, [Session(ReplayRecording(data))], guard, Intake(None, None))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="uvicorn to start")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(10)


TOKEN = "t" * 24


def test_beyond_loopback_every_page_needs_the_token(exposed_app: str) -> None:
    for path in ("", "sessions", "sessions/0", "healthz"):
        status, body = http("GET", exposed_app + path)
        assert (status, body["error"]["code"]) == (401, "unauthorized"), path
    assert http("GET", exposed_app + "sessions", headers={"Authorization": "Bearer " + "x" * 24})[0] == 401
    assert http("GET", exposed_app + "sessions", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert http("GET", exposed_app + f"sessions/0?at=9&token={TOKEN}")[0] == 401  # no cookie kept
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with browser.open(exposed_app + f"sessions/0?at=9&token={TOKEN}") as page:  # like a browser
        assert page.url == exposed_app + "sessions/0?at=9"  # the token left the address for a cookie
        assert "order_requested" in page.read().decode()
    assert http("GET", exposed_app + "static/app.js")[0] == 200  # public
    status, body = http("POST", exposed_app + "api/orders", {})  # intake has its own tokens: off here
    assert (status, body["error"]["code"]) == (404, "intake_disabled")
    headers = {"Authorization": f"Bearer {TOKEN}", "X-OMS-Token": TOKEN, "Origin": exposed_app.rstrip("/")}
    status, body = http("POST", exposed_app + "kill-switch", {}, headers)
    assert (status, body["error"]["code"]) == (403, "commands_disabled")  # read-only by default


def test_the_intake_example_in_the_docs_loads_and_maps(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "web.md").read_text()
    blocks: dict[str, list[str]] = {}
    for chunk in text.split("```")[1::2]:
        lang, _, body = chunk.partition("\n")
        blocks.setdefault(lang.strip(), []).append(body)
    (toml,) = blocks["toml"]
    path = tmp_path / "intake.toml"
    path.write_text(toml)
    path.chmod(0o600)
    config = load_intake(path)
    assert config.tokens[0].strategies == ["tv", "swing"]
    health, alert = (msgspec.json.decode(body) for body in blocks["json"])
    assert health["status"] == "ok"
    order = order_of_alert(config.webhooks["tradingview"], alert)
    request = msgspec.convert(order, PlaceRequest, strict=False)
    assert (request.client_order_id, request.strategy_id, request.quantity) == (
        "tv-alert-20261130-0001",
        "tv",
        10,
    )
    assert (request.side, request.limit_price, request.contract.symbol) == ("BUY", 189.5, "AAPL")


def test_rows_of_the_folds_coming_shape() -> None:
    """Decimal quantities and prices, money as {currency: Decimal}: what the fold is moving to."""
    eur = Contract(symbol="SAP", con_id=1, currency="EUR", multiplier="")
    position = SimpleNamespace(
        key="DU1|1", account="DU1", contract=eur, strategy_id="", quantity=Decimal("0.5"),
        avg_price=Decimal("100.10"), status="filled", close_reason="", lifecycle=1,
        realized_pnl_gross={"EUR": Decimal("2.5")}, realized_pnl_net={"EUR": Decimal("1.25")},
        commission={"EUR": Decimal("1.25")},
    )  # fmt: skip
    row = views.position_row(position, {"1": Decimal("101.1")})  # type: ignore[arg-type]
    assert (row["qty"], row["avg"], row["unrealized"]) == ("0.5", "100.1", "0.50 EUR")
    assert (row["realized_gross"], row["realized_net"], row["commission"]) == (
        "2.50 EUR",
        "1.25 EUR",
        "1.25 EUR",
    )
    fill = SimpleNamespace(
        exec_id="e1", client_order_id="c", strategy_id="s", account="DU1", contract=eur, side="BUY",
        shares=Decimal("0.5"), price=101.1, time_ns=0, ts=T0, seq=3, position_key="DU1|1",
        commission={"EUR": Decimal("0.0035"), "USD": Decimal("1")}, inferred=True,
    )  # fmt: skip
    state = SimpleNamespace(fills={"e1": fill})
    (shown,) = views.fill_rows(state, views.Filter(), 5)  # type: ignore[arg-type]
    assert (shown["commission"], shown["inferred"], shown["shares"]) == (
        "0.0035 EUR  1.00 USD",
        "inferred",
        "0.5",
    )
    assert views.last_prices(state) == {"1": Decimal("101.1")}  # type: ignore[arg-type]


def test_the_header_shows_each_scoped_kill_switch_with_its_code() -> None:
    loss = KillSwitchChanged(engaged=True, strategy_id="mom", code="daily_loss_limit", reason="lost 3")
    state = fold([Envelope(1, 1, loss), Envelope(2, 2, KillSwitchChanged(engaged=True, account="DU1"))])
    assert views.status_of(state, 2, "following")["kill_switch"] == (
        "off; account:DU1 kill_switch, strategy:mom daily_loss_limit"
    )
    state = fold([Envelope(3, 3, KillSwitchChanged(engaged=True, reason="halt"))], state)
    assert views.status_of(state, 3, "following")["kill_switch"].startswith("ENGAGED: halt; account:DU1")


def test_a_scoped_kill_leaves_the_button_for_the_switch_for_everything_on_engage() -> None:
    """A loss limit's kill of one strategy is not the switch for everything: the page still offers to
    engage it (the global release never lifts a scoped kill)."""
    sections = (
        Environment(loader=FileSystemLoader(Path(views.__file__).parent / "templates"))
        .get_template("sections.html")
        .module
    )
    loss = KillSwitchChanged(engaged=True, strategy_id="mom", code="daily_loss_limit", reason="lost 3")
    state = fold([Envelope(1, 1, loss)])
    header = str(sections.status(views.status_of(state, 1, "following"), True, "tcp://127.0.0.1:1"))  # type: ignore[attr-defined]
    assert "engage kill switch" in header and "release kill switch" not in header
    state = fold([Envelope(2, 2, KillSwitchChanged(engaged=True, reason="halt"))], state)
    header = str(sections.status(views.status_of(state, 2, "following"), True, "tcp://127.0.0.1:1"))  # type: ignore[attr-defined]
    assert "release kill switch" in header and "engage kill switch" not in header


def test_the_filter_s_query_is_url_encoded() -> None:
    """A strategy named with `&` or `=` follows that strategy, not another filter."""
    assert (
        views.Filter(strategy="a&b=c", symbol="", account="", everything=False).query()
        == "strategy=a%26b%3Dc"
    )


def test_finished_keeps_the_newer_order_when_the_refolded_history_arrives_after_the_live_feed() -> None:
    done = Order(client_order_id="c1", strategy_id="s", account="DU1", contract=Contract(symbol="AAPL"),
                 side="BUY", quantity=Decimal(1), status="cancelled", updated_seq=5)  # fmt: skip
    later = replace(done, status="filled", updated_seq=9)  # a late fill after the cancel, seen live first
    finished = Finished(limit=10)
    finished.record(
        initial_state(), Envelope(9, 9, OrderSent(client_order_id="c1", order_id=1, client_id=1)), (later,)
    )
    finished.record(
        initial_state(), Envelope(5, 5, OrderSent(client_order_id="c1", order_id=1, client_id=1)), (done,)
    )
    assert finished.orders["c1"] is later
