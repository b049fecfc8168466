"""Bytes on the client's sockets <-> typed values: replies, published envelopes and heartbeats.

Results are kept as `msgspec.Raw` until the caller says what it expects, so each is decoded once,
straight into its type; events go through `events.codec`, so a kind this version does not know still
arrives (as `UnknownEvent`) instead of breaking the client.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from events import codec
from events.schema import SCHEMA_VERSION, Envelope
from oms.protocol import ErrorInfo, Heartbeat, Request

T = TypeVar("T")


class ServiceError(Exception):
    """The service answered with an error reply; `code` is one of `oms.protocol.ERROR_CODES`."""

    def __init__(
        self, code: str, message: str, reason: str | None = None, client_order_id: str | None = None
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" ({reason})" if reason else ""))
        self.code = code
        self.message = message
        self.reason = reason
        self.client_order_id = client_order_id


class ServiceUnavailable(ConnectionError):
    """No answer within the timeout, or no endpoints to connect to: the service is not running."""

    def __init__(self, message: str, client_order_id: str | None = None) -> None:
        super().__init__(message)
        self.client_order_id = client_order_id


class ServiceNotRunning(ServiceUnavailable):
    """Known without asking: no endpoints file, or the pid it names is not alive (killed, crashed)."""


class Reply(msgspec.Struct, frozen=True):
    ok: bool
    id: int | str | None = None
    op: str | None = None
    seq: int = 0
    result: msgspec.Raw = msgspec.Raw(b"\xc0")  # msgpack nil
    error: ErrorInfo | None = None

    def result_as(self, type_: type[T]) -> T:
        return msgspec.msgpack.decode(self.result, type=type_)


class _RawPublished(msgspec.Struct, frozen=True):
    type: str
    seq: int
    ts: int
    data: msgspec.Raw = msgspec.Raw(b"\xc0")


class _RawEnvelope(msgspec.Struct, frozen=True):
    seq: int
    ts: int
    event: msgspec.Raw
    v: int = SCHEMA_VERSION


class _RawEvents(msgspec.Struct, frozen=True):
    events: list[msgspec.Raw]
    next_seq: int
    last_seq: int


_encoder = msgspec.msgpack.Encoder()
_reply_decoder = msgspec.msgpack.Decoder(Reply)
_published_decoder = msgspec.msgpack.Decoder(_RawPublished)


def encode_request(request: Request) -> bytes:
    return _encoder.encode(request)


def decode_reply(frame: bytes) -> Reply:
    return _reply_decoder.decode(frame)


def raise_for_error(reply: Reply) -> Reply:
    """The reply itself if ok; an error reply raises `ServiceError` with the service's stable code."""
    if not reply.ok:
        error = reply.error or ErrorInfo(code="internal", message="error reply without an error")
        raise ServiceError(error.code, error.message, error.reason, error.client_order_id)
    return reply


def decode_published(payload: bytes) -> Envelope | Heartbeat | None:
    """A logged event as an Envelope, a heartbeat, or None for the entity updates this client refolds."""
    item = _published_decoder.decode(payload)
    if item.type == "heartbeat":
        return Heartbeat(seq=item.seq, ts=item.ts)
    if item.type != "event":
        return None
    return codec.decode(_encoder.encode(_RawEnvelope(item.seq, item.ts, item.data)))


def decode_events(reply: Reply) -> tuple[list[Envelope], int]:
    """The envelopes of an `events` reply, and the service's last seq."""
    result = reply.result_as(_RawEvents)
    return [codec.decode(raw) for raw in result.events], result.last_seq
