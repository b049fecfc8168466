"""For the web tests: `oms web` in a subprocess (its printed address read back), Chromium found on the
PATH for Playwright, and plain-urllib HTTP calls (no client library between the test and the server)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.client_helpers import REPO
from tests.waiting import wait_until


def chromium_path() -> str | None:
    """Debian's Chromium (apt-get install -y chromium), or another Chrome on the PATH."""
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    return next((path for path in map(shutil.which, names) if path), None)


class WebProcess:
    def __init__(self, log_dir: Path, *args: str, name: str = "web") -> None:
        self.out = log_dir / f"{name}.out"
        self.err = log_dir / f"{name}.err"
        self.args = [sys.executable, "-m", "oms", "web", "--listen", "127.0.0.1:0", *args]
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""  # as printed, with ?token=... when commands are allowed

    def start(self) -> WebProcess:
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=out, stderr=err)
        wait_until(self._printed, timeout=30, what=f"oms web to print its address ({self.err})")
        return self

    def _printed(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"oms web exited with {self.proc.returncode}: {self.err.read_text()}")
        for line in self.out.read_text().splitlines():
            if line.startswith("web "):
                self.url = line.split()[1]
                return True
        return False

    @property
    def base(self) -> str:
        return self.url.split("?")[0]

    @property
    def token(self) -> str:
        return self.url.partition("?token=")[2]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """(status, decoded JSON body, or {"text": body} for a page) of one request; error statuses are
    returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, _decoded(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _decoded(exc.read())


def _decoded(body: bytes) -> dict[str, Any]:
    try:
        decoded: dict[str, Any] = json.loads(body or b"{}")
    except ValueError:
        return {"text": body.decode()}
    return decoded
