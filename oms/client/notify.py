"""Who hears about changes to the followed state: the user's callbacks and the coroutines waiting on a
condition (`wait_for_order`, a command waiting for its own intent to arrive)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from events.schema import Envelope
from oms.state.model import Order, Position, State

log = logging.getLogger(__name__)

EventCallback = Callable[[Envelope, tuple[object, ...]], None]


class Notifier:
    """Callbacks run in the client's event loop, in registration order; one that raises is logged and
    never stops the client from following."""

    def __init__(self) -> None:
        self.events: list[EventCallback] = []
        self.orders: list[Callable[[Order], None]] = []
        self.positions: list[Callable[[Position], None]] = []
        self.connections: list[Callable[[bool], None]] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def applied(self, env: Envelope, changes: tuple[object, ...]) -> None:
        for callback in self.events:
            _call(callback, env, changes)
        self._announce(changes)

    def resynced(self, old: State | None, new: State) -> None:
        """A snapshot replaced the state: what differs is announced as if it had been applied."""
        self._announce(_differences(old, new) if old is not None else ())

    def connection(self, connected: bool) -> None:
        for callback in self.connections:
            _call(callback, connected)

    async def wait(self, reached: Callable[[], bool], timeout: float) -> None:
        """Until `reached()` is true after some change (it may raise to end the wait with that error);
        `TimeoutError` after `timeout` seconds."""
        if reached():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (reached, future)
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            self._waiters.remove(waiter)

    def _announce(self, changes: Iterable[object]) -> None:
        for change in changes:
            if isinstance(change, Order):
                for order_callback in self.orders:
                    _call(order_callback, change)
            elif isinstance(change, Position):
                for position_callback in self.positions:
                    _call(position_callback, change)
        for reached, future in self._waiters:
            if future.done():
                continue
            try:
                if reached():
                    future.set_result(None)
            except Exception as exc:
                future.set_exception(exc)


def _call(callback: Callable[..., object], *args: object) -> None:
    try:
        callback(*args)
    except Exception:
        log.exception("callback %r failed", callback)


def _differences(old: State, new: State) -> list[object]:
    """Orders and positions whose value differs between two states (what a resync changed)."""
    changed: list[object] = []
    for before, after in (
        (old.orders, new.orders),
        (old.positions, new.positions),
        (old.strategy_positions, new.strategy_positions),
    ):
        changed.extend(value for key, value in after.items() if before.get(key) != value)
    return changed
