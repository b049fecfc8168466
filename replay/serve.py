"""The ROUTER half of a replay: `ping`, `snapshot`, `events`, `orders`, `positions`, answered from the
replayed state, so a client using the Clone pattern (docs/protocol.md) follows a replay as it would the
service. Commands are refused: a replay changes nothing. Framing and request decoding are the service's
own (`oms.service.router`); the replies are the service's Structs.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
import zmq

from events.codec import encode
from oms import __version__
from oms.protocol import (
    MAX_EVENTS_BATCH,
    ErrorReply,
    EventsRequest,
    EventsResult,
    OkReply,
    PingRequest,
    PingResult,
    Request,
    op_of,
)
from oms.service.queries import STATE_QUERIES, answer
from oms.service.router import decode_request, error, split_frames
from oms.state.model import State, initial_state
from replay.source import Source

_encoder = msgspec.msgpack.Encoder()


class ReplayRouter:
    def __init__(self, endpoint: str, source: Source) -> None:
        self.socket: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(endpoint)
        self.endpoint: str = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.state = initial_state()
        self._source = source

    def update(self, state: State) -> None:
        """The state as published so far (the replay hands over its own, still mutating, object)."""
        self.state = state

    def wait(self, seconds: float) -> None:
        """Sleep that answers requests meanwhile (the replay's pacing waits through this)."""
        self.answer(max(0, int(seconds * 1000)))

    def answer(self, timeout_ms: int = 0) -> int:
        """Answer every request waiting (or arriving within `timeout_ms`); returns how many."""
        answered = 0
        while self.socket.poll(timeout_ms if not answered else 0):
            envelope, body = split_frames(self.socket.recv_multipart())
            reply = body if isinstance(body, ErrorReply) else self._reply(body)
            self.socket.send_multipart([*envelope, _encoder.encode(reply)])
            answered += 1
        return answered

    def _reply(self, payload: bytes) -> OkReply | ErrorReply:
        request = decode_request(payload)
        if isinstance(request, ErrorReply):
            return request
        result = self._result(request)
        if result is None:
            message = "a replay answers ping, snapshot, events, orders and positions; it takes no commands"
            return error("unknown_op", message, request.id, op_of(request))
        return OkReply(id=request.id, op=op_of(request), seq=self.state.seq, result=result)

    def _result(self, request: Request) -> Any:
        state = self.state
        if isinstance(request, PingRequest):
            return PingResult(ready=True, version=f"{__version__} (replay)")
        if isinstance(request, EventsRequest):
            last = min(state.seq, request.from_seq + min(request.limit, MAX_EVENTS_BATCH) - 1)
            batch = [msgspec.Raw(encode(env)) for env in self._source.read(request.from_seq, last)]
            return EventsResult(events=batch, next_seq=request.from_seq + len(batch), last_seq=state.seq)
        if isinstance(request, STATE_QUERIES):
            return answer(state, request)
        return None

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self.socket.close(linger=0)
