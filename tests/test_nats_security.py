"""NATS credentials and TLS from the configuration, and secrets that never show: not in logs, not in the
status file, not in error messages, not in a repr."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.nats.connect import mirror_config, mirror_table
from oms.client.jetstream_wire import NatsConfigError, read_status, redact_url, settings_from, tls_context
from tests.nats_helpers import (
    REPO,
    journal_payloads,
    mirror_process,
    nats_server,
    stream_payloads,
    write_journal,
)
from tests.waiting import wait_until

SECRET = "pw-7Hq2-never-shown"
WRONG = "wrong-9Zx4-never-shown"
AUTH = f'authorization {{ user: oms, password: "{SECRET}" }}\n'


def test_settings_never_show_a_secret() -> None:
    settings = settings_from(f"nats://oms:{SECRET}@127.0.0.1:4222/S1", {"token": SECRET})
    assert (settings.user, settings.password, settings.stream) == ("oms", SECRET, "S1")
    assert settings.url == "nats://127.0.0.1:4222"  # the URL kept has no userinfo
    config = mirror_config({"user": "oms"}, {"OMS_NATS_PASSWORD": SECRET}, "nats://127.0.0.1:4222")
    for text in (repr(settings), str(settings), settings.describe(), repr(config), str(config)):
        assert SECRET not in text and "***" in text
    assert redact_url(f"nats://oms:{SECRET}@h:1") == "nats://oms:***@h:1"
    assert redact_url("nats://h:1") == "nats://h:1"


def test_bad_settings_are_refused_with_a_stable_code(tmp_path: Path) -> None:
    for bad in ({"stream": "has.dot"}, {"url": "http://x"}, {"replicas": 2}, {"max_in_flight": 0}):
        with pytest.raises(NatsConfigError) as caught:
            mirror_config(dict(bad))
        assert caught.value.code == "bad_nats_config"
    with pytest.raises(NatsConfigError, match="TLS files do not load"):
        tls_context(settings_from("tls://127.0.0.1:4222", {"tls_ca": str(tmp_path / "missing.pem")}))
    config = tmp_path / "oms.toml"
    config.write_text('[mirror]\nurl = "nats://10.0.0.5:4222"\nstream = "DU1"\nreplicas = 3\n')
    loaded = mirror_config(mirror_table(config))
    assert (loaded.nats.url, loaded.nats.stream, loaded.replicas) == ("nats://10.0.0.5:4222", "DU1", 3)


def test_credentials_from_the_environment_log_in_and_show_nowhere(tmp_path: Path) -> None:
    write_journal(tmp_path / "data" / "journal", 40)
    with nats_server(tmp_path / "nats", AUTH) as server:
        env = os.environ | {"OMS_NATS_USER": "oms", "OMS_NATS_PASSWORD": SECRET}
        mirror = mirror_process(tmp_path / "mirror.log", tmp_path / "data", server.url, "SEC", "-v")
        mirror.start(env)
        try:
            wait_until(lambda: (tmp_path / "data" / "mirror.json").exists(), 20, 0.05, "the status file")
            wait_until(lambda: b'"mirrored_seq":40' in (tmp_path / "data" / "mirror.json").read_bytes(), 20)
        finally:
            mirror.stop()
        assert stream_payloads_as(server.url, "SEC") == journal_payloads(tmp_path / "data" / "journal")

        refused = mirror_process(tmp_path / "refused.log", tmp_path / "data", server.url, "SEC", "-v")
        refused.start(os.environ | {"OMS_NATS_USER": "oms", "OMS_NATS_PASSWORD": WRONG})
        try:
            log = tmp_path / "refused.log"
            wait_until(lambda: b"Authorization Violation" in log.read_bytes(), 20, 0.05, "the refusal")
        finally:
            refused.stop()

        url = f"nats://oms:{WRONG}@127.0.0.1:{server.port}/SEC"
        tail = [sys.executable, "-m", "oms", "tail", "--nats", url, "--count", "1"]
        done = subprocess.run(tail, cwd=REPO, capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and "oms:***@" in done.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "server.conf"]  # not the server's
    everything = b"".join(p.read_bytes() for p in files) + (done.stdout + done.stderr).encode()
    assert SECRET.encode() not in everything and WRONG.encode() not in everything


def stream_payloads_as(url: str, stream: str) -> list[tuple[int, bytes]]:
    """The stream read back with the right credentials (the server refuses anyone else)."""
    return stream_payloads(url.replace("nats://", f"nats://oms:{SECRET}@"), stream)


def test_the_mirror_speaks_tls_to_a_server_it_verifies(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed: no certificate to test TLS with")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    write_journal(tmp_path / "data" / "journal", 25)
    tls = f'tls {{ cert_file: "{cert}", key_file: "{key}" }}\n'
    with nats_server(tmp_path / "nats", tls) as server:
        toml = tmp_path / "oms.toml"
        toml.write_text(f'[mirror]\ntls_ca = "{cert}"\n')
        url = f"tls://127.0.0.1:{server.port}"
        mirror = mirror_process(tmp_path / "mirror.log", tmp_path / "data", url, "TLS", "--config", str(toml))
        mirror.start()
        try:
            status = tmp_path / "data" / "mirror.json"
            wait_until(lambda: status.exists() and b'"mirrored_seq":25' in status.read_bytes(), 20, 0.05)
            reported = read_status(tmp_path / "data")
            assert reported is not None and reported.connected and not reported.error
            assert reported.url.startswith("tls://")
            verifying = ssl.create_default_context(cafile=str(cert))  # the server's certificate checks out
            assert stream_payloads(url, "TLS", tls=verifying) == journal_payloads(
                tmp_path / "data" / "journal"
            )
        finally:
            mirror.stop()
