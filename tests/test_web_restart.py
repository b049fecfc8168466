"""The blotter across a service restart, in a real browser: `oms run --web` (embedded simulator, the
blotter as its child process) stops and starts again; the open page follows the new web app with its
charts the same size, each instrument in the same colour, and the session's completed orders."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oms.client import Client
from tests.client_helpers import ServiceProcess
from tests.waiting import wait_until
from tests.web_helpers import chromium_path, http

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install .[web])"
)
CHROMIUM = chromium_path()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on the PATH: `apt-get install -y chromium`"
)

BOXES = "['#chart-pnl', '#chart-positions'].map(s => { const r = document.querySelector(s).getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; })"  # noqa: E501
COLOURS = "Object.fromEntries(omsCharts.positions.series.slice(1).map(s => [s.label, s._stroke || s.stroke]))"


def answers(base: str) -> bool:
    try:
        return http("GET", base + "healthz")[0] in (200, 503)
    except OSError:
        return False


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def test_after_a_restart_the_charts_keep_their_size_and_the_session_s_orders_stay(
    tmp_path: Path, browser: Any
) -> None:
    data = tmp_path / "data"
    with socket.socket() as probe:  # a free port for the blotter, the same across the restart
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    service = ServiceProcess(data, "--sim-tick-ms", "200", "--web", f"127.0.0.1:{port}")
    service.start()
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_until(lambda: answers(base), timeout=30, what="the blotter beside the service")
        with Client.connect(data, strategy_id="mom") as client:
            placed = [client.place(symbol, "BUY", 1) for symbol in ("AAPL", "NVDA")]
            for coid in placed:
                client.wait_for_order(coid, "filled", timeout=10)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page.goto(base)
        page.wait_for_function("omsCharts.positions && omsCharts.positions.series.length > 2", timeout=10_000)
        boxes, colours = page.evaluate(BOXES), page.evaluate(COLOURS)
        page.screenshot(path=str(tmp_path / "before-restart.png"), full_page=True)

        service.stop()  # the blotter stops with it; the page's event stream retries until it is back
        service.start()
        wait_until(lambda: answers(base), timeout=30, what="the blotter back beside the service")
        with Client.connect(data, strategy_id="mom") as client:
            after = client.place("MSFT", "BUY", 1)  # its position sorts between the other two
            client.wait_for_order(after, "filled", timeout=10)
        page.wait_for_function(
            "omsCharts.positions && omsCharts.positions.series.some(s => (s.label || '').endsWith('MSFT'))",
            timeout=30_000,
        )
        page.screenshot(path=str(tmp_path / "after-restart.png"), full_page=True)
        print(f"screenshots: {tmp_path}")
        assert page.evaluate(BOXES) == boxes
        now = page.evaluate(COLOURS)
        assert all(now[label] == colour for label, colour in colours.items())
        done = page.locator("#sec-orders table.orders.done").inner_text()
        assert all(coid in done for coid in [*placed, after])
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        wait_until(lambda: page.evaluate(BOXES) == boxes, timeout=3, what="the charts to stay the same size")
        page.close()
    finally:
        service.stop()
