"""The web app in a real browser: Chromium driven by Playwright against `oms web` following a real
`oms run` (embedded simulator). Orders are placed through the client library and over HTTP, and the
page must show them; the charts must draw; a recorded session is stepped with its slider. One service,
one web app and one browser for the whole module. Screenshots go to the module's tmp dir (printed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from events.reader import JournalReader
from events.schema import ExecutionReported
from oms.client import Client
from oms.protocol import ContractSpec
from tests.client_helpers import ServiceProcess, running_service
from tests.waiting import wait_until
from tests.web_helpers import WebProcess, chromium_path, http

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install .[web])"
)
CHROMIUM = chromium_path()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on the PATH: `apt-get install -y chromium` (see .ci/run)"
)

TV_TOKEN = "tok-tv-0123456789abcdef"
OTHER_TOKEN = "tok-other-0123456789ab"
SECRET = "hook-secret-0123456789"
INTAKE = f"""
[[tokens]]
name = "tv-bot"
token = "{TV_TOKEN}"
strategies = ["tv", "web"]

[[tokens]]
name = "other"
token = "{OTHER_TOKEN}"
strategies = ["other"]

[webhooks.alerts]
secret = "{SECRET}"
strategy = "tv"
id_prefix = "tv-"
fields = {{ symbol = "ticker", side = "action", quantity = "contracts", client_order_id = "id" }}
"""


@dataclass
class Stack:
    service: ServiceProcess
    web: WebProcess
    client: Client
    browser: Any
    shots: Path

    def page(self, path: str = "") -> Any:
        # bypass_csp: Playwright's wait_for_function evaluates a string, which the page's CSP forbids
        # (test_the_page_works_under_its_content_security_policy runs without it)
        page = self.browser.new_page(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(self.web.url if not path else self.web.base + path.lstrip("/"))
        return page

    def shot(self, page: Any, name: str) -> Path:
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("web")
    intake = base / "intake.toml"
    intake.write_text(INTAKE)
    intake.chmod(0o600)
    data = base / "data"
    with running_service(data, "--max-quantity", "100", "--sim-tick-ms", "200") as service:
        web = WebProcess(
            base, "--data-dir", str(data), "--allow-commands", "--intake", str(intake), "--session", str(data)
        ).start()
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                with Client.connect(data, strategy_id="mom") as client:
                    yield Stack(service, web, client, browser, base)
            finally:
                browser.close()
                web.stop()


def row(client_order_id: str) -> str:
    return f'[id="order-{client_order_id}"]'


def following(page: Any) -> None:
    page.wait_for_function("window.omsUpdates.length > 0", timeout=5000)


def test_an_order_from_a_client_is_on_the_page_within_a_second(stack: Stack) -> None:
    page = stack.page()
    following(page)
    coid = stack.client.place("AAPL", "BUY", 10)
    placed = time.monotonic()
    page.wait_for_selector(row(coid), timeout=1000)
    seen = time.monotonic() - placed
    page.wait_for_selector(f'{row(coid)}[data-status="filled"]', timeout=10_000)
    assert seen < 1.0
    assert page.locator(f"{row(coid)} td").nth(8).inner_text() == "10"  # filled
    positions = page.locator("table.positions").first
    assert positions.locator('tr[data-symbol="AAPL"] td.qty').inner_text() == "10"
    assert "USD" in page.locator("#sec-fills").inner_text()  # the fill's commission, with its currency
    page.wait_for_function("omsCharts.positions && omsCharts.positions.data[0].length > 0", timeout=3000)
    shot = stack.shot(page, "live")
    assert shot.stat().st_size > 10_000
    page.close()


def test_the_charts_draw(stack: Stack) -> None:
    page = stack.page()
    page.wait_for_function(
        "omsCharts.positions && omsCharts.positions.data[0].length > 0 && omsCharts.pnl.data[0].length > 0",
        timeout=5000,
    )
    for chart in ("#chart-pnl canvas", "#chart-positions canvas"):
        box = page.locator(chart).bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100
    labels = page.evaluate("omsCharts.positions.series.slice(1).map(s => s.label)")
    assert any("AAPL" in label for label in labels)
    page.close()


def test_a_late_web_app_charts_the_history_before_it_started(stack: Stack) -> None:
    """Its client starts from a snapshot; the chart history before it is refolded from `events` replies.
    Times are the service's (the embedded simulator's) clock, so they are compared with the journal's."""
    bought = Decimal(0)  # the first order (AAPL, 10) brings the position to 10 at its fill's own time
    for env in JournalReader(stack.service.data_dir / "journal").read():
        if isinstance(env.event, ExecutionReported) and env.event.contract.symbol == "AAPL":
            bought += env.event.shares
            if bought == 10:
                filled_at = env.ts / 1e9
                break
    else:
        pytest.fail("the first order's fill is not in the journal")
    late = WebProcess(stack.shots, "--data-dir", str(stack.service.data_dir), name="late").start()
    try:
        page = stack.browser.new_page(bypass_csp=True)
        page.goto(late.url)
        page.wait_for_function(
            "omsCharts.positions && omsCharts.positions.series.length > 1 &&"
            " omsCharts.positions.data[1].some(q => q === 10)",  # the first order's fill, before it started
            timeout=5000,
        )
        times, quantities = page.evaluate("omsCharts.positions.data.slice(0, 2)")
        assert times[quantities.index(10)] == filled_at  # charted at the fill's own time, from before the app
        page.close()
    finally:
        late.stop()


def test_cancel_from_the_page_and_what_refuses_a_command(stack: Stack) -> None:
    page = stack.page()
    following(page)
    working = stack.client.place("MSFT", "BUY", 1, limit_price=1.0)
    page.wait_for_selector(f'{row(working)}[data-status="submitted"]', timeout=5000)
    other = stack.client.place("MSFT", "BUY", 1, limit_price=1.0)
    cancel = f"{stack.web.base}orders/{other}/cancel"
    assert http("POST", cancel, {})[1]["error"]["code"] == "unauthorized"
    token = {"X-OMS-Token": stack.web.token}
    status, body = http("POST", cancel, {}, {**token, "Origin": "http://evil.example"})
    assert (status, body["error"]["code"]) == (403, "bad_origin")
    assert stack.client.order(other).status in ("pending", "submitted")  # type: ignore[union-attr]
    page.locator(f"{row(working)} button", has_text="cancel").click()
    page.wait_for_selector(f'{row(working)}[data-status="cancelled"]', timeout=5000)
    stack.client.cancel(other)
    page.close()


def test_http_intake_checks_the_token_and_the_service_decides(stack: Stack) -> None:
    url = stack.web.base + "api/orders"
    order = {"contract": {"symbol": "AAPL"}, "side": "BUY", "quantity": 2, "client_order_id": "http-1"}
    bearer = {"Authorization": f"Bearer {TV_TOKEN}"}
    assert http("POST", url, order)[0] == 401
    assert http("POST", url, order, {"Authorization": "Bearer wrong-token-0123456789"})[1]["error"] == {
        "code": "unauthorized",
        "message": "a valid bearer token is required",
    }
    other = {"Authorization": f"Bearer {OTHER_TOKEN}"}
    status, body = http("POST", url, {**order, "strategy_id": "tv"}, other)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert stack.service.requested("http-1") == 0  # refused: nothing happened
    wait_until(lambda: "refused POST /api/orders" in stack.web.err.read_text(), what="the refusal logged")
    assert "wrong-token" not in stack.web.err.read_text()  # logged without the credential

    status, body = http("POST", url, order, bearer)
    assert (status, body["client_order_id"], body["duplicate"]) == (201, "http-1", False)
    assert stack.client.wait_for_order("http-1", "filled", timeout=10).strategy_id == "tv"

    status, body = http("POST", url, {**order, "client_order_id": "http-2", "quantity": -1}, bearer)
    assert (status, body["error"]["code"]) == (400, "invalid")
    status, body = http("POST", url, {**order, "client_order_id": "http-3", "quantity": 500}, bearer)
    assert (status, body["error"]["code"], body["error"]["reason"]) == (422, "risk_denied", "max_quantity")

    resting = {**order, "client_order_id": "http-4", "limit_price": 1.0, "strategy_id": "web"}
    assert http("POST", url, resting, bearer)[0] == 201
    assert http("DELETE", url + "/http-4", headers=other)[1]["error"]["code"] == "forbidden"
    assert http("DELETE", url + "/http-4", headers=bearer)[0] == 202
    assert stack.client.wait_for_order("http-4", "cancelled", timeout=10).status == "cancelled"
    assert http("DELETE", url + "/nope", headers=bearer)[1]["error"]["code"] == "unknown_order"


def test_a_repeated_alert_places_one_order(stack: Stack) -> None:
    url = stack.web.base + "hooks/alerts"
    alert = {"ticker": "AAPL", "action": "sell", "contracts": "3", "id": "a-42"}
    status, body = http("POST", url + "?secret=wrong", alert)
    assert (status, body["error"]["code"]) == (401, "bad_secret")
    assert http("POST", url, {**alert, "secret": "nope"})[0] == 401
    assert stack.service.requested("tv-a-42") == 0

    status, first = http("POST", f"{url}?secret={SECRET}", alert)
    assert (status, first["client_order_id"], first["duplicate"]) == (201, "tv-a-42", False)
    status, again = http("POST", url, {**alert, "secret": SECRET})
    assert (status, again["client_order_id"], again["duplicate"]) == (200, "tv-a-42", True)
    assert stack.client.wait_for_order("tv-a-42", "filled", timeout=10).quantity == 3
    assert stack.service.requested("tv-a-42") == 1
    assert http("POST", f"{url}?secret={SECRET}", {"ticker": "AAPL"})[1]["error"]["code"] == "invalid"
    assert http("POST", stack.web.base + "hooks/unknown", alert)[0] == 404


def test_healthz(stack: Stack) -> None:
    status, body = http("GET", stack.web.base + "healthz")
    assert status == 200 and body["status"] == "ok" and body["ready"] and body["followed"]
    assert body["seq"] > 0 and body["connection"] == "connected" and body["kill_switch"] is False


def test_a_recorded_session_is_stepped_with_the_slider(stack: Stack) -> None:
    page = stack.page("sessions/0?at=1")
    page.wait_for_function("omsCharts.pnl !== null", timeout=10_000)
    last = int(page.locator("#slider").get_attribute("max"))
    assert last > 20
    assert page.locator("#session-status").get_attribute("data-seq") == "1"
    assert "none" in page.locator("#sec-orders").inner_text()  # nothing ordered at seq 1
    page.locator("#slider").fill(str(last))
    page.wait_for_selector(f'#session-status[data-seq="{last}"]', timeout=5000)
    assert page.locator("#sec-orders a").count() > 0
    middle = last // 2
    page.locator("#slider").fill(str(middle))
    page.wait_for_selector(f'#session-status[data-seq="{middle}"]', timeout=5000)
    assert page.evaluate("omsCharts.positions.data[0].length") > 0
    stack.shot(page, "session")
    page.goto(stack.web.base + f"sessions/0?at={last}")
    page.locator("#sec-orders a").first.click()
    page.wait_for_selector("table.timeline")
    kinds = page.locator("table.timeline td code").all_inner_texts()
    assert kinds[0].startswith("order_requested") and any(k.startswith("execution") for k in kinds)
    page.close()


ROWS = (  # per orders table: its rows as "id status", in order
    "[...document.querySelectorAll('#sec-orders table.orders')]"
    ".map(t => [...t.tBodies[0].rows].map(r => r.id + ' ' + r.dataset.status).join())"
)


def test_rows_updated_live_match_a_fresh_page(stack: Stack) -> None:
    """The live page changes single order rows; after a burst it must equal a page rendered afresh."""
    live = stack.page()
    following(live)
    placed = [stack.client.place("AAPL", "SELL" if i % 2 else "BUY", 1) for i in range(6)]
    placed.append(stack.client.place("MSFT", "BUY", 1, limit_price=1.0))
    stack.client.cancel(placed[-1])
    stack.client.wait_for_order(placed[-1], "cancelled", timeout=10)
    for coid in placed[:-1]:
        stack.client.wait_for_order(coid, "filled", timeout=10)
    fresh = stack.page()
    following(fresh)
    seq = fresh.evaluate("document.body.dataset.seq")
    live.wait_for_function(f"document.body.dataset.seq === '{seq}'", timeout=5000)
    assert live.evaluate(ROWS) == fresh.evaluate(ROWS)
    assert all(coid in fresh.evaluate(ROWS)[1] for coid in placed)
    live.close()
    fresh.close()


def test_the_kill_switch_from_the_page(stack: Stack) -> None:
    page = stack.page()
    following(page)
    page.locator("button", has_text="engage kill switch").click()
    page.wait_for_selector("#kill-state.bad", timeout=5000)
    assert "ENGAGED" in page.locator("#kill-state").inner_text()
    page.locator("button", has_text="release kill switch").click()
    page.wait_for_function("!document.querySelector('#kill-state').classList.contains('bad')", timeout=5000)
    wait_until(lambda: not stack.client.state().kill_switch, what="the kill switch to be released")
    page.close()


def test_a_recorded_view_beside_a_live_service_never_acts(stack: Stack) -> None:
    """`oms web --session DATA --allow-commands` beside the running service: the recorded page shows
    no command at all and holds no token, though its working order is working on the live service."""
    working = stack.client.place("MSFT", "BUY", 1, limit_price=1.0)
    stack.client.wait_for_order(working, "submitted", timeout=10)
    data = str(stack.service.data_dir)
    recorded = WebProcess(stack.shots, "--data-dir", data, "--allow-commands", "--session", data, name="rec")
    recorded.start()
    try:
        page = stack.browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page.goto(recorded.url)  # takes the token cookie, as a person following the printed address does
        page.goto(recorded.base + "sessions/0")
        page.wait_for_selector(f'{row(working)}[data-status="submitted"]', timeout=10_000)
        assert page.locator("button").count() == 0
        assert page.locator("[hx-post]").count() == 0
        assert page.evaluate("document.body.getAttribute('hx-headers')") is None  # no token on the page
        stack.shot(page, "recorded-view")
        page.close()
    finally:
        recorded.stop()
    assert stack.client.order(working).status == "submitted"  # type: ignore[union-attr]
    stack.client.cancel(working)


def test_a_live_command_asks_names_its_target_and_shows_the_answer(stack: Stack) -> None:
    page = stack.browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page.goto(stack.web.url)
    following(page)
    working = stack.client.place("MSFT", "BUY", 1, limit_price=1.0)
    order = stack.client.wait_for_order(working, "submitted", timeout=10)
    page.wait_for_selector(f'{row(working)}[data-status="submitted"]', timeout=5000)
    router = _router(stack)
    asked: list[str] = []

    def dismiss(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.locator(f"{row(working)} button", has_text="cancel").click()
    wait_until(lambda: bool(asked), what="the confirmation")
    assert working in asked[0] and order.account in asked[0] and router in asked[0]
    assert stack.client.order(working).status == "submitted"  # type: ignore[union-attr]  # declined

    button = page.locator(f"{row(working)} button", has_text="cancel")
    stale = button.get_attribute("hx-post").replace(order.account, "DU-OTHER")  # type: ignore[union-attr]
    button.evaluate("(b, url) => { b.setAttribute('hx-post', url); htmx.process(b); }", stale)
    page.once("dialog", lambda dialog: dialog.accept())
    button.click()
    page.wait_for_selector("#command-result.bad", timeout=5000)
    denied = page.locator("#command-result").inner_text()
    assert "denied" in denied and "wrong_target" in denied and "DU-OTHER" in denied
    assert stack.client.order(working).status == "submitted"  # type: ignore[union-attr]

    page.reload()
    following(page)  # the first update redraws the tables: click the button it drew
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"{row(working)} button", has_text="cancel").click()
    page.wait_for_selector("#command-result.ok", timeout=5000)
    answer = page.locator("#command-result").inner_text()
    assert "accepted" in answer and router in answer and order.account in answer
    page.wait_for_selector(f'{row(working)}[data-status="cancelled"]', timeout=5000)
    stack.shot(page, "command-answer")
    page.close()


def _router(stack: Stack) -> str:
    router: str = json.loads((stack.service.data_dir / "endpoints.json").read_text())["router"]
    return router


def test_a_rejected_order_leaves_no_position_and_derivatives_are_named_as_ib_names_them(stack: Stack) -> None:
    rejected = stack.client.place("AMZN", "BUY", 1, limit_price=1.001)  # off the tick: IB refuses it
    stack.client.wait_for_order(rejected, "rejected", timeout=10)
    option = ContractSpec(symbol="AAPL", sec_type="OPT", last_trade_date="20261218", strike=200.0, right="C",
                          multiplier="100")  # fmt: skip
    future = ContractSpec(symbol="ES", sec_type="FUT", exchange="CME", last_trade_date="20261218")
    for contract in (option, future):
        stack.client.wait_for_order(stack.client.place(contract, "BUY", 1), "filled", timeout=10)
    page = stack.browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page.goto(stack.web.url)
    page.wait_for_function("omsCharts.positions && omsCharts.positions.series.length > 1", timeout=5000)
    shown = page.locator("#sec-positions").inner_text()
    assert "AMZN" not in shown  # its lifecycle (pending, then closed as rejected) is not listed
    assert "AAPL 20261218 200 C" in shown and "ESZ6" in shown
    legend = page.evaluate("omsCharts.positions.series.slice(1).map(s => s.label)")
    assert not any("AMZN" in label for label in legend)
    assert any(label.endswith("AAPL 20261218 200 C") for label in legend) and any("ESZ6" in x for x in legend)
    assert "AAPL 20261218 200 C" in page.locator("#sec-fills").inner_text()
    stack.shot(page, "positions-named")
    page.locator("form.filters input[name=all]").check()  # "all positions": the rejected lifecycle too
    page.wait_for_url("**all=1**")
    assert "closed (rejected)" in page.locator("#sec-positions").inner_text()
    page.close()


def test_the_live_page_fits_1280_pixels_and_keeps_each_instrument_s_colour(stack: Stack) -> None:
    page = stack.browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page.goto(stack.web.url)
    page.wait_for_function("omsCharts.positions && omsCharts.positions.series.length > 1", timeout=5000)
    colours = (
        "Object.fromEntries(omsCharts.positions.series.slice(1).map(s => [s.label, s._stroke || s.stroke]))"
    )
    before = page.evaluate(colours)
    stack.client.wait_for_order(
        stack.client.place("NVDA", "BUY", 1), "filled", timeout=10
    )  # a new instrument
    page.wait_for_function(
        "omsCharts.positions.series.some(s => (s.label || '').endsWith('NVDA'))", timeout=5000
    )
    after = page.evaluate(colours)
    assert before and before.keys() <= after.keys(), (before, after)  # no instrument's series went missing
    assert all(after[label] == colour for label, colour in before.items())
    fresh = stack.browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    fresh.goto(stack.web.url)
    fresh.wait_for_function("omsCharts.positions && omsCharts.positions.series.length > 1", timeout=5000)
    assert fresh.evaluate(colours) == after  # the same colours on another page
    width = page.evaluate("document.documentElement.scrollWidth")
    shot = stack.shot(page, "live-1280")
    assert width <= 1280, f"the page is {width}px wide at a 1280px window ({shot})"
    page.close()
    fresh.close()


def test_the_page_works_under_its_content_security_policy(stack: Stack) -> None:
    """Without bypass_csp: nothing the page needs is blocked, and the live stream runs."""
    page = stack.browser.new_page(viewport={"width": 1280, "height": 900})
    blocked: list[str] = []
    page.on(
        "console", lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None
    )
    page.goto(stack.web.url)
    wait_until(lambda: page.evaluate("window.omsUpdates.length > 0"), what="the live stream under the CSP")
    assert page.evaluate("omsCharts.positions !== null")
    assert blocked == []
    page.close()


def test_the_sessions_list_says_what_each_session_is(stack: Stack) -> None:
    page = stack.page("sessions")
    cells = page.locator("table.sessions tbody tr").first.locator("td").all_inner_texts()
    name, date, span, orders, fills, size = cells
    assert name == str(stack.service.data_dir)
    assert len(date) == 10 and date[:2] == "20" and span.endswith("UTC") and " - " in span
    assert int(orders) > 0 and int(fills) > 0 and size.split()[1] in ("kB", "MB", "GB")
    page.close()


def test_one_clock_in_the_service_s_zone_labelled_and_the_simulator_s_clock_named(stack: Stack) -> None:
    status = stack.client.status()
    assert status.simulator and status.time_zone
    coid = stack.client.place("AAPL", "BUY", 1)
    filled = stack.client.wait_for_order(coid, "filled", timeout=10)
    page = stack.page()
    following(page)
    clock = page.locator("#clock")
    assert clock.count() == 1 and clock.inner_text().endswith(status.time_zone)
    assert page.locator("#ib-simulator").inner_text() == "IB simulator"
    zone = ZoneInfo(status.time_zone)
    fill = page.locator("#sec-fills tbody tr").first.locator("td").first
    shown = datetime.strptime(fill.inner_text(), "%H:%M:%S").time()
    at = datetime.fromtimestamp(
        filled.updated_ts / 1e9, zone
    )  # the service's time (embedded: the simulator's)
    gap = abs((at - at.replace(hour=shown.hour, minute=shown.minute, second=shown.second)).total_seconds())
    assert gap < 120 or gap > 86_280  # the service's time of the fill, in the service's zone
    assert "the simulator's clock" in (fill.get_attribute("title") or "")
    page.close()
