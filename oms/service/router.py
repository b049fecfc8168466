"""The ROUTER socket: frames in, one typed request to the handler, exactly one reply frame out.

Framing: a DEALER sends `[payload]`, a REQ socket (or a DEALER imitating one) `[b"", payload]`; the reply
goes back with the same envelope. Anything else after the envelope is `bad_frames`. A payload over
`MAX_MESSAGE_BYTES` is `too_large`; ZMQ_MAXMSGSIZE is set to a multiple of it, so a peer that sends far
more is disconnected by libzmq before the bytes are buffered (that peer gets no reply).

Each request runs in its own task (a command waits for its fsync without holding up the next request);
tasks start in arrival order, so requests are logged in the order they arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from oms.protocol import MAX_MESSAGE_BYTES, OPS, AnyRequest, ErrorInfo, ErrorReply, OkReply, Request, op_of
from oms.readable import validation_message
from oms.service.sockets import bind

log = logging.getLogger(__name__)

Reply = OkReply | ErrorReply
Handler = Callable[[Request, str | None], Awaitable[Reply]]  # (request, CURVE peer key or None)

_request_decoder = msgspec.msgpack.Decoder(AnyRequest)
_any_decoder = msgspec.msgpack.Decoder()
_encoder = msgspec.msgpack.Encoder()
LIBZMQ_MAX_MESSAGE = 16 * MAX_MESSAGE_BYTES


def error(code: str, message: str, request_id: Any = None, op: str | None = None, **extra: Any) -> ErrorReply:
    return ErrorReply(id=request_id, op=op, error=ErrorInfo(code=code, message=message, **extra))  # type: ignore[arg-type]


def decode_request(payload: bytes) -> Request | ErrorReply:
    """A typed request, or the error reply that says precisely what is wrong with it. Never raises for
    any bytes: a request nested deeper than the decoder's recursion limit is `malformed` too."""
    if len(payload) > MAX_MESSAGE_BYTES:
        return error("too_large", f"request of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        try:
            return _request_decoder.decode(payload)
        except msgspec.ValidationError as exc:  # a subclass of DecodeError: test it first
            return _classify(payload, exc)
    except (msgspec.DecodeError, ValueError) as exc:  # ValueError: e.g. a string that is not UTF-8
        return error("malformed", f"not msgpack: {exc}")
    except RecursionError:
        return error("malformed", "nested too deeply: a request is a map of plain values and small maps")


def _classify(payload: bytes, exc: msgspec.ValidationError) -> ErrorReply:
    try:
        raw = _any_decoder.decode(payload)
    except (msgspec.DecodeError, ValueError) as inner:  # e.g. a map with array keys, bad UTF-8
        return error("malformed", f"not a msgpack map with string keys: {inner}")
    if not isinstance(raw, dict):
        return error("malformed", f"a request is a msgpack map, got {type(raw).__name__}")
    request_id = raw.get("id")
    if not isinstance(request_id, int | str) or isinstance(request_id, bool):
        request_id = None
    op = raw.get("op")
    if not isinstance(op, str):
        return error("invalid", "op: missing or not text (every request names its op)", request_id)
    if op not in OPS:
        return error("unknown_op", f"unknown op {op[:64]!r}; known: {sorted(OPS)}", request_id)
    return error("invalid", validation_message(exc), request_id, op)


def split_frames(frames: list[bytes]) -> tuple[list[bytes], bytes | ErrorReply]:
    """(reply envelope, payload or error) for the frames a ROUTER received."""
    identity, rest = frames[:1], frames[1:]
    if len(rest) >= 2 and rest[0] == b"":
        envelope, body = [*identity, b""], rest[1:]
    else:
        envelope, body = identity, rest
    if len(body) != 1:
        return envelope, error("bad_frames", f"expected one payload frame, got {len(body)}")
    return envelope, body[0]


class Router:
    """Owns the ROUTER socket; `serve()` runs until cancelled."""

    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str, handler: Handler, curve_secret: bytes | None):
        self.socket = ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, LIBZMQ_MAX_MESSAGE)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self._curve = curve_secret is not None  # then each request carries its client's key (User-Id)
        if curve_secret is not None:
            self.socket.curve_secretkey = curve_secret
            self.socket.curve_server = True
        self.endpoint = bind(self.socket, endpoint, "ROUTER", "--router")
        self._handler = handler
        self._tasks: set[asyncio.Task[None]] = set()
        self._latest: dict[bytes, asyncio.Task[None]] = {}  # per client: its newest request's task
        self.requests = 0

    async def serve(self) -> None:
        try:
            while True:
                frames = await self.socket.recv_multipart(copy=not self._curve)
                self.requests += 1
                first = frames[0]
                identity: bytes = first.bytes if isinstance(first, zmq.Frame) else first
                task = asyncio.create_task(self._answer(frames, self._latest.get(identity)))
                self._latest[identity] = task
                self._tasks.add(task)
                task.add_done_callback(functools.partial(self._done, identity=identity))
        finally:
            for task in list(self._tasks):
                task.cancel()

    def _done(self, task: asyncio.Task[None], *, identity: bytes) -> None:
        self._tasks.discard(task)
        if self._latest.get(identity) is task:
            del self._latest[identity]

    async def _answer(self, frames: list[Any], before: asyncio.Task[None] | None) -> None:
        """One client's requests are applied and answered in the order it sent them (a cancel right
        behind its place finds the order); different clients' requests run concurrently."""
        if before is not None:
            await asyncio.wait([before])
        peer = None
        if self._curve:  # zmq.Frame objects: the ZAP handler's User-Id is the client's public key
            peer = frames[-1].get("User-Id")
            frames = [frame.bytes for frame in frames]
        envelope, body = split_frames(frames)
        reply = body if isinstance(body, ErrorReply) else await self._dispatch(body, peer)
        await self.socket.send_multipart([*envelope, _encoder.encode(reply)])

    async def _dispatch(self, payload: bytes, peer: str | None = None) -> Reply:
        request: Request | ErrorReply | None = None
        try:
            request = decode_request(payload)
            if isinstance(request, ErrorReply):
                return request
            return await self._handler(request, peer)
        except Exception as exc:  # one reply per request, even when the service has a bug
            log.exception("request %r failed", request or payload[:200])
            if isinstance(request, Request):
                return error("internal", f"{type(exc).__name__}: {exc}", request.id, op_of(request))
            return error("internal", f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self.socket.close(linger=0)
