"""CURVE: beyond loopback the service needs keys; unknown client keys get nothing; known ones work."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import zmq.auth

from oms.service.config import ConfigError, CurveConfig
from oms.service.curve import check_binds, is_loopback, write_keypair
from tests.test_service_support import Wire, running


def test_is_loopback() -> None:
    assert (
        is_loopback("tcp://127.0.0.1:5555")
        and is_loopback("tcp://localhost:1")
        and is_loopback("tcp://[::1]:5")
    )
    assert is_loopback("ipc:///tmp/oms.sock") and is_loopback("inproc://x")
    assert not is_loopback("tcp://0.0.0.0:5555") and not is_loopback("tcp://*:5555")
    assert not is_loopback("tcp://10.1.2.3:5555") and not is_loopback("tcp://eth0:5555")


def test_non_loopback_bind_without_keys_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CURVE"):
        check_binds(["tcp://0.0.0.0:0"], CurveConfig())
    with pytest.raises(ConfigError, match="without CURVE"), running(tmp_path, router="tcp://0.0.0.0:0"):
        pass
    assert not (tmp_path / "journal").exists()  # refused before touching anything


def test_keys_command_writes_private_secret(tmp_path: Path) -> None:
    public, secret = write_keypair(tmp_path / "keys", "server")
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    pub_key, sec_key = zmq.auth.load_certificate(str(secret))
    assert sec_key is not None and zmq.auth.load_certificate(str(public)) == (pub_key, None)
    with pytest.raises(FileExistsError):
        write_keypair(tmp_path / "keys", "server")


def test_curve_known_client_works_unknown_client_gets_nothing(tmp_path: Path) -> None:
    _, server_secret = write_keypair(tmp_path / "keys", "server")
    allowed_dir = tmp_path / "clients"
    _, good_secret = write_keypair(allowed_dir, "good")
    good_pub, good_sec = zmq.auth.load_certificate(str(good_secret))
    good_secret.rename(tmp_path / "good.key_secret")  # the allow-list folder holds public keys only
    _, stranger_secret = write_keypair(tmp_path / "strangers", "bad")
    curve = {"server_secret_key": str(server_secret), "authorized_clients": str(allowed_dir)}
    with running(tmp_path / "data", router="tcp://0.0.0.0:0", curve=curve) as service:
        port = service.endpoints.router.rsplit(":", 1)[1]
        server_key = service.endpoints.curve_server_key
        assert server_key
        good = Wire(  # also subscribes to the (CURVE) PUB socket and waits for a heartbeat
            f"tcp://127.0.0.1:{port}",
            service.endpoints.pub,
            curve_serverkey=server_key.encode(),
            curve_publickey=good_pub,
            curve_secretkey=good_sec,
        )
        assert good.ok({"op": "ping"})["ready"] is True

        bad_pub, bad_sec = zmq.auth.load_certificate(str(stranger_secret))
        bad = Wire(
            f"tcp://127.0.0.1:{port}",
            curve_serverkey=server_key.encode(),
            curve_publickey=bad_pub,
            curve_secretkey=bad_sec,
        )
        bad.dealer.send(b"\x81\xa2op\xa4ping")
        assert bad.recv(timeout=1.0) is None  # ZAP refused the handshake: no reply

        plain = Wire(f"tcp://127.0.0.1:{port}")  # no CURVE at all
        plain.dealer.send(b"\x81\xa2op\xa4ping")
        assert plain.recv(timeout=0.5) is None
        for wire in (good, bad, plain):
            wire.close()


def test_oms_run_refuses_exposed_bind_without_keys(tmp_path: Path) -> None:
    import subprocess
    import sys

    args = ["--data-dir", str(tmp_path / "d"), "--pub", "tcp://0.0.0.0:0", "--router", "tcp://127.0.0.1:0"]
    proc = subprocess.run(
        [sys.executable, "-m", "oms", "run", *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "tcp://0.0.0.0:0 without CURVE" in proc.stderr and "oms keys" in proc.stderr
    assert not (tmp_path / "d").exists()  # refused before anything started
