"""The web app attacked from outside, over real HTTP: `oms web` (intake on, a recorded session open,
commands allowed) following a real `oms run` with its embedded simulator. Bodies are limited before
they are read, secrets are checked first, deep JSON and conflicting repeats are refused with 4xx,
only the configured host names are served, every response carries the security headers, a recorded
view never acts, and no input to any route gives a 500 (a hypothesis fuzz)."""

from __future__ import annotations

import contextlib
import json
import string
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oms.client import Client
from tests.client_helpers import ServiceProcess, running_service
from tests.web_helpers import WebProcess, http

TOKEN = "tok-hostile-0123456789ab"
SECRET = "hook-secret-hostile-0123"
INTAKE = f"""
[[tokens]]
name = "bot"
token = "{TOKEN}"
strategies = ["tv"]

[webhooks.alerts]
secret = "{SECRET}"
strategy = "tv"
id_prefix = "tv-"
fields = {{ symbol = "ticker", side = "action", quantity = "contracts", client_order_id = "id" }}
"""
HEADERS = ("content-security-policy", "referrer-policy", "x-content-type-options")


@dataclass
class Target:
    service: ServiceProcess
    web: WebProcess
    client: Client

    @property
    def port(self) -> int:
        return urlsplit(self.web.base).port or 80

    def raw(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One request as sent (Host and Content-Length as given, else the usual ones)."""
        conn = HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            sent = {"Host": f"127.0.0.1:{self.port}", "Content-Length": str(len(body)), **(headers or {})}
            for name, value in sent.items():
                conn.putheader(name, value)
            conn.endheaders()
            if body:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    conn.send(body)  # may be answered (and closed) before it is all sent
            response = conn.getresponse()
            answer = response.read() if not path.startswith("/events") else b""
            return response.status, {k.lower(): v for k, v in response.getheaders()}, answer
        finally:
            conn.close()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    base = tmp_path_factory.mktemp("hostile")
    intake = base / "intake.toml"
    intake.write_text(INTAKE)
    intake.chmod(0o600)
    data = base / "data"
    with running_service(data, "--max-quantity", "100") as service:
        web = WebProcess(
            base, "--data-dir", str(data), "--allow-commands", "--intake", str(intake), "--session", str(data)
        ).start()
        try:
            with Client.connect(data, strategy_id="mom") as client:
                yield Target(service, web, client)
        finally:
            web.stop()


def code(body: bytes) -> str:
    error: dict[str, str] = json.loads(body)["error"]
    return error["code"]


def test_a_huge_body_is_refused_before_it_is_read(target: Target) -> None:
    """64 MiB declared: 413 at once (only a little is sent; the server never waits for the rest)."""
    declared = {"Content-Length": str(64 << 20), "Content-Type": "application/json"}
    for path in (f"/hooks/alerts?secret={SECRET}", "/hooks/alerts", "/api/orders"):
        status, headers, body = target.raw("POST", path, b"{" * 1000, declared)
        assert (status, code(body)) == (413, "body_too_large"), path
        assert all(name in headers for name in HEADERS)


def test_a_chunked_body_is_read_only_up_to_the_limit(target: Target) -> None:
    conn = HTTPConnection("127.0.0.1", target.port, timeout=10)
    try:
        chunk = b'{"pad": "' + b"x" * 200_000 + b'"}'
        conn.request("POST", f"/hooks/alerts?secret={SECRET}", body=iter([chunk]), encode_chunked=True)
        response = conn.getresponse()
        assert (response.status, code(response.read())) == (413, "body_too_large")
    finally:
        conn.close()


def test_the_secret_is_checked_before_the_body(target: Target) -> None:
    deep = b"[" * 30_000 + b"]" * 30_000  # would be a 400 if read: a 401 says it was not
    status, _, body = target.raw("POST", "/hooks/alerts?secret=wrong", deep)
    assert (status, code(body)) == (401, "bad_secret")
    status, _, body = target.raw("POST", "/api/orders", deep, {"Authorization": "Bearer wrong"})
    assert (status, code(body)) == (401, "unauthorized")


def test_deep_nesting_is_refused_with_400_not_a_recursion_error(target: Target) -> None:
    deep = b"[" * 30_000 + b"]" * 30_000  # within the body limit; deeper than the decoder's stack
    status, _, body = target.raw("POST", f"/hooks/alerts?secret={SECRET}", deep)
    assert (status, code(body)) == (400, "too_deep")
    nested: object = []
    for _ in range(40):  # decodes fine, but nests deeper than any order or alert may
        nested = [nested]
    order = {"contract": {"symbol": "AAPL"}, "side": "BUY", "quantity": 1, "tif": nested}
    status, _, body = target.raw(
        "POST", "/api/orders", json.dumps(order).encode(), {"Authorization": f"Bearer {TOKEN}"}
    )
    assert (status, code(body)) == (400, "too_deep")
    assert "Traceback" not in target.web.err.read_text()


def test_a_conflicting_repeated_alert_is_a_409_naming_the_differences(target: Target) -> None:
    url = target.web.base + f"hooks/alerts?secret={SECRET}"
    alert = {"ticker": "AAPL", "action": "buy", "contracts": "2", "id": "rep-1"}
    assert http("POST", url, alert)[0] == 201
    assert http("POST", url, alert)[0] == 200  # the same alert again: the order it placed
    status, body = http("POST", url, {**alert, "contracts": "3", "action": "sell"})
    assert (status, body["error"]["code"]) == (409, "duplicate_client_order_id")
    assert "quantity" in body["error"]["message"] and "side" in body["error"]["message"]
    assert target.service.requested("tv-rep-1") == 1


def test_only_the_configured_host_names_are_served(target: Target) -> None:
    """DNS rebinding: a page from evil.example resolved to 127.0.0.1 still sends `Host: evil.example`."""
    for host in ("evil.example", f"evil.example:{target.port}", "127.0.0.2", "localhost.evil.example"):
        status, _, body = target.raw("GET", "/", headers={"Host": host})
        assert (status, code(body)) == (400, "bad_host"), host
        assert "working orders" not in body.decode()
    for host in (f"127.0.0.1:{target.port}", f"localhost:{target.port}", "localhost", f"[::1]:{target.port}"):
        assert target.raw("GET", "/healthz", headers={"Host": host})[0] in (200, 503), host


def test_every_response_carries_the_security_headers(target: Target) -> None:
    for method, path in (("GET", "/"), ("GET", "/sessions"), ("GET", "/static/app.js"), ("GET", "/healthz"),
                         ("GET", "/nope"), ("POST", "/api/orders"), ("POST", "/kill-switch")):  # fmt: skip
        headers = target.raw(method, path)[1]
        assert headers["referrer-policy"] == "no-referrer", path
        assert headers["x-content-type-options"] == "nosniff", path
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp, path


def test_the_server_refuses_commands_for_a_recorded_view_or_another_target(target: Target) -> None:
    """With the token and a same-origin header, a command still needs the live page's view header and
    must name the service and the account this web app acts on."""
    coid = target.client.place("MSFT", "BUY", 1, limit_price=1.0)
    target.client.wait_for_order(coid, "submitted", timeout=10)
    order = target.client.order(coid)
    assert order is not None
    origin = target.web.base.rstrip("/")
    service = _router(target)
    signed = {
        "X-OMS-Token": target.web.token,
        "Origin": origin,
        "Cookie": f"oms_web_token={target.web.token}",
    }
    query = f"?service={quote(service)}&account={quote(order.account)}"
    status, _, body = target.raw("POST", f"/orders/{coid}/cancel{query}", headers=signed)
    assert (status, code(body)) == (403, "recorded_view")
    live = {**signed, "X-OMS-View": "live"}
    status, _, body = target.raw("POST", f"/orders/{coid}/cancel?service=tcp://elsewhere:1&account={order.account}",
                                 headers=live)  # fmt: skip
    assert (status, code(body)) == (409, "wrong_target")
    status, _, body = target.raw(
        "POST", f"/orders/{coid}/cancel?service={quote(service)}&account=DU999", headers=live
    )
    assert (status, code(body)) == (409, "wrong_target")
    assert target.client.order(coid).status == "submitted"  # type: ignore[union-attr]
    status, _, body = target.raw("POST", f"/orders/{coid}/cancel{query}", headers=live)
    answer = json.loads(body)
    assert (status, answer["answer"], answer["account"], answer["service"]) == (
        202,
        "accepted",
        order.account,
        service,
    )
    target.client.wait_for_order(coid, "cancelled", timeout=10)


def _router(target: Target) -> str:
    endpoints = json.loads((target.service.data_dir / "endpoints.json").read_text())
    router: str = endpoints["router"]
    return router


# --- the fuzz ------------------------------------------------------------------------------------------

ROUTES = (
    ("GET", "/"), ("GET", "/events"), ("GET", "/healthz"), ("POST", "/orders/{x}/cancel"),
    ("POST", "/kill-switch"), ("GET", "/sessions"), ("GET", "/sessions/{n}"), ("GET", "/sessions/{n}/state"),
    ("GET", "/sessions/{n}/orders/{x}"), ("POST", "/api/orders"), ("DELETE", "/api/orders/{x}"),
    ("POST", "/hooks/{name}"), ("GET", "/static/{x}"),
)  # fmt: skip
SEGMENT = st.one_of(
    st.sampled_from(["0", "1", "-1", "99999999999999999999", "alerts", "app.js", "..", "%2e%2e", "tv-rep-1"]),
    st.text(string.printable.strip() + "é€", min_size=0, max_size=12),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.sampled_from(["AAPL", "BUY", "sell", "1e28", "-1", "NaN", "MKT", "LMT"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["ticker", "action", "contracts", "id", "secret", "contract", "symbol", "side",
                         "quantity", "limit_price", "order_type", "strategy_id", "client_order_id", "x"]),
        inner, max_size=6),
    max_leaves=20,
)  # fmt: skip
ORDER = st.fixed_dictionaries(
    {"contract": st.fixed_dictionaries({"symbol": st.sampled_from(["AAPL", "MSFT", "", "X" * 50])}),
     "side": st.sampled_from(["BUY", "SELL", "buy", "HOLD"]), "quantity": JSON,
     "client_order_id": st.text(string.ascii_letters + "-", min_size=1, max_size=10)},
    optional={"limit_price": JSON, "strategy_id": st.sampled_from(["tv", "other", ""]), "tif": JSON},
)  # fmt: skip
BODY = st.one_of(
    st.just(b""), st.binary(max_size=64), JSON.map(lambda v: json.dumps(v).encode()),
    ORDER.map(lambda v: json.dumps(v).encode()), st.just(b"[" * 5000),
)  # fmt: skip
HEADER_SETS = st.fixed_dictionaries(
    {},
    optional={
        "Authorization": st.sampled_from([f"Bearer {TOKEN}", "Bearer x", "Basic abc", "Bearer "]),
        "X-OMS-Token": st.sampled_from(["", "nope"]),
        "X-OMS-View": st.sampled_from(["live", "recorded"]),
        "Origin": st.sampled_from(["null", "http://evil.example", "http://127.0.0.1"]),
        "Content-Type": st.sampled_from(["application/json", "text/plain", "multipart/form-data"]),
        "Cookie": st.sampled_from(["oms_web_token=x", "a=b; c"]),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(ROUTES),
    segments=st.lists(SEGMENT, min_size=2, max_size=2),
    query=st.dictionaries(st.sampled_from(["secret", "at", "token", "symbol", "all", "service", "account",
                                           "engaged", "strategy"]), st.text(max_size=10), max_size=3),
    body=BODY,
    headers=HEADER_SETS,
)  # fmt: skip
def test_no_input_to_any_route_gives_a_500(
    target: Target,
    route: tuple[str, str],
    segments: list[str],
    query: dict[str, str],
    body: bytes,
    headers: dict[str, str],
) -> None:
    method, template = route
    path = template.format(
        x=quote(segments[0], safe="%"), n=quote(segments[1], safe=""), name=quote(segments[1])
    )
    if query:
        path += "?" + "&".join(f"{k}={quote(v)}" for k, v in query.items())
    if "secret" in query and template == "/hooks/{name}" and len(query) == 1:
        path = path.replace(f"secret={quote(query['secret'])}", f"secret={SECRET}")  # past the secret, too
    status, response_headers, _ = target.raw(method, path, body, headers)
    assert status != 500 and status < 600, (method, path, body[:80])
    assert all(name in response_headers for name in HEADERS)


def test_the_fuzz_left_no_traceback(target: Target) -> None:
    """Runs after the fuzz (file order): nothing the fuzz sent made the server log an exception."""
    assert "Traceback" not in target.web.err.read_text()
    assert http("GET", target.web.base + "healthz")[0] in (200, 503)
