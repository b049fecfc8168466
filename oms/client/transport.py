"""Where the service is and how to reach it: endpoints, CURVE keys, and the request channel (a DEALER).

The channel follows the ZeroMQ Guide's Lazy Pirate advice: on a timeout the socket is closed with
linger 0 and a fresh one is made, so a request the client gave up on is never delivered later (a stale
`place` must not surface when the service comes back). Requests carry an `id`; any reply with
another id (left over from an earlier socket's peer) is ignored.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path

import msgspec
import zmq
import zmq.asyncio
import zmq.auth

from oms.client.wire import (
    Reply,
    ServiceNotRunning,
    ServiceUnavailable,
    decode_reply,
    encode_request,
    raise_for_error,
)
from oms.protocol import ENDPOINTS_FILE, Endpoints, Request


class CurveKeys(msgspec.Struct, frozen=True):
    """Z85 keys: the server's public key and this client's key pair."""

    server_public: bytes
    public: bytes
    secret: bytes

    @classmethod
    def load(cls, client_secret_file: str | Path, server_public: str | bytes) -> CurveKeys:
        """`client_secret_file` as written by `oms keys`; the server key as Z85 text or a certificate path."""
        public, secret = zmq.auth.load_certificate(client_secret_file)
        if secret is None:
            raise ValueError(f"{client_secret_file} holds no secret key")
        if isinstance(server_public, str) and Path(server_public).is_file():
            server_public = zmq.auth.load_certificate(server_public)[0]
        server = server_public.encode() if isinstance(server_public, str) else server_public
        return cls(server_public=server, public=public, secret=secret)

    def apply(self, socket: zmq.Socket) -> None:  # type: ignore[type-arg]
        socket.curve_serverkey = self.server_public
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret


def read_endpoints(data_dir: str | Path, check_pid: bool = True) -> Endpoints:
    """The endpoints a running service wrote into its data directory (or the path of that file).
    `ServiceNotRunning` at once when there is no file, or when the pid it names is not alive (the
    service was killed and could not remove it): no request is sent to wait for in vain."""
    path = Path(data_dir)
    if path.suffix != ".json":
        path = path / ENDPOINTS_FILE
    try:
        endpoints = msgspec.json.decode(path.read_bytes(), type=Endpoints)
    except FileNotFoundError:
        raise ServiceNotRunning(
            f"the service is not running: {path} does not exist (start it with `oms run --data-dir "
            f"{path.parent}`, or pass the --data-dir it uses)"
        ) from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ServiceUnavailable(f"{path} is not a valid endpoints file ({exc})") from None
    if check_pid and not pid_alive(endpoints.pid):
        raise ServiceNotRunning(
            f"the service is not running: {path} names pid {endpoints.pid}, which is gone (it stopped "
            f"without cleaning up, e.g. killed); start it again with `oms run --data-dir {path.parent}`"
        )
    return endpoints


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except OverflowError:
        return False
    return True


class RequestChannel:
    """One request at a time over a DEALER socket, each answered or timed out."""

    def __init__(
        self, context: zmq.asyncio.Context, endpoint: str, curve: CurveKeys | None, timeout: float
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._context = context
        self._curve = curve
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._socket = self._open()

    def _open(self) -> zmq.asyncio.Socket:
        socket = self._context.socket(zmq.DEALER)
        socket.linger = 0
        socket.setsockopt(zmq.IMMEDIATE, 1)  # queue only to a live connection: no request waits for a restart
        if self._curve is not None:
            self._curve.apply(socket)
        socket.connect(self.endpoint)
        return socket

    def reconnect(self, endpoint: str | None = None) -> None:
        """A fresh socket (to a new endpoint if the service moved); anything in flight is dropped."""
        self._socket.close(linger=0)
        self.endpoint = endpoint or self.endpoint
        self._socket = self._open()

    async def request(self, request: Request, timeout: float | None = None) -> Reply:
        """The service's reply; `ServiceError` for an error reply, `ServiceUnavailable` after the timeout."""
        async with self._lock:
            request_id = next(self._ids)
            frame = encode_request(msgspec.structs.replace(request, id=request_id))
            try:
                return await asyncio.wait_for(self._exchange(frame, request_id), timeout or self.timeout)
            except TimeoutError:
                self.reconnect()
                raise ServiceUnavailable(
                    f"no reply from the service at {self.endpoint} within {timeout or self.timeout:g} s"
                ) from None

    async def _exchange(self, frame: bytes, request_id: int) -> Reply:
        await self._socket.send(frame)  # with IMMEDIATE, waits for a connection (bounded by the timeout)
        while True:
            reply = decode_reply(await self._socket.recv())
            if reply.id == request_id:
                return raise_for_error(reply)

    def close(self) -> None:
        self._socket.close(linger=0)
