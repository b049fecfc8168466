"""`oms web` prints the token in its address only when it made the token: one the operator gave (--token,
OMS_WEB_TOKEN) is a secret it already has, and printed it would land in logs."""

from __future__ import annotations

from pathlib import Path

from tests.web_helpers import WebProcess, http

GIVEN = "operator-given-token-4f9c2a"


def _web(tmp_path: Path, *args: str) -> WebProcess:
    (tmp_path / "journal").mkdir(exist_ok=True)  # an empty recording: no service is needed
    session = ("--data-dir", str(tmp_path / "none"), "--session", str(tmp_path / "journal"))
    return WebProcess(tmp_path, *session, "--allow-commands", *args).start()


def test_a_given_token_is_not_printed_but_still_needed(tmp_path: Path) -> None:
    web = _web(tmp_path, "--token", GIVEN)
    try:
        assert "?" not in web.url and GIVEN not in web.out.read_text() + web.err.read_text()
        assert http("GET", web.base)[0] == 200  # pages on loopback need no token
        kill = web.base + "kill-switch"
        assert http("POST", kill, {"engaged": True})[1]["error"]["code"] == "unauthorized"
        given = http("POST", kill, {"engaged": True}, {"X-OMS-Token": GIVEN})[1]
        assert given["error"]["code"] != "unauthorized", given  # no service here, but the token is taken
    finally:
        web.stop()


def test_a_generated_token_is_printed(tmp_path: Path) -> None:
    web = _web(tmp_path)
    try:
        assert len(web.token) >= 16
    finally:
        web.stop()
