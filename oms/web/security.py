"""Who may see and who may act: the safety model of the web app (docs/web.md, "Safety").

- Read-only by default. Cancel and the kill switch from the page need `--allow-commands`, the per-run
  token (sent as the `X-OMS-Token` header, which a page from another origin cannot read or forge) and a
  same-origin request (`Origin`, else `Referer`, must name this host).
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

from oms.protocol import ERROR_CODES

log = logging.getLogger(__name__)

COOKIE = "oms_web_token"
HEADER = "X-OMS-Token"

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
}


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
    """`token` is the per-run token: given (required beyond loopback) or made up at start."""

    host: str = "127.0.0.1"
    allow_commands: bool = False
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    token_given: bool = False

    def __post_init__(self) -> None:
        if not is_loopback_host(self.host) and not self.token_given:
            raise ValueError(
                f"refusing to serve on {self.host} without a token: beyond loopback every page needs one "
                "(--token or OMS_WEB_TOKEN)"
            )

    @property
    def pages_need_token(self) -> bool:
        return not is_loopback_host(self.host)

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
        """None when a command from the page may go ahead, else the refusal (logged)."""
        refusal: JSONResponse | None = None
        if not self.allow_commands:
            refusal = error(
                403, "commands_disabled", "this web app is read-only (start it with --allow-commands)"
            )
        elif not same_secret(request.headers.get(HEADER), self.token):
            refusal = error(401, "unauthorized", f"commands need the per-run token in the {HEADER} header")
        elif not same_origin(request):
            refusal = error(403, "bad_origin", "commands are accepted only from this web app's own pages")
        return None if refusal is None else log_refusal(request, refusal)


def same_origin(request: Request) -> bool:
    """`Origin` (else `Referer`) names the host the request was sent to."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed:
        return False
    parts = urlsplit(claimed)
    return bool(parts.netloc) and parts.netloc == request.headers.get("host", "")


def _peer(request: Request) -> str:
    return request.client.host if request.client else "?"


def log_refusal(request: Request, response: JSONResponse) -> JSONResponse:
    log.warning("refused %s %s from %s: %s", request.method, request.url.path, _peer(request),
                bytes(response.body).decode())  # fmt: skip
    return response
