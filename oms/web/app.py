"""The Starlette application: pages rendered on the server, live sections by server-sent events,
`/healthz`, page commands (cancel, kill switch) and the HTTP order intake.

`build_app` takes what the command line assembled: a `LiveFeed` (None without a service), the opened
recorded sessions, the `Guard` (who may see and act) and the `Intake`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from oms import __version__
from oms.client import AsyncClient, ServiceError, ServiceUnavailable
from oms.client.render import event_line, json_text
from oms.state.model import State
from oms.state.queries import select_orders, select_positions
from oms.web import views
from oms.web.finished import Finished
from oms.web.intake import Intake, service_error
from oms.web.live import LiveFeed
from oms.web.security import COOKIE, Guard, Shield, error, log_refusal, same_secret
from oms.web.session import Session

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
LIMIT = views.LIMIT
OPEN_PATHS = ("/static/", "/api/", "/hooks/")  # intake has its own tokens; static files are public


class Web:
    def __init__(self, feed: LiveFeed | None, sessions: list[Session], guard: Guard, intake: Intake) -> None:
        self.feed = feed
        self.sessions = sessions
        self.guard = guard
        self.intake = intake
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(),
            auto_reload=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.sections: Any = self.templates.get_template("sections.html").module  # the section macros

    # --- rendering ------------------------------------------------------------------------------------

    def page(
        self, request: Request, template: str, *, live_view: bool = False, **context: Any
    ) -> HTMLResponse:
        """A recorded view (`live_view` false) is never given the token: no button there can act."""
        commands = live_view and self.guard.allow_commands and self.guard.has_token(request)
        html = self.templates.get_template(template).render(
            live=self.feed is not None,
            token=self.guard.token if commands else "",
            commands=commands,
            service=self.feed.source if self.feed is not None else "",
            **context,
        )
        return HTMLResponse(html)

    def body(
        self,
        state: State,
        flt: views.Filter,
        charts: dict[str, Any],
        link: str,
        finished: Finished | None = None,
        clock: views.Clock = views.UTC_CLOCK,
    ) -> dict[str, Any]:
        """What the live page and a recorded session's page show (`finished`, `clock`: live only)."""
        working, done = views.order_rows(state, flt, LIMIT, finished, clock)
        return {
            "flt": flt,
            "working": working,
            "done": done,
            "link": link,
            "limit": LIMIT,
            "positions": views.position_rows(state, flt, per_strategy=False),
            "strategy_positions": views.position_rows(state, flt, per_strategy=True),
            "fills": views.fill_rows(state, flt, LIMIT, finished, clock),
            "accounts": views.account_rows(state, flt),
            "account_keys": views.ACCOUNT_KEYS,
            "chart_json": _json_for_script(charts),
            "choices": views.choices(state),
        }

    def section(self, name: str, flt: views.Filter, commands: bool) -> str:
        """One section of the live page as HTML (or JSON for the charts), for the event stream."""
        feed = self.feed
        assert feed is not None
        state = feed.state
        if name == "status":
            status = views.status_of(state, feed.seq, _followed(feed), feed.clock)
            return str(self.sections.status(status, commands, feed.source))
        if name == "orders":
            working, done = views.order_rows(state, flt, LIMIT, feed.finished, feed.clock)
            return str(self.sections.orders(working, done, commands, "", LIMIT, feed.source))
        if name == "positions":
            return str(
                self.sections.positions(
                    views.position_rows(state, flt, per_strategy=False),
                    views.position_rows(state, flt, per_strategy=True),
                )
            )
        if name == "fills":
            return str(self.sections.fills(views.fill_rows(state, flt, LIMIT, feed.finished, feed.clock)))
        if name == "accounts":
            return str(self.sections.accounts(views.account_rows(state, flt), views.ACCOUNT_KEYS))
        return msgspec.json.encode(feed.charts.data(flt, zone=feed.clock.zone)).decode()

    # --- live -----------------------------------------------------------------------------------------

    async def live(self, request: Request) -> Response:
        if self.feed is None:
            return RedirectResponse("/sessions")
        flt = views.Filter.of(request.query_params)
        state = self.feed.state
        feed = self.feed
        context = self.body(
            state, flt, feed.charts.data(flt, zone=feed.clock.zone), "", feed.finished, feed.clock
        )
        context["status"] = views.status_of(state, feed.seq, _followed(feed), feed.clock)
        context["keep"] = {}
        return self.page(request, "live.html", live_view=True, title="live", **context)

    async def events(self, request: Request) -> Response:
        """The live page's stream: changed sections, coalesced, then `seq` ([seq, event ts in ms])."""
        if self.feed is None:
            return error(404, "no_service", "this web app follows no service")
        feed = self.feed
        flt = views.Filter.of(request.query_params)
        commands = self.guard.allow_commands and self.guard.has_token(request)

        async def stream() -> AsyncIterator[str]:
            yield "retry: 1000\n\n"
            order_mark = -1  # the first update sends whole tables
            async for changed in feed.updates():
                parts = []
                for name in changed:
                    if name == "orders":
                        coids = feed.orders_since(order_mark) if order_mark >= 0 else None
                        order_mark = feed.order_changes
                        if coids is not None:  # a few orders changed: just their rows
                            parts.append(_sse("order-rows", self.order_rows(coids, flt, commands)))
                            continue
                    parts.append(_sse(name, self._cached_section(feed, name, flt, commands)))
                parts.append(_sse("seq", f"[{feed.seq}, {feed.last_event_ts // 1_000_000}]"))
                yield "".join(parts)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    def order_rows(self, coids: set[str], flt: views.Filter, commands: bool) -> str:
        """JSON for the page: each changed order's row and the table it now belongs in."""
        assert self.feed is not None
        rows: list[dict[str, Any]] = []
        for coid in coids:
            order = self.feed.state.orders.get(coid)
            if order is None or not flt.matches(order):
                continue
            row = views.order_row(order, self.feed.clock)
            table = "working" if row["working"] else "done"
            html = str(self.sections.order_row(row, commands and table == "working", "", self.feed.source))
            rows.append({"id": coid, "table": table, "seq": order.updated_seq, "html": html})
        rows.sort(key=lambda r: r["seq"])  # prepended in this order: the newest ends on top
        return msgspec.json.encode(rows).decode()

    def _cached_section(self, feed: LiveFeed, name: str, flt: views.Filter, commands: bool) -> str:
        html: str = feed.cached(name, (flt, commands), lambda: self.section(name, flt, commands))
        return html

    async def state_json(self, request: Request) -> Response:
        """The followed state for programs, as of `seq`: orders and account positions as `oms orders
        --json` / `oms positions --json` print them (`?strategy=ID`: its orders and its view of positions)."""
        if self.feed is None:
            return error(404, "no_service", "this web app follows no service")
        state, strategy = self.feed.state, request.query_params.get("strategy") or None
        body = {
            "seq": self.feed.seq,
            "orders": select_orders(state, strategy, False),
            "positions": select_positions(state, strategy, False),
        }
        return Response(json_text(body), media_type="application/json")

    async def healthz(self, request: Request) -> JSONResponse:
        """For monitors: 200 while the service is followed and answers, 503 otherwise."""
        body: dict[str, Any] = {"version": __version__, "time": time.time(), "sessions": len(self.sessions)}
        if self.feed is None:
            return JSONResponse({**body, "status": "no_service"})
        state, client = self.feed.state, self.feed.client
        body.update(
            following=self.feed.source,
            followed=self.feed.connected,
            seq=self.feed.seq,
            connection=state.connection,
            kill_switch=state.kill_switch,
            reconciling=state.reconciling,
            open_orders=views.open_orders(state),
        )
        if isinstance(client, AsyncClient):
            try:
                ping = await client.ping(timeout=1.0)
                body.update(ready=ping.ready, service_version=ping.version)
            except ServiceUnavailable:
                body.update(ready=False)
        else:  # a mirror: no service to ask; ready while the stream is followed
            body.update(ready=self.feed.connected)
        healthy = body["followed"] and body["ready"] and state.connection == "connected"
        return JSONResponse({**body, "status": "ok" if healthy else "degraded"}, 200 if healthy else 503)

    # --- page commands --------------------------------------------------------------------------------

    async def cancel(self, request: Request) -> Response:
        """Cancel one order: the request names the service and the account it means to act on (the
        page's confirmation said them); anything else is refused before the service is asked."""
        client = self._command(request)
        if isinstance(client, Response):
            return client
        assert self.feed is not None
        coid = request.path_params["client_order_id"]
        order = self.feed.state.orders.get(coid)
        if order is None:
            return error(404, "unknown_order", f"the service at {client.router} has no order {coid!r}")
        account = request.query_params.get("account")
        if account != order.account:
            return log_refusal(request, error(409, "wrong_target", f"order {coid!r} is in account "
                                              f"{order.account!r}, not {account!r}"))  # fmt: skip
        try:
            await client.cancel(coid)
        except (ServiceError, ServiceUnavailable) as exc:
            return service_error(exc)
        log.info("cancel %s (account %s) requested from the web page", coid, account)
        body = {"ok": True, "answer": "accepted", "client_order_id": coid, "account": account,
                "service": client.router}  # fmt: skip
        return JSONResponse(body, status_code=202)

    async def kill_switch(self, request: Request) -> Response:
        client = self._command(request)
        if isinstance(client, Response):
            return client
        engaged = request.query_params.get("engaged", "1") not in ("0", "false", "")
        try:
            result = await client.kill_switch(engaged, "from the web page")
        except (ServiceError, ServiceUnavailable) as exc:
            return service_error(exc)
        log.warning("kill switch %s from the web page", "engaged" if engaged else "released")
        return JSONResponse({"ok": True, "answer": "accepted", "engaged": result.engaged,
                             "cancelled": result.cancelled, "service": client.router})  # fmt: skip

    def _command(self, request: Request) -> Response | AsyncClient:
        """The refusal of a page command (the guard's, no service, a mirror, another service named), or
        the client of the service to send it to."""
        if (refused := self.guard.command(request)) is not None:
            return refused
        if self.feed is None:
            return error(404, "no_service", "this web app follows no service")
        client = self.feed.client
        if not isinstance(client, AsyncClient):
            return log_refusal(request, error(403, "read_only", f"this web app follows the mirror at "
                                              f"{self.feed.source}, which takes no commands"))  # fmt: skip
        service = request.query_params.get("service")
        if service != client.router:
            return log_refusal(request, error(409, "wrong_target", f"this web app follows the service at "
                                              f"{client.router}, not {service!r}"))  # fmt: skip
        return client

    # --- recorded sessions ----------------------------------------------------------------------------

    async def session_list(self, request: Request) -> Response:
        """Each session with its date, time span, orders, fills and size (each folded once, in a thread)."""
        summaries = [await asyncio.to_thread(session.summary) for session in self.sessions]
        return self.page(request, "sessions.html", title="recorded sessions", sessions=summaries)

    async def _session(self, request: Request) -> tuple[int, Session] | Response:
        index = int(request.path_params["index"])
        if not 0 <= index < len(self.sessions):
            return error(404, "unknown_session", f"no recorded session {index}")
        session = self.sessions[index]
        await asyncio.to_thread(session.load)
        return index, session

    async def _session_context(self, request: Request) -> dict[str, Any] | Response:
        """What a session page and its slider fragment show: the state at `at`, or the 404."""
        found = await self._session(request)
        if isinstance(found, Response):
            return found
        index, session = found
        flt = views.Filter.of(request.query_params)
        at = _int(request.query_params.get("at"), session.last)
        at = max(0, min(at, session.last))
        state = session.state_at(at)
        charts = session.charts.data(flt, cursor_ns=session.ts_of(at) or None)
        context = self.body(state, flt, charts, f"/sessions/{index}/orders/")
        context.update(
            index=index,
            name=session.name,
            at=at,
            last=session.last,
            status=views.status_of(state, at, "recorded"),
            events=[event_line(env) for env in session.events_before(at)],
            filter_fields=flt.fields(),
        )
        context["keep"] = {"at": at}
        return context

    async def session_page(self, request: Request) -> Response:
        context = await self._session_context(request)
        if isinstance(context, Response):
            return context
        return self.page(request, "session.html", title=context["name"], **context)

    async def session_state(self, request: Request) -> Response:
        """The slider's fragment: the state at `at`."""
        context = await self._session_context(request)
        if isinstance(context, Response):
            return context
        html = self.templates.get_template("session_state.html").render(commands=False, service="", **context)
        return HTMLResponse(html)

    async def order_page(self, request: Request) -> Response:
        found = await self._session(request)
        if isinstance(found, Response):
            return found
        index, session = found
        ident = request.path_params["ident"]
        try:
            timelines = await asyncio.to_thread(session.recording.timelines, ident)
        except LookupError as exc:
            return error(404, "unknown_order", str(exc))
        shown = [
            {
                "id": t.client_order_id,
                "entries": [
                    {
                        "seq": e.env.seq,
                        "time": views.UTC_CLOCK.precise(e.env.ts),
                        "event": event_line(e.env).split(None, 2)[-1],
                        "changed": e.changed,
                        "order": views.order_row(e.order) if e.order is not None else None,
                    }
                    for e in t.entries
                ],
            }
            for t in timelines
        ]
        return self.page(request, "order.html", title=f"order {ident}", index=index, name=session.name,
                         timelines=shown)  # fmt: skip


class _ViewerGuard:
    """Beyond loopback, every page needs the token (intake and static files excepted). Plain ASGI, so
    the event stream passes through unbuffered."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(OPEN_PATHS):
            request = Request(scope)
            if same_secret(request.query_params.get("token"), self.guard.token):
                await _keep_token(request)(scope, receive, send)
                return
            if not self.guard.viewer(request):
                refusal = error(401, "unauthorized", "this web app needs its token (?token=...)")
                await log_refusal(request, refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _keep_token(request: Request) -> Response:
    """`?token=` once: the token goes into an HttpOnly, SameSite=Strict cookie and out of the address."""
    rest = "&".join(f"{k}={v}" for k, v in request.query_params.multi_items() if k != "token")
    response = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), status_code=303)
    response.set_cookie(COOKIE, request.query_params["token"], httponly=True, samesite="strict")
    return response


def build_app(feed: LiveFeed | None, sessions: list[Session], guard: Guard, intake: Intake) -> Starlette:
    web = Web(feed, sessions, guard, intake)
    routes = [
        Route("/", web.live),
        Route("/events", web.events),
        Route("/healthz", web.healthz),
        Route("/state.json", web.state_json),
        Route("/orders/{client_order_id}/cancel", web.cancel, methods=["POST"]),
        Route("/kill-switch", web.kill_switch, methods=["POST"]),
        Route("/sessions", web.session_list),
        Route("/sessions/{index:int}", web.session_page),
        Route("/sessions/{index:int}/state", web.session_state),
        Route("/sessions/{index:int}/orders/{ident}", web.order_page),
        Route("/api/orders", intake.place, methods=["POST"]),
        Route("/api/orders/{client_order_id}", intake.cancel, methods=["DELETE"]),
        Route("/hooks/{name}", intake.webhook, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [Middleware(Shield, guard=guard), Middleware(_ViewerGuard, guard=guard)]  # outermost first
    return Starlette(routes=routes, middleware=middleware)


def _sse(event: str, data: str) -> str:
    lines = "\n".join(f"data: {line}" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n\n"


def _json_for_script(value: Any) -> str:
    """JSON safe inside a <script> element."""
    return msgspec.json.encode(value).decode().replace("</", "<\\/")


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _followed(feed: LiveFeed) -> str:
    if feed.connected:
        return "following"
    return "mirror silent" if feed.mirror else "service silent"
