"""The PUB socket: where state leaves the process. Every logged event, every entity it changed, heartbeats.

It is an XPUB, so the service knows which topic prefixes are subscribed and does not encode messages no
subscriber could receive (a client folding events itself subscribes to `evt.` only).

Messages are `[topic, payload]` (oms.protocol: `Published` / `Heartbeat`). The socket has a send high-water
mark and never blocks: a subscriber that cannot keep up loses messages at its own queue (and repairs the
gap with an `events` request), it never slows the service.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import zmq

from events.schema import Envelope, UnknownEvent, kind_of
from oms.protocol import (
    FOLD_ERROR_TOPIC,
    HEARTBEAT_TOPIC,
    POSITION_MOVED_TOPIC,
    Heartbeat,
    Published,
    PublishedType,
    account_topic,
    event_topic,
    instrument_key,
    order_topic,
    position_topic,
    strategy_position_topic,
)
from oms.service.sockets import PeerCounter, bind
from oms.state.model import Account, Changed, FoldError, Order, Position

# The hot path sends each message as two copying `send`s of the backend's own (Cython) method with plain
# int flags: pyzmq's Python wrapper around it, or `send_multipart`, costs more than libzmq itself here.
# Copying is right for messages this small: `copy=False` costs a Frame object and a free callback each.
_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)
_LAST = int(zmq.NOBLOCK)
_raw_send = zmq.backend.Socket.send


def route_change(entity: Changed) -> tuple[PublishedType, str]:
    """(type, topic) of an entity a fold step changed."""
    if type(entity) is Order:
        return "order", order_topic(entity.strategy_id, entity.client_order_id)
    if type(entity) is Position:
        instrument = instrument_key(entity.contract)
        if entity.strategy_id:
            return "strategy_position", strategy_position_topic(
                entity.strategy_id, entity.account, instrument
            )
        return "position", position_topic(entity.account, instrument)
    if type(entity) is Account:
        return "account", account_topic(entity.account)
    if type(entity) is FoldError:
        return "fold_error", FOLD_ERROR_TOPIC
    return "position_moved", POSITION_MOVED_TOPIC


# the topic prefix of each kind of message: a kind no subscription can match is not even encoded
PREFIXES: dict[str, bytes] = {
    "event": b"evt.",
    "order": b"order.",
    "position": b"pos.",
    "strategy_position": b"spos.",
    "account": b"acct.",
    "position_moved": POSITION_MOVED_TOPIC.encode(),
    "fold_error": FOLD_ERROR_TOPIC.encode(),
}


class Publisher:
    """An XPUB socket (a PUB that also reports subscriptions): what nobody subscribed to is skipped."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, hwm: int, curve_secret: bytes | None) -> None:
        self.socket = ctx.socket(zmq.XPUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, hwm)
        if curve_secret is not None:
            self.socket.curve_secretkey = curve_secret
            self.socket.curve_server = True
        self.endpoint = bind(self.socket, endpoint, "PUB", "--pub")
        self._peers = PeerCounter(self.socket)
        self._send = _raw_send.__get__(self.socket)
        self._encode = msgspec.msgpack.Encoder().encode
        self._event_topics: dict[type, bytes] = {}  # per event class (an unknown kind is never cached)
        self._subscriptions: set[bytes] = set()
        self._wanted = dict.fromkeys(PREFIXES, False)
        self._events_wanted = False
        self._changes_wanted = False
        self.last_seq = 0
        self.sent = 0

    def refresh_subscriptions(self) -> None:
        """Read the subscribe/unsubscribe messages libzmq queued (one per distinct prefix: it counts
        subscribers itself), and recompute which kinds of message anyone can receive."""
        socket, changed = self.socket, False
        while socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            frame = socket.recv(zmq.NOBLOCK)
            if frame[:1] == b"\x01":
                self._subscriptions.add(frame[1:])
            elif frame[:1] == b"\x00":
                self._subscriptions.discard(frame[1:])
            changed = True
        if changed:
            subs = self._subscriptions
            self._wanted = {
                kind: any(s.startswith(prefix) or prefix.startswith(s) for s in subs)
                for kind, prefix in PREFIXES.items()
            }
            self._events_wanted = self._wanted["event"]
            self._changes_wanted = any(v for k, v in self._wanted.items() if k != "event")

    def publish_batch(self, batch: Sequence[tuple[Envelope, tuple[Changed, ...]]]) -> None:
        """Everything a drain collected (subscriptions refreshed first: a new subscriber gets it all)."""
        self.refresh_subscriptions()
        self._publish(batch)

    def publish(self, env: Envelope, changes: tuple[Changed, ...]) -> None:
        """The event, then each entity it changed, all stamped with the event's seq."""
        self._publish(((env, changes),))

    def _publish(self, batch: Sequence[tuple[Envelope, tuple[Changed, ...]]]) -> None:
        if not batch:
            return
        events_wanted, changes_wanted = self._events_wanted, self._changes_wanted
        if events_wanted or changes_wanted:  # one loop for the batch: this is the service's hot path
            send, encode, topics, wanted = self._send, self._encode, self._event_topics, self._wanted
            sent = 0
            for env, changes in batch:
                if events_wanted:
                    event: Any = env.event
                    topic = topics.get(type(event))
                    if topic is None:
                        topic, event = self._event_topic(event)
                    send(topic, _MORE)
                    send(encode(Published("event", env.seq, env.ts, event)), _LAST)
                    sent += 1
                if changes_wanted:
                    for entity in changes:
                        kind_name, entity_topic = route_change(entity)
                        if wanted[kind_name]:
                            send(entity_topic.encode(), _MORE)
                            send(encode(Published(kind_name, env.seq, env.ts, entity)), _LAST)
                            sent += 1
            self.sent += sent
        self.last_seq = batch[-1][0].seq

    def _event_topic(self, event: Any) -> tuple[bytes, Any]:
        """(topic, what to encode as `data`) for an event class not seen yet, or an unknown kind: a newer
        writer's map goes out verbatim, as logged, under the kind its writer gave it."""
        topic = event_topic(kind_of(event)).encode()
        if type(event) is UnknownEvent:
            return topic, msgspec.Raw(event.raw)
        self._event_topics[type(event)] = topic
        return topic, event

    @property
    def subscribers(self) -> int:
        """Peers connected to the PUB socket now (`oms status`)."""
        return self._peers.refresh()

    def heartbeat(self, seq: int) -> None:
        self.refresh_subscriptions()
        self._peers.refresh()
        payload = self._encode(Heartbeat(seq=seq, ts=time.time_ns()))
        with contextlib.suppress(zmq.Again):
            self.socket.send_multipart((HEARTBEAT_TOPIC.encode(), payload), zmq.NOBLOCK)

    def close(self) -> None:
        self._peers.close()
        with contextlib.suppress(zmq.ZMQError):
            self.socket.close(linger=0)
