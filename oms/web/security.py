"""Who may see and who may act: the safety model of the web app (docs/web.md, "Safety").

- Read-only by default. Cancel and the kill switch from the page need `--allow-commands`, the per-run
  token (sent as the `X-OMS-Token` header, which a page from another origin cannot read or forge) and a
  same-origin request (`Origin`, else `Referer`, must name this host), from the live page only: a
  recorded session's page never acts.
- Only the configured host names are served (loopback names by default): a page on another site that
  reaches this app through DNS rebinding sends its own name in `Host` and is refused.
- Bodies are limited before they are read, and every response carries the security headers (CSP with
  frame-ancestors, no-referrer, nosniff).
- Loopback by default: pages are open to this machine. Any other bind needs a token, and then every page
  needs it too: `?token=...` once (it becomes an HttpOnly, SameSite=Strict cookie), or
  `Authorization: Bearer ...`.
- HTTP order intake (`oms.web.intake`) has its own tokens and secrets and is off unless configured.

Every refusal is a JSON error with a stable code, changes nothing, and is logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oms.protocol import ERROR_CODES

log = logging.getLogger(__name__)

COOKIE = "oms_web_token"
MAX_BODY = 64 * 1024  # the largest request body read (an order or an alert is well under 1 KiB)
MAX_DEPTH = 32  # the deepest JSON nesting decoded (an alert maps dotted paths a few levels deep)
HEADER = "X-OMS-Token"
VIEW_HEADER = "X-OMS-View"  # "live" from the live page; recorded pages send none

# The web app's own error codes (stable); the service's (oms.protocol.ERROR_CODES) pass through as they are.
WEB_ERRORS: dict[str, str] = {
    "unauthorized": "no token, or a wrong one (401)",
    "forbidden": "the token may not act for this strategy (403)",
    "bad_secret": "the webhook's secret is missing or wrong (401)",
    "bad_origin": "a command from another origin (403)",
    "commands_disabled": "commands need `--allow-commands` (403)",
    "intake_disabled": "HTTP order intake is not configured (404)",
    "unknown_webhook": "no webhook has this name (404)",
    "unknown_order": "no order has this client order id (404)",
    "invalid": "the request does not decode into a valid order (400)",
    "unavailable": "the service does not answer (503)",
    "no_service": "this web app follows no service (404)",
    "unknown_session": "no recorded session has this number (404)",
    "bad_host": "the Host header names a host this web app does not serve (400; DNS rebinding defence)",
    "body_too_large": f"the request body is larger than {MAX_BODY} bytes (413)",
    "too_deep": f"the JSON body nests deeper than {MAX_DEPTH} levels (400)",
    "recorded_view": "a command from a recorded session's page, or from no live page (403)",
    "wrong_target": "the command names another service or account than the one this page follows (409)",
    "read_only": "a command to a web app that follows a JetStream mirror, which takes no commands (403)",
}
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# Every response: no framing by other sites, no address leaks to links, no content sniffing, and only
# this app's own scripts (the page has no inline script; the chart data is a JSON data block).
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
)


def error(status: int, code: str, message: str, **more: str) -> JSONResponse:
    """The JSON error every refusal gets: `{"ok": false, "error": {"code", "message", ...}}`."""
    assert code in WEB_ERRORS or code in ERROR_CODES, f"undocumented error code {code!r}"
    body = {"ok": False, "error": {"code": code, "message": message, **more}}
    return JSONResponse(body, status_code=status)


def is_loopback_host(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def same_secret(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


@dataclass
class Guard:
    """`token` is the per-run token: given (required beyond loopback) or made up at start.
    `allowed_hosts`: the names the Host header may carry besides the loopback names and `host` itself
    (a page on another site reached through DNS rebinding names its own host, and is refused)."""

    host: str = "127.0.0.1"
    allow_commands: bool = False
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    token_given: bool = False
    allowed_hosts: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not is_loopback_host(self.host) and not self.token_given:
            raise ValueError(
                f"refusing to serve on {self.host} without a token: beyond loopback every page needs one "
                "(--token or OMS_WEB_TOKEN)"
            )
        wildcard = self.host in ("0.0.0.0", "::", "")
        names = {*LOOPBACK_NAMES, *self.allowed_hosts, *(() if wildcard else (self.host,))}
        self.allowed_hosts = frozenset(name.lower().strip("[]") for name in names)

    @property
    def pages_need_token(self) -> bool:
        return not is_loopback_host(self.host)

    def host_allowed(self, host_header: str) -> bool:
        """Whether the Host header (`name[:port]`, `[v6]:port`) names a host this app serves."""
        name = host_header.lower()
        name = name[1:].partition("]")[0] if name.startswith("[") else name.rpartition(":")[0] or name
        return name in self.allowed_hosts

    def viewer(self, request: Request) -> bool:
        if not self.pages_need_token:
            return True
        for given in (request.cookies.get(COOKIE), bearer(request), request.query_params.get("token")):
            if same_secret(given, self.token):
                return True
        return False

    def has_token(self, request: Request) -> bool:
        """Whether this page may be given the token (to send back with commands): it has the cookie."""
        return same_secret(request.cookies.get(COOKIE), self.token)

    def command(self, request: Request) -> JSONResponse | None:
        """None when a command from the page may go ahead, else the refusal (logged). Only the live
        page sends `X-OMS-View: live`; a recorded session's page never gets the token at all."""
        refusal: JSONResponse | None = None
        if not self.allow_commands:
            refusal = error(
                403, "commands_disabled", "this web app is read-only (start it with --allow-commands)"
            )
        elif not same_secret(request.headers.get(HEADER), self.token):
            refusal = error(401, "unauthorized", f"commands need the per-run token in the {HEADER} header")
        elif not same_origin(request):
            refusal = error(403, "bad_origin", "commands are accepted only from this web app's own pages")
        elif request.headers.get(VIEW_HEADER) != "live":
            refusal = error(403, "recorded_view", "commands are accepted only from the live page, never "
                            "from a recorded session's")  # fmt: skip
        return None if refusal is None else log_refusal(request, refusal)


def same_origin(request: Request) -> bool:
    """`Origin` (else `Referer`) names the host the request was sent to. With `Referrer-Policy:
    no-referrer` a browser may send `Origin: null` on a same-origin POST: then its `Sec-Fetch-Site`
    (set by the browser, never by a page) must say same-origin."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed or claimed == "null":
        return request.headers.get("sec-fetch-site") == "same-origin"
    parts = urlsplit(claimed)
    return bool(parts.netloc) and parts.netloc == request.headers.get("host", "")


def _peer(request: Request) -> str:
    return request.client.host if request.client else "?"


def log_refusal(request: Request, response: JSONResponse) -> JSONResponse:
    log.warning("refused %s %s from %s: %s", request.method, request.url.path, _peer(request),
                bytes(response.body).decode())  # fmt: skip
    return response


class Shield:
    """Before any route: the Host header must name a served host (400 `bad_host`), a declared body must
    fit `MAX_BODY` (413, nothing read); every response gets `SECURITY_HEADERS`. Plain ASGI, so the
    event stream passes through unbuffered."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        request = Request(scope)
        refusal: JSONResponse | None = None
        if not self.guard.host_allowed(request.headers.get("host", "")):
            refusal = error(400, "bad_host", "this web app does not serve that host name (--allowed-host)")
        elif _declared_length(request) > MAX_BODY:
            refusal = error(413, "body_too_large", f"the body is larger than {MAX_BODY} bytes")
        if refusal is not None:
            await log_refusal(request, refusal)(scope, receive, with_headers)
            return
        await self.app(scope, receive, with_headers)


def _declared_length(request: Request) -> int:
    try:
        return int(request.headers.get("content-length", "0"))
    except ValueError:
        return MAX_BODY + 1  # a length that is no number: refused like a long one


async def read_body(request: Request) -> bytes | JSONResponse:
    """The body, read only up to `MAX_BODY` (a chunked body declares no length): else the 413."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return error(413, "body_too_large", f"the body is larger than {MAX_BODY} bytes")
    return bytes(body)
