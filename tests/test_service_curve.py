"""CURVE: beyond loopback the service needs keys; unknown client keys get nothing; known ones work."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import zmq.auth

from oms.service.config import ConfigError, CurveConfig
from oms.service.curve import check_binds, is_loopback, write_keypair
from tests.test_service_support import Wire, place, running, state_of


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


def _client(directory: Path, name: str) -> dict[str, bytes]:
    _, secret = write_keypair(directory, name)
    public, private = zmq.auth.load_certificate(str(secret))
    secret.unlink()  # the allow-list folder holds public keys only
    assert private is not None
    return {"curve_publickey": public, "curve_secretkey": private}


def test_each_client_key_acts_only_for_its_strategies_and_only_admin_keys_act_for_all(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    _, server_secret = write_keypair(tmp_path / "keys", "server")
    allowed = tmp_path / "clients"
    keys = {name: _client(allowed, name) for name in ("mom", "ops", "reader")}
    curve = {
        "server_secret_key": str(server_secret),
        "authorized_clients": str(allowed),
        "clients": {"mom": {"strategies": ["mom"]}, "ops": {"admin": True}},
    }
    caplog.set_level(logging.WARNING, logger="oms.service.handlers")
    with running(tmp_path / "data", router="tcp://0.0.0.0:0", curve=curve) as service:
        router = f"tcp://127.0.0.1:{service.endpoints.router.rsplit(':', 1)[1]}"
        server_key = {"curve_serverkey": (service.endpoints.curve_server_key or "").encode()}
        mom, ops, reader = (Wire(router, None, **server_key, **keys[n]) for n in ("mom", "ops", "reader"))

        def refused(wire: Wire, message: dict[str, object], why: str) -> None:
            reply = wire.request(message)
            assert reply["error"]["code"] == "not_authorized", reply
            assert why in reply["error"]["message"]

        assert mom.ok(place(strategy_id="mom", order_type="LMT", limit_price=1.0, client_order_id="m-1"))
        refused(mom, place(strategy_id="other", client_order_id="x-1"), "may not act for strategy 'other'")
        assert ops.ok(place(strategy_id="other", order_type="LMT", limit_price=1.0, client_order_id="o-1"))
        refused(mom, {"op": "cancel", "client_order_id": "o-1"}, "strategy 'other' (its strategies: mom)")
        refused(mom, {"op": "modify", "client_order_id": "o-1", "quantity": 1}, "strategy 'other'")
        refused(mom, {"op": "kill_switch", "engaged": True}, "admin keys only")
        refused(mom, {"op": "cancel_all"}, "admin keys only")
        assert mom.ok({"op": "cancel_all", "strategy_id": "mom"})["client_order_ids"] == ["m-1"]
        refused(reader, place(strategy_id="mom", client_order_id="r-1"), "none (queries only)")
        assert {o["client_order_id"] for o in reader.ok({"op": "orders"})["orders"]} == {"m-1", "o-1"}
        assert ops.ok({"op": "cancel", "client_order_id": "o-1"})
        assert ops.ok({"op": "kill_switch", "engaged": True})["engaged"] is True
        assert "x-1" not in state_of(service).orders and "r-1" not in state_of(service).orders
        for wire in (mom, ops, reader):
            wire.close()
    denials = [r.getMessage() for r in caplog.records if "not authorized" in r.getMessage()]
    assert len(denials) == 6 and any("client key 'reader'" in d for d in denials)


def test_a_grant_for_a_key_that_is_not_allowed_is_a_configuration_error(tmp_path: Path) -> None:
    _, server_secret = write_keypair(tmp_path / "keys", "server")
    _client(tmp_path / "clients", "mom")
    curve = {
        "server_secret_key": str(server_secret),
        "authorized_clients": str(tmp_path / "clients"),
        "clients": {"momm": {"strategies": ["mom"]}},
    }
    with (
        pytest.raises(ConfigError, match=r"names momm, but .* holds no such \.key file"),
        running(tmp_path / "data", router="tcp://0.0.0.0:0", curve=curve),
    ):
        pass
    assert not (tmp_path / "data").exists()
