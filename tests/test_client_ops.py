"""Operating the service from the command line: `oms status`, a killed service noticed at once, and
arguments refused before anything waits."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest

from oms.cli import main
from tests.client_helpers import ServiceProcess
from tests.test_service_support import Wire

Capture = pytest.CaptureFixture[str]


def test_status_while_running_then_a_killed_service_is_reported_at_once(
    tmp_path: Path, capsys: Capture
) -> None:
    service = ServiceProcess(tmp_path / "data")
    endpoints = service.start()
    data = ["--data-dir", str(service.data_dir)]
    try:
        subscriber = Wire(endpoints.router, endpoints.pub)  # waits for a heartbeat: connected
        assert main(["status", *data]) == 0
        out = capsys.readouterr().out
        assert f"running, pid {endpoints.pid}" in out and "ready       yes" in out
        assert f"ROUTER      {endpoints.router}" in out and f"PUB         {endpoints.pub}" in out
        assert "(connected)" in out and "durable through" in out and "reconciled  seq " in out
        assert main(["status", "--json", *data]) == 0
        import json

        status = json.loads(capsys.readouterr().out)
        assert status["subscribers"] >= 1 and status["connection"] == "connected"
        assert status["durable_seq"] <= status["journal_seq"] and status["reconciled_seq"] > 0
        subscriber.close()
    finally:
        service.kill()  # kill -9: endpoints.json stays behind, naming a dead pid
    for command in (["status"], ["orders"], ["order", "buy", "AAPL", "1"], ["tail"]):
        started = time.monotonic()
        assert main([*command, *data, "--timeout", "30"]) == 2
        assert time.monotonic() - started < 10  # said at once, not after the 30 s timeout
        err = capsys.readouterr().err
        assert f"names pid {endpoints.pid}, which is gone" in err and "oms run --data-dir" in err
        assert "no reply" not in err


def test_tail_refuses_an_unknown_kind_listing_the_kinds(capsys: Capture) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["tail", "--kind", "bogus", "--data-dir", "/nonexistent"])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "no event kind 'bogus'" in err and "execution" in err and "order_status" in err


def test_status_shows_the_mirrors_lag_and_a_stopped_mirror() -> None:
    from oms.cli.status import mirror_lag, render
    from oms.client.jetstream_wire import MirrorStatus, ReplicaStatus
    from oms.protocol import StatusResult

    now = 10_000_000_000_000
    mirror = MirrorStatus(
        stream="OMS", url="nats://127.0.0.1:4222", journal_seq=95, mirrored_seq=90, lag=5, snapshot_seq=0,
        connected=True, ts_ns=now - 1_000_000_000,
    )  # fmt: skip
    assert mirror_lag(120, mirror, now) == {
        "stream": "OMS", "mirrored_seq": 90, "lag": 30, "running": True, "error": "",
        "server": "", "cluster": "", "leader": "", "replicas": [],
    }  # fmt: skip
    stale = mirror_lag(120, mirror, now + 60_000_000_000)
    assert stale is not None and stale["running"] is False
    failed = msgspec.structs.replace(mirror, error="the stream holds different bytes at seq 90")
    status = msgspec.convert(
        {"ready": True, "version": "t", "pid": 1, "ib": "127.0.0.1:1", "connection": "connected",
         "journal_seq": 120, "durable_seq": 120, "reconciled_seq": 0, "reconciled_ts": 0,
         "reconciliation_ok": True, "subscribers": 0, "open_orders": 0, "kill_switch": False,
         "started_ts": now},
        StatusResult,
    )  # fmt: skip
    text = render(status, "tcp://r", "tcp://p", failed)
    assert "mirror      stream OMS: lag 30 events, seq 90 (NOT RUNNING: the stream holds different" in text
    assert mirror_lag(120, None) is None and "mirror" not in render(status, "tcp://r", "tcp://p")
    replicas = (ReplicaStatus(name="n2", current=True), ReplicaStatus(name="n3", current=False, lag=12))
    clustered = msgspec.structs.replace(
        mirror, server="h1:4222", cluster="oms", leader="n1", replicas=replicas
    )
    line = "cluster oms: leader n1, replicas n2 (current), n3 (NOT CURRENT, 12 behind); connected to h1:4222"
    assert line in render(status, "tcp://r", "tcp://p", clustered)
    shown = mirror_lag(120, clustered)
    assert shown is not None
    assert shown["replicas"][1] == {"name": "n3", "current": False, "offline": False, "lag": 12}
