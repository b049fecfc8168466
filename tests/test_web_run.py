"""`oms run --web`: the service prints the web app's address, the web app follows it, and both stop
together."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.error
from pathlib import Path

from tests.client_helpers import REPO
from tests.waiting import wait_until
from tests.web_helpers import http


def test_oms_run_with_web_serves_the_blotter_beside_the_service(tmp_path: Path) -> None:
    out = tmp_path / "run.out"
    data = tmp_path / "data"
    args = [
        sys.executable, "-m", "oms", "run", "--data-dir", str(data), "--pub", "tcp://127.0.0.1:0",
        "--router", "tcp://127.0.0.1:0", "--web", "127.0.0.1:0",
    ]  # fmt: skip
    with open(out, "wb") as stdout:
        proc = subprocess.Popen(args, cwd=REPO, stdout=stdout, stderr=subprocess.STDOUT)
    try:
        lines: list[str] = []

        def printed() -> bool:
            assert proc.poll() is None, out.read_text()
            lines[:] = [line for line in out.read_text().splitlines() if line.startswith("web ")]
            return bool(lines)

        wait_until(printed, timeout=30, what="the web app's address")
        base = lines[0].split()[1]
        healthy: list[dict[str, object]] = []

        def ready() -> bool:
            status, body = http("GET", base + "healthz")
            healthy[:] = [body]
            return status == 200

        wait_until(ready, timeout=20, interval=0.05, what="/healthz to report the service ready")
        assert healthy[0]["followed"] is True and healthy[0]["connection"] == "connected"
        status, page = http("GET", base)
        assert status == 200 and "working orders" in page["text"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0

    def web_gone() -> bool:
        try:
            http("GET", base + "healthz")
        except (urllib.error.URLError, ConnectionError):
            return True
        return False

    wait_until(web_gone, timeout=10, what="the web app to stop with the service")
