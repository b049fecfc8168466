"""A real service for the client tests: `python -m oms run` in a subprocess (embedded simulator, free
ports, its own data dir), plus raw-socket probes that do not go through the client under test."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import zmq

from events.reader import JournalReader
from events.schema import OrderRequested
from oms.client import AsyncClient, CurveKeys
from oms.protocol import ENDPOINTS_FILE, Endpoints
from oms.state.codec import decode_state
from oms.state.fold import fold
from oms.state.model import State
from tests.waiting import async_wait_until, wait_until

REPO = Path(__file__).resolve().parents[1]


class ServiceProcess:
    def __init__(self, data_dir: Path, *extra: str, curve: CurveKeys | None = None) -> None:
        self.data_dir = data_dir
        self.curve = curve  # the keys the readiness probe uses against a CURVE service
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = data_dir.parent / f"{data_dir.name}-service.log"
        self.args = [
            sys.executable, "-m", "oms", "run", "--data-dir", str(data_dir),
            "--pub", "tcp://127.0.0.1:0", "--router", "tcp://127.0.0.1:0", *extra,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Endpoints:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_until(self._ready, timeout=30, what="the service to be ready")
        except BaseException as exc:
            self.kill()
            tail = "".join(self.log.read_text(errors="replace").splitlines(keepends=True)[-30:])
            raise AssertionError(f"{exc}; the end of its log ({self.log}):\n{tail}") from exc
        return self.endpoints

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the service exited with {self.proc.returncode}: {self.log.read_text()}")
        path = self.data_dir / ENDPOINTS_FILE
        if not path.exists():
            return False
        endpoints = msgspec.json.decode(path.read_bytes(), type=Endpoints)
        if endpoints.pid != self.proc.pid:
            return False  # a stale file from a killed predecessor
        reply = request(endpoints.router, {"op": "ping"}, timeout=1.0, curve=self.curve)
        return reply is not None and reply["result"]["ready"]

    @property
    def endpoints(self) -> Endpoints:
        return msgspec.json.decode((self.data_dir / ENDPOINTS_FILE).read_bytes(), type=Endpoints)

    def requested(self, client_order_id: str) -> int:
        """How many times the journal logged an order request with this id (the truth, not a view)."""
        events = JournalReader(self.data_dir / "journal").read()
        return sum(
            1
            for env in events
            if isinstance(env.event, OrderRequested) and env.event.client_order_id == client_order_id
        )

    def kill(self) -> None:
        """SIGKILL: no goodbye, no endpoints file removal."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@contextlib.contextmanager
def running_service(data_dir: Path, *extra: str, curve: CurveKeys | None = None) -> Iterator[ServiceProcess]:
    service = ServiceProcess(data_dir, *extra, curve=curve)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def request(
    router: str, payload: dict[str, Any], timeout: float = 5.0, curve: CurveKeys | None = None
) -> dict[str, Any] | None:
    """One request over a fresh raw DEALER; the decoded reply, or None after `timeout`."""
    dealer: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    with dealer:
        dealer.linger = 0
        if curve is not None:
            curve.apply(dealer)
        dealer.connect(router)
        dealer.send(msgspec.msgpack.encode(payload))
        if not dealer.poll(int(timeout * 1000)):
            return None
        reply: dict[str, Any] = msgspec.msgpack.decode(dealer.recv())
        return reply


class _Snapshot(msgspec.Struct):
    seq: int
    state: msgspec.Raw


class _SnapshotReply(msgspec.Struct):
    result: _Snapshot


def service_snapshot(router: str) -> State:
    """The service's own state, straight off the ROUTER."""
    dealer: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    with dealer:
        dealer.linger = 0
        dealer.connect(router)
        dealer.send(msgspec.msgpack.encode({"op": "snapshot", "id": 1}))
        assert dealer.poll(5000), "no snapshot reply"
        reply = msgspec.msgpack.decode(dealer.recv(), type=_SnapshotReply)
    state = decode_state(bytes(reply.result.state))
    assert state.seq == reply.result.seq
    return state


def journal_state(data_dir: Path, to_seq: int) -> State:
    """The fold of the journal on disk up to `to_seq`: the truth, independent of any socket."""
    return fold(JournalReader(data_dir / "journal").read(1, to_seq))


async def settled_equal(client: AsyncClient, router: str) -> int:
    """Wait until the client and the service are at the same seq and return it, asserting equal states."""
    for _ in range(20):
        expected = service_snapshot(router)
        seq = expected.seq
        await async_wait_until(lambda: client.seq >= seq, what="the client to reach the service")  # noqa: B023
        if client.seq == expected.seq:
            assert client.state == expected
            return expected.seq
    raise AssertionError("the service kept moving")
