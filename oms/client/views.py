"""Reading a followed state: what `AsyncClient` and `JetStreamClient` share, whatever they follow.

A mixin over two members, `state` (the followed `State`) and `_notifier` (the `Notifier` the follower
calls), so the questions a strategy asks of its state have one implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from oms.client.notify import EventCallback, Notifier
from oms.state.model import TERMINAL, Order, Position, State
from oms.state.queries import select_orders, select_positions


class OrderDone(Exception):
    """`wait_for_order`: the order reached a terminal status other than the ones waited for."""

    def __init__(self, order: Order) -> None:
        super().__init__(f"order {order.client_order_id} is {order.status}")
        self.order = order


class StateViews:
    _notifier: Notifier

    @property
    def state(self) -> State:
        raise NotImplementedError

    def order(self, client_order_id: str) -> Order | None:
        return self.state.orders.get(client_order_id)

    def orders(self, strategy_id: str | None = None, open_only: bool = False) -> list[Order]:
        """What `fetch_orders` would answer, from the followed state (`open_only`: still working)."""
        return select_orders(self.state, strategy_id, open_only)

    def positions(self, strategy_id: str | None = None, open_only: bool = False) -> list[Position]:
        """Account positions, or one strategy's view of them (`open_only`: not closed)."""
        return select_positions(self.state, strategy_id, open_only)

    def on_event(self, callback: EventCallback) -> None:
        """`callback(envelope, changes)` for every applied event (changes: the entities it changed)."""
        self._notifier.events.append(callback)

    def on_order(self, callback: Callable[[Order], None]) -> None:
        """Every new value of an order (also those a re-snapshot changed)."""
        self._notifier.orders.append(callback)

    def on_position(self, callback: Callable[[Position], None]) -> None:
        """Account positions and strategy positions alike (a strategy's view has `strategy_id` set)."""
        self._notifier.positions.append(callback)

    def on_connection(self, callback: Callable[[bool], None]) -> None:
        """`callback(connected)` when the source goes silent and when it is followed again."""
        self._notifier.connections.append(callback)

    async def wait_for_order(
        self, client_order_id: str, statuses: str | Collection[str], timeout: float = 30.0
    ) -> Order:
        """The order once its status is one of `statuses`. Raises `OrderDone` if it ends otherwise and
        `TimeoutError` after `timeout` seconds."""
        wanted = {statuses} if isinstance(statuses, str) else set(statuses)

        def reached() -> bool:
            order = self.order(client_order_id)
            if order is not None and order.status not in wanted and order.status in TERMINAL:
                raise OrderDone(order)
            return order is not None and order.status in wanted

        await self._notifier.wait(reached, timeout)
        order = self.order(client_order_id)
        assert order is not None
        return order
