"""HTTP order intake (off unless configured): `POST /api/orders`, `DELETE /api/orders/{id}` with a bearer
token bound to the strategies it may act for, and alert webhooks (`POST /hooks/{name}`) with a secret.

This layer checks only who is asking: the token (and that its strategies include the order's) or the
webhook's secret. Everything else is the service's, exactly as for a ZeroMQ command: the order is decoded
into the protocol's own `PlaceRequest` (the same validation), then sent through the client library, so
the service's risk checks, readiness and idempotency apply unchanged. A webhook's alert id becomes the
client order id, so a repeated alert finds the order it already placed and never places a second one.
A refused token or secret changes nothing, is answered 401/403 with a stable code, and is logged.
"""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse

from oms.client import AsyncClient, ServiceError, ServiceUnavailable
from oms.protocol import PlaceRequest, StrategyId
from oms.web.security import MAX_DEPTH, bearer, error, log_refusal, read_body, same_secret

log = logging.getLogger(__name__)

Secret = Annotated[str, msgspec.Meta(min_length=16)]
CONTRACT_FIELDS = ("symbol", "sec_type", "exchange", "currency", "primary_exchange", "con_id")
STATUS_OF: dict[str, int] = {
    "invalid": 400,
    "risk_denied": 422,
    "unknown_order": 404,
    "order_done": 409,
    "duplicate_client_order_id": 409,  # a repeated alert with other parameters: the message names them
    "not_authorized": 403,
    "too_large": 413,
    "not_ready": 503,
}


class TokenConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    token: Secret
    strategies: list[StrategyId]
    name: str = ""  # shown in logs instead of the token


class WebhookConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`fields`: order field -> the alert's field (dotted for nested); `defaults`: fixed order fields."""

    secret: Secret
    strategy: StrategyId
    fields: dict[str, str]
    defaults: dict[str, Any] = {}
    id_prefix: str = ""


class IntakeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tokens: list[TokenConfig] = []
    webhooks: dict[str, WebhookConfig] = {}


class IntakeConfigError(ValueError):
    pass


def load_intake(path: str | Path) -> IntakeConfig:
    """The intake TOML file: it holds secrets, so group or others may not read it (chmod 600)."""
    file = Path(path)
    try:
        mode = file.stat().st_mode
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise IntakeConfigError(f"{file} holds secrets: make it readable by its owner only (chmod 600)")
        config = msgspec.convert(tomllib.loads(file.read_text()), IntakeConfig)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise IntakeConfigError(f"{file}: {exc}") from None
    for name, hook in config.webhooks.items():
        for needed in ("symbol", "side", "quantity", "client_order_id"):
            if needed not in hook.fields and needed not in hook.defaults:
                raise IntakeConfigError(f"{file}: webhook {name!r} maps no field to {needed!r}")
    return config


class Intake:
    def __init__(self, config: IntakeConfig | None, client: AsyncClient | None) -> None:
        self.config = config
        self.client = client

    def _disabled(self) -> JSONResponse | None:
        if self.config is None or self.client is None:
            return error(404, "intake_disabled", "HTTP order intake is off (start with --intake FILE.toml)")
        return None

    def _token(self, request: Request) -> TokenConfig | JSONResponse:
        """The entry of the request's bearer token, or the refusal (intake off, no such token)."""
        if (off := self._disabled()) is not None:
            return off
        assert self.config is not None
        given = bearer(request)
        for entry in self.config.tokens:
            if same_secret(given, entry.token):
                return entry
        return log_refusal(request, error(401, "unauthorized", "a valid bearer token is required"))

    async def place(self, request: Request) -> JSONResponse:
        token = self._token(request)
        if isinstance(token, JSONResponse):
            return token
        raw = await _json_body(request)
        if isinstance(raw, JSONResponse):
            return raw
        if not isinstance(raw, dict):
            return error(400, "invalid", "the body must be a JSON object (a `place` request without `op`)")
        raw.setdefault("strategy_id", token.strategies[0] if token.strategies else "default")
        if (refused := _not_for(request, token, raw["strategy_id"])) is not None:
            return refused
        return await self._forward(raw, strict=True)

    async def cancel(self, request: Request) -> JSONResponse:
        token = self._token(request)
        if isinstance(token, JSONResponse):
            return token
        assert self.client is not None
        coid = request.path_params["client_order_id"]
        order = self.client.order(coid)
        if order is None:
            return error(404, "unknown_order", f"no order {coid!r}")
        if (refused := _not_for(request, token, order.strategy_id)) is not None:
            return refused
        try:
            await self.client.cancel(coid)
        except (ServiceError, ServiceUnavailable) as exc:
            return service_error(exc)
        return JSONResponse({"ok": True, "client_order_id": coid}, status_code=202)

    async def webhook(self, request: Request) -> JSONResponse:
        if (off := self._disabled()) is not None:
            return off
        assert self.config is not None
        name = request.path_params["name"]
        hook = self.config.webhooks.get(name)
        if hook is None:
            return log_refusal(request, error(404, "unknown_webhook", f"no webhook {name!r}"))
        given = request.query_params.get("secret")
        if given is not None and not same_secret(given, hook.secret):  # refused before the body is read
            return _bad_secret(request, name)
        alert = await _json_body(request)
        if isinstance(alert, JSONResponse):
            return alert if given is not None else _bad_secret(request, name)  # no secret: who asks?
        if given is None:
            secret = alert.get("secret") if isinstance(alert, dict) else None
            if not same_secret(secret if isinstance(secret, str) else None, hook.secret):
                return _bad_secret(request, name)
        if not isinstance(alert, dict):
            return error(400, "invalid", "the alert must be a JSON object")
        try:
            raw = order_of_alert(hook, alert)
        except KeyError as exc:
            return error(400, "invalid", f"the alert has no field {exc.args[0]!r}")
        return await self._forward(raw, strict=False)

    async def _forward(self, raw: dict[str, Any], *, strict: bool) -> JSONResponse:
        """Validate with the protocol's Struct, then place through the client (the service decides)."""
        assert self.client is not None
        explicit_type = "order_type" in raw
        try:
            req = msgspec.convert(raw, PlaceRequest, strict=strict)
        except msgspec.ValidationError as exc:
            return error(400, "invalid", str(exc))
        existed = req.client_order_id is not None and self.client.order(req.client_order_id) is not None
        try:
            coid = await self.client.place(
                req.contract, req.side, req.quantity,
                limit_price=req.limit_price, stop_price=req.stop_price,
                order_type=req.order_type if explicit_type else None, tif=req.tif,
                strategy_id=req.strategy_id, account=req.account, client_order_id=req.client_order_id,
                outside_rth=req.outside_rth, parent_client_order_id=req.parent_client_order_id,
                transmit=req.transmit, trailing_amount=req.trailing_amount,
                trailing_percent=req.trailing_percent, limit_offset=req.limit_offset,
                touch_price=req.touch_price, good_till=req.good_till, oca_group=req.oca_group,
                oca_type=req.oca_type, algo=req.algo, algo_priority=req.algo_priority,
            )  # fmt: skip
        except (ServiceError, ServiceUnavailable) as exc:
            return service_error(exc)
        order = self.client.order(coid)
        body = {
            "ok": True,
            "client_order_id": coid,
            "duplicate": existed,
            "status": order.status if order else "",
        }
        return JSONResponse(body, status_code=200 if existed else 201)


async def _json_body(request: Request) -> Any | JSONResponse:
    """The body decoded, or the refusal: too large (413, never read past the limit), not JSON, or
    nested deeper than `MAX_DEPTH` (400, never a RecursionError)."""
    body = await read_body(request)
    if isinstance(body, JSONResponse):
        return body
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        return error(400, "invalid", f"the body is not JSON: {exc}")
    except RecursionError:
        value = None
        depth = MAX_DEPTH + 1
    else:
        depth = _depth(value)
    if depth > MAX_DEPTH:
        return error(400, "too_deep", f"the JSON body nests deeper than {MAX_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """How deep `value` nests (a scalar: 0), walked without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend((child, level + 1) for child in children)
    return deepest


def _bad_secret(request: Request, name: str) -> JSONResponse:
    return log_refusal(request, error(401, "bad_secret", f"webhook {name!r}: missing or wrong secret"))


def _not_for(request: Request, token: TokenConfig, strategy_id: object) -> JSONResponse | None:
    """The refusal when `token` may not act for `strategy_id`."""
    if strategy_id in token.strategies:
        return None
    return log_refusal(
        request, error(403, "forbidden", f"token {token.name or '?'} may not act for {strategy_id!r}")
    )


def order_of_alert(hook: WebhookConfig, alert: dict[str, Any]) -> dict[str, Any]:
    """The `place` request an alert maps to (raises KeyError naming a missing alert field)."""
    values = {**hook.defaults, **{field: _lookup(alert, path) for field, path in hook.fields.items()}}
    contract = {k: values.pop(k) for k in CONTRACT_FIELDS if k in values}
    if isinstance(values.get("side"), str):
        values["side"] = values["side"].upper()
    values["client_order_id"] = f"{hook.id_prefix}{values['client_order_id']}"
    return {**values, "contract": contract, "strategy_id": hook.strategy}


def _lookup(alert: dict[str, Any], path: str) -> Any:
    value: Any = alert
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


def service_error(exc: ServiceError | ServiceUnavailable) -> JSONResponse:
    """The service's refusal, its stable code kept, as an HTTP status a caller can act on."""
    if isinstance(exc, ServiceUnavailable):
        return error(503, "unavailable", str(exc))
    more = {"reason": exc.reason} if exc.reason else {}
    return error(STATUS_OF.get(exc.code, 502), exc.code, exc.message, **more)  # 502: the service failed
