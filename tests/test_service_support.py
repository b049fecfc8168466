"""Helpers for the service tests: a config on tmp_path with ephemeral ports, and a raw pyzmq client
(DEALER for requests, SUB for the PUB stream) speaking the wire protocol with no project code."""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import zmq

from adapters.tws_sim.config import SimConfig
from oms.cli.run import ServiceThread
from oms.service.config import Config, load_config

EPHEMERAL = {"pub": "tcp://127.0.0.1:0", "router": "tcp://127.0.0.1:0"}


def make_config(data_dir: Path, **overrides: Any) -> Config:
    return load_config(env={}, overrides={"data_dir": str(data_dir), **EPHEMERAL, **overrides})


@contextlib.contextmanager
def running(data_dir: Path, sim: SimConfig | None = None, **overrides: Any) -> Iterator[ServiceThread]:
    with ServiceThread(make_config(data_dir, **overrides), sim or SimConfig()) as service:
        yield service


class Wire:
    """A raw client: `request` sends one msgpack map and returns the decoded reply; `collect` keeps every
    PUB message so `wait_pub` can look for one."""

    def __init__(self, router: str, pub: str | None = None, **socket_options: Any) -> None:
        self.ctx = zmq.Context()
        _OPEN.add(self)
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        for name, value in socket_options.items():
            setattr(self.dealer, name, value)
        self.dealer.connect(router)
        self.sub: zmq.Socket[bytes] | None = None
        self.seen: list[tuple[str, dict[str, Any]]] = []
        if pub is not None:
            self.sub = self.ctx.socket(zmq.SUB)
            self.sub.setsockopt(zmq.LINGER, 0)
            for name, value in socket_options.items():
                setattr(self.sub, name, value)
            self.sub.subscribe(b"")
            self.sub.connect(pub)
            self.wait_pub(lambda topic, _m: topic == "hb", what="first heartbeat")  # subscription is live

    def send_frames(self, frames: list[bytes]) -> None:
        self.dealer.send_multipart(frames)

    def recv(self, timeout: float = 10.0) -> dict[str, Any] | None:
        if not self.dealer.poll(int(timeout * 1000)):
            return None
        reply: dict[str, Any] = msgspec.msgpack.decode(self.dealer.recv())
        return reply

    def request(self, message: Any, timeout: float = 10.0) -> dict[str, Any]:
        payload = message if isinstance(message, bytes) else msgspec.msgpack.encode(message)
        self.dealer.send(payload)
        reply = self.recv(timeout)
        assert reply is not None, f"no reply to {message!r:.200}"
        return reply

    def ok(self, message: dict[str, Any]) -> dict[str, Any]:
        reply = self.request(message)
        assert reply["ok"], reply
        result: dict[str, Any] = reply["result"]
        return result

    def wait_pub(
        self, match: Callable[[str, dict[str, Any]], object], timeout: float = 10.0, what: str = ""
    ) -> dict[str, Any]:
        """The first message (already seen or arriving within `timeout`) for which `match` is true."""
        assert self.sub is not None
        for topic, message in self.seen:
            if match(topic, message):
                return message
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self.sub.poll(int(left * 1000) + 1):
                raw_topic, payload = self.sub.recv_multipart()
                topic, message = raw_topic.decode(), msgspec.msgpack.decode(payload)
                self.seen.append((topic, message))
                if match(topic, message):
                    return message
        raise AssertionError(f"timed out after {timeout}s waiting for {what or match} on PUB")

    def wait_order(self, client_order_id: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
        def match(topic: str, m: dict[str, Any]) -> bool:
            data = m.get("data", {})
            return (
                topic.startswith("order.")
                and data.get("client_order_id") == client_order_id
                and data.get("status", "pending") == status
            )

        return self.wait_pub(match, timeout, f"order {client_order_id} {status}")

    def close(self) -> None:
        _OPEN.discard(self)
        self.ctx.destroy(linger=0)


_OPEN: weakref.WeakSet[Wire] = weakref.WeakSet()


def close_open_wires() -> None:
    """Close the wires a test left open (it failed before its own `close`): a zmq context left to the
    garbage collector blocks in `term` at the interpreter's exit, and the whole run never ends."""
    for wire in list(_OPEN):
        wire.close()


def place(symbol: str = "AAPL", side: str = "BUY", quantity: Any = 10, **fields: Any) -> dict[str, Any]:
    return {"op": "place", "contract": {"symbol": symbol}, "side": side, "quantity": quantity, **fields}


def last_seq(service: ServiceThread) -> int:
    return service.call(lambda: service.service.pipeline.journal.last_seq)  # type: ignore[union-attr]


def state_of(service: ServiceThread) -> Any:
    from oms.state.fold import copy_state

    def flushed_copy() -> Any:
        pipeline = service.service.pipeline  # type: ignore[union-attr]
        pipeline.drain()  # what the copy holds is readable from the journal too
        return copy_state(pipeline.state)

    return service.call(flushed_copy)


def journal_fold(path: Any, upto: int) -> Any:
    """The fold of the journal up to `upto` (the simulator keeps reporting account values meanwhile)."""
    from events.reader import JournalReader
    from oms.state.fold import fold

    return fold(env for env in JournalReader(path).read() if env.seq <= upto)
