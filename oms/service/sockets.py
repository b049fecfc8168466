"""Binding the service's sockets with errors a person can act on, and counting PUB peers.

A bind that fails (the port is taken, the address is not this machine's) closes its socket at once, so
the ZeroMQ context can still be terminated (an open socket makes `term()` wait forever), and says which
endpoint, why, and the flag that picks another one.
"""

from __future__ import annotations

import contextlib
from typing import Any

import zmq
import zmq.utils.monitor


class BindError(OSError):
    """A socket could not be bound; the message names the endpoint and the fix."""


def bind(socket: zmq.Socket[Any], endpoint: str, name: str, flag: str) -> str:
    """Bind `socket` (closing it on failure); returns the endpoint actually bound (port 0 resolved)."""
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as exc:
        socket.close(linger=0)
        hint = (
            "another program (perhaps another `oms run`) uses it: stop that one, or choose another "
            f"endpoint with {flag} (port 0 picks a free one)"
            if exc.errno == zmq.EADDRINUSE
            else f"pass a valid local endpoint with {flag}, e.g. tcp://127.0.0.1:0"
        )
        raise BindError(f"cannot bind the {name} socket to {endpoint}: {exc.strerror}; {hint}") from None
    return socket.getsockopt_string(zmq.LAST_ENDPOINT)


class PeerCounter:
    """Counts the peers connected to a bound socket from its monitor events (drained without blocking)."""

    def __init__(self, socket: zmq.Socket[Any]) -> None:
        self._socket = socket
        self._monitor = socket.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self.count = 0

    def refresh(self) -> int:
        while self._monitor.poll(0):
            event = zmq.utils.monitor.recv_monitor_message(self._monitor)["event"]
            self.count += 1 if event == zmq.EVENT_ACCEPTED else -1
        self.count = max(self.count, 0)
        return self.count

    def close(self) -> None:
        """Stop the monitor before closing its reader: libzmq sends monitor events blocking, from the
        context's I/O thread, so one event with no reader left (a peer leaving) stalls every socket of the
        context for good."""
        with contextlib.suppress(zmq.ZMQError):
            self._socket.disable_monitor()
        with contextlib.suppress(zmq.ZMQError):
            self._monitor.close(linger=0)
