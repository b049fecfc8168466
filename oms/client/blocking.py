"""The blocking API for strategies without asyncio: the same `AsyncClient`, driven from a private event loop
in a daemon thread. Every call hops onto that loop and waits for its answer, so the followed state is
only ever touched by one thread. Callbacks run in the client's thread: keep them short, never call
the client back from one (hand work to your own thread or queue instead).

    with Client.connect("oms-data", strategy_id="mom") as client:
        coid = client.place("AAPL", "BUY", 10)
        client.wait_for_order(coid, "filled", timeout=10)
        print(client.positions(strategy_id="mom"))
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Collection, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from events.schema import Contract, Envelope, Side
from oms.client.async_client import AsyncClient
from oms.protocol import ContractSpec, KillSwitchResult, PingResult, RiskResult, StatusResult
from oms.state.fold import copy_state
from oms.state.model import Order, Position, State

T = TypeVar("T")


class Client:
    """Use `Client.connect(...)` (same arguments as `AsyncClient.connect`); close it, or use `with`."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, thread: threading.Thread, client: AsyncClient
    ) -> None:
        self._loop = loop
        self._thread = thread
        self._client = client

    @classmethod
    def connect(cls, data_dir: str | Path | None = None, **options: Any) -> Client:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="oms-client", daemon=True)
        thread.start()
        try:
            client = asyncio.run_coroutine_threadsafe(AsyncClient.connect(data_dir, **options), loop).result()
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            raise
        return cls(loop, thread, client)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _read(self, read: Callable[[], T]) -> T:
        async def hop() -> T:
            return read()

        return self._run(hop())

    # --- state ------------------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        return self._read(lambda: self._client.seq)

    @property
    def connected(self) -> bool:
        return self._read(lambda: self._client.connected)

    def state(self) -> State:
        """A copy of the followed state, safe to keep."""
        return self._read(lambda: copy_state(self._client.state))

    def order(self, client_order_id: str) -> Order | None:
        return self._read(lambda: self._client.order(client_order_id))

    def orders(self, strategy_id: str | None = None, open_only: bool = False) -> list[Order]:
        return self._read(lambda: self._client.orders(strategy_id, open_only))

    def positions(self, strategy_id: str | None = None, open_only: bool = False) -> list[Position]:
        return self._read(lambda: self._client.positions(strategy_id, open_only))

    def wait_for_order(
        self, client_order_id: str, statuses: str | Collection[str], timeout: float = 30.0
    ) -> Order:
        return self._run(self._client.wait_for_order(client_order_id, statuses, timeout))

    def on_event(self, callback: Callable[[Envelope, tuple[object, ...]], None]) -> None:
        self._read(lambda: self._client.on_event(callback))

    def on_order(self, callback: Callable[[Order], None]) -> None:
        self._read(lambda: self._client.on_order(callback))

    def on_position(self, callback: Callable[[Position], None]) -> None:
        self._read(lambda: self._client.on_position(callback))

    def on_connection(self, callback: Callable[[bool], None]) -> None:
        self._read(lambda: self._client.on_connection(callback))

    # --- commands ---------------------------------------------------------------------------------

    def ping(self) -> PingResult:
        return self._run(self._client.ping())

    def status(self) -> StatusResult:
        return self._run(self._client.status())

    def place(
        self,
        contract: str | Contract | ContractSpec,
        side: Side,
        quantity: Decimal | float | int | str,
        **fields: Any,
    ) -> str:
        """See `AsyncClient.place` for the keyword fields (limit_price, stop_price, tif, ...)."""
        return self._run(self._client.place(contract, side, quantity, **fields))

    def modify(self, client_order_id: str, **fields: Any) -> str:
        """See `AsyncClient.modify` for the keyword fields (quantity, limit_price, trailing_amount, ...)."""
        return self._run(self._client.modify(client_order_id, **fields))

    def cancel(self, client_order_id: str) -> str:
        return self._run(self._client.cancel(client_order_id))

    def cancel_all(self, strategy_id: str | None = None) -> list[str]:
        return self._run(self._client.cancel_all(strategy_id))

    def kill_switch(
        self, engaged: bool, reason: str = "", strategy_id: str | None = None, account: str | None = None
    ) -> KillSwitchResult:
        return self._run(self._client.kill_switch(engaged, reason, strategy_id, account))

    def risk(self, strategy_id: str | None = None) -> RiskResult:
        return self._run(self._client.risk(strategy_id))

    def fetch_orders(self, strategy_id: str | None = None, open_only: bool = False) -> list[Order]:
        return self._run(self._client.fetch_orders(strategy_id, open_only))

    def fetch_order(self, client_order_id: str) -> tuple[Order, bool]:
        return self._run(self._client.fetch_order(client_order_id))

    def fetch_positions(self, strategy_id: str | None = None, open_only: bool = False) -> list[Position]:
        return self._run(self._client.fetch_positions(strategy_id, open_only))

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
