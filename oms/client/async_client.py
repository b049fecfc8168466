"""The strategy's asyncio API: commands over the ROUTER, state followed live (see `oms.client.follower`).

    client = await AsyncClient.connect("oms-data", strategy_id="mom")
    coid = await client.place("AAPL", "BUY", 10)
    order = await client.wait_for_order(coid, "filled", timeout=10)
    print(client.positions(strategy_id="mom"))
    await client.close()

Commands return once the service has logged the intent durably; what IB then does arrives as events.
`place` makes the client order id on this side, so retrying a `place` that timed out with the same id
(`ServiceUnavailable.client_order_id`) is safe: the service answers a duplicate with the existing order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec
import zmq.asyncio

from events.schema import AlgoPriority, Contract, Envelope, OrderType, Side, TimeInForce
from oms.client.follower import Follower
from oms.client.notify import Notifier
from oms.client.transport import CurveKeys, RequestChannel, read_endpoints
from oms.client.views import StateViews
from oms.client.wire import ServiceError, ServiceUnavailable, decode_events
from oms.ids import new_client_order_id
from oms.protocol import (
    MAX_EVENTS_BATCH,
    CancelAllRequest,
    CancelAllResult,
    CancelRequest,
    CommandResult,
    ContractSpec,
    EventsRequest,
    KillSwitchRequest,
    KillSwitchResult,
    ModifyRequest,
    OrderRequest,
    OrderResult,
    OrdersRequest,
    OrdersResult,
    PingRequest,
    PingResult,
    PlaceRequest,
    PlaceResult,
    PositionsRequest,
    PositionsResult,
    RiskRequest,
    RiskResult,
    StatusRequest,
    StatusResult,
)
from oms.state.model import Order, Position, State
from oms.state.money import exact


class AsyncClient(StateViews):
    """Use `await AsyncClient.connect(...)`; callbacks run in the client's event loop and must not block."""

    def __init__(
        self,
        router: str,
        pub: str,
        *,
        strategy_id: str = "default",
        account: str | None = None,
        curve: CurveKeys | None = None,
        request_timeout: float = 5.0,
        heartbeat_timeout: float = 3.0,
        rcvhwm: int = 0,
        data_dir: Path | None = None,
    ) -> None:
        self.strategy_id = strategy_id
        self.account = account
        self._context = zmq.asyncio.Context()
        self._channel = RequestChannel(self._context, router, curve, request_timeout)
        self._pub = pub
        self._curve = curve
        self._heartbeat_timeout = heartbeat_timeout
        self._rcvhwm = rcvhwm
        self._data_dir = data_dir
        self._follower: Follower | None = None
        self._follow_task: asyncio.Task[None] | None = None
        self._notifier = Notifier()

    @classmethod
    async def connect(
        cls,
        data_dir: str | Path | None = None,
        *,
        router: str | None = None,
        pub: str | None = None,
        follow: bool = True,
        **options: Any,
    ) -> AsyncClient:
        """Connect to the service named by `router`/`pub`, else by DATA_DIR/endpoints.json (default
        ./oms-data). With `follow`, the state is followed live from here on. Raises
        `ServiceUnavailable` when there is no service."""
        source = None
        if router is None or (pub is None and follow):
            source = Path(data_dir or "oms-data")
            endpoints = read_endpoints(source)
            if endpoints.curve_server_key and options.get("curve") is None:
                raise ServiceUnavailable(f"the service at {source} requires CURVE: pass this client's keys")
            router, pub = router or endpoints.router, pub or endpoints.pub
        client = cls(router, pub or "", data_dir=source, **options)
        try:
            await client.ping()
            if follow:
                await client.follow()
        except BaseException:
            await client.close()
            raise
        return client

    # --- following ----------------------------------------------------------------------------------

    async def follow(self) -> None:
        """Subscribe, take a snapshot, and keep the state current in a background task."""
        if self._follower is not None:
            return
        self._follower = Follower(
            self._context,
            self._pub,
            self._channel,
            curve=self._curve,
            heartbeat_timeout=self._heartbeat_timeout,
            rcvhwm=self._rcvhwm,
            data_dir=self._data_dir,
            on_applied=self._notifier.applied,
            on_resync=self._notifier.resynced,
            on_connection=self._notifier.connection,
        )
        await self._follower.start()
        self._follow_task = asyncio.get_running_loop().create_task(self._follower.run())

    @property
    def state(self) -> State:
        """The followed state (owned by the client: read it, never change it)."""
        if self._follower is None or self._follower.state is None:
            raise RuntimeError("not following: connect with follow=True")
        return self._follower.state

    @property
    def seq(self) -> int:
        """The seq of the last event applied to `state`."""
        return self._follower.seq if self._follower else 0

    @property
    def repaired(self) -> int:
        """How many events were fetched over the ROUTER to fill gaps in what PUB delivered."""
        return self._follower.repaired if self._follower else 0

    @property
    def resyncs(self) -> int:
        """How many snapshots were taken (1 at the start, one more per return of a silent service)."""
        return self._follower.resyncs if self._follower else 0

    @property
    def connected(self) -> bool:
        """False while the service is silent for longer than the heartbeat timeout."""
        return self._follower is not None and self._follower.connected

    # --- commands and queries ----------------------------------------------------------------------

    async def ping(self, timeout: float | None = None) -> PingResult:
        return (await self._channel.request(PingRequest(), timeout)).result_as(PingResult)

    async def status(self) -> StatusResult:
        """The service's own account of itself: IB connection, journal seqs, subscribers (`oms status`)."""
        return (await self._channel.request(StatusRequest())).result_as(StatusResult)

    @property
    def router(self) -> str:
        return self._channel.endpoint

    @property
    def pub(self) -> str:
        return self._pub

    async def place(
        self,
        contract: str | Contract | ContractSpec,
        side: Side,
        quantity: Decimal | float | int | str,
        *,
        limit_price: float | None = None,
        stop_price: float | None = None,
        order_type: OrderType | None = None,
        tif: TimeInForce = "DAY",
        strategy_id: str | None = None,
        account: str | None = None,
        client_order_id: str | None = None,
        outside_rth: bool = False,
        parent_client_order_id: str | None = None,
        transmit: bool = True,
        trailing_amount: float | None = None,
        trailing_percent: float | None = None,
        limit_offset: float | None = None,
        touch_price: float | None = None,
        good_till: str | datetime | None = None,
        oca_group: str = "",
        oca_type: Literal[1, 2, 3] | None = None,
        algo: Literal["Adaptive"] | None = None,
        algo_priority: AlgoPriority = "",
    ) -> str:
        """Place an order; returns its client order id. The order type follows from the prices given
        (MKT, LMT, STP, STP LMT) unless named (TRAIL, TRAIL LIMIT, MIT, LIT, MOC, LOC: docs/protocol.md).
        `good_till` (a GTD order's end) is an aware datetime or ISO 8601 text with its offset."""
        strategy = strategy_id or self.strategy_id
        coid = client_order_id or new_client_order_id(strategy)
        with _invalid(coid):
            request = PlaceRequest(
                contract=_contract_spec(contract),
                side=side,
                quantity=exact(quantity),
                strategy_id=strategy,
                client_order_id=coid,
                account=account or self.account,
                order_type=order_type or _order_type(limit_price, stop_price),
                limit_price=limit_price,
                stop_price=stop_price,
                tif=tif,
                outside_rth=outside_rth,
                parent_client_order_id=parent_client_order_id,
                transmit=transmit,
                trailing_amount=trailing_amount,
                trailing_percent=trailing_percent,
                limit_offset=limit_offset,
                touch_price=touch_price,
                good_till=_good_till(good_till),
                oca_group=oca_group,
                oca_type=oca_type,
                algo=algo,
                algo_priority=algo_priority,
            )
        try:
            reply = await self._channel.request(request)
        except ServiceUnavailable as exc:
            raise ServiceUnavailable(str(exc), client_order_id=coid) from None
        result = reply.result_as(PlaceResult)
        await self._caught_up(result.seq)
        return result.client_order_id

    async def modify(
        self,
        client_order_id: str,
        *,
        quantity: Decimal | float | int | str | None = None,
        limit_price: float | None = None,
        stop_price: float | None = None,
        trailing_amount: float | None = None,
        trailing_percent: float | None = None,
        limit_offset: float | None = None,
        touch_price: float | None = None,
        good_till: str | datetime | None = None,
    ) -> str:
        """Change what IB lets change for the order's type (docs/protocol.md, "modify")."""
        with _invalid(client_order_id):
            request = ModifyRequest(
                client_order_id=client_order_id,
                quantity=exact(quantity) if quantity is not None else None,
                limit_price=limit_price,
                stop_price=stop_price,
                trailing_amount=trailing_amount,
                trailing_percent=trailing_percent,
                limit_offset=limit_offset,
                touch_price=touch_price,
                good_till=_good_till(good_till),
            )
        result = (await self._channel.request(request)).result_as(CommandResult)
        await self._caught_up(result.seq)
        return result.client_order_id

    async def cancel(self, client_order_id: str) -> str:
        reply = await self._channel.request(CancelRequest(client_order_id=client_order_id))
        result = reply.result_as(CommandResult)
        await self._caught_up(result.seq)
        return result.client_order_id

    async def cancel_all(self, strategy_id: str | None = None) -> list[str]:
        """Cancel every working order (of one strategy if given); returns the client order ids."""
        reply = await self._channel.request(CancelAllRequest(strategy_id=strategy_id))
        result = reply.result_as(CancelAllResult)
        await self._caught_up(result.seq)
        return result.client_order_ids

    async def kill_switch(
        self, engaged: bool, reason: str = "", strategy_id: str | None = None, account: str | None = None
    ) -> KillSwitchResult:
        """For everything, or only for one strategy or one account."""
        request = KillSwitchRequest(engaged=engaged, reason=reason, strategy_id=strategy_id, account=account)
        reply = await self._channel.request(request)
        return reply.result_as(KillSwitchResult)

    async def risk(self, strategy_id: str | None = None) -> RiskResult:
        """Every limit with its use and headroom, per strategy and per account (`oms risk`)."""
        reply = await self._channel.request(RiskRequest(strategy_id=strategy_id))
        return reply.result_as(RiskResult)

    async def fetch_events(
        self, from_seq: int = 1, limit: int = MAX_EVENTS_BATCH
    ) -> tuple[list[Envelope], int]:
        """Logged envelopes from `from_seq` (at most `limit`) and the service's last seq: the history
        before the snapshot a follower started from (for charts, audits)."""
        reply = await self._channel.request(EventsRequest(from_seq=from_seq, limit=limit))
        return decode_events(reply)

    async def fetch_orders(self, strategy_id: str | None = None, open_only: bool = False) -> list[Order]:
        """Ask the service (no following needed): what `oms orders` shows."""
        reply = await self._channel.request(OrdersRequest(strategy_id=strategy_id, open_only=open_only))
        return msgspec.convert(reply.result_as(OrdersResult).orders, list[Order])

    async def fetch_order(self, client_order_id: str) -> tuple[Order, bool]:
        """Ask the service for one order, also one finished long ago and retired from the live state
        (then rebuilt from the journal): (the order, whether it is retired). `unknown_order` if none."""
        reply = await self._channel.request(OrderRequest(client_order_id=client_order_id))
        result = reply.result_as(OrderResult)
        return msgspec.convert(result.order, Order), result.retired

    async def fetch_positions(
        self, strategy_id: str | None = None, open_only: bool = False
    ) -> list[Position]:
        """Ask the service: account positions, or one strategy's view of them."""
        reply = await self._channel.request(PositionsRequest(strategy_id=strategy_id, open_only=open_only))
        return msgspec.convert(reply.result_as(PositionsResult).positions, list[Position])

    async def _caught_up(self, seq: int) -> None:
        """Let the follower reach `seq` so a read right after a command sees its intent (bounded wait)."""
        if self._follower is None or not self.connected:
            return
        with contextlib.suppress(TimeoutError):  # the follower will get there; the command succeeded
            await self._notifier.wait(lambda: self.seq >= seq, self._channel.timeout)

    async def close(self) -> None:
        if self._follow_task is not None:
            self._follow_task.cancel()
            await asyncio.gather(self._follow_task, return_exceptions=True)
        if self._follower is not None:
            self._follower.close()
        self._channel.close()
        self._context.term()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@contextlib.contextmanager
def _invalid(client_order_id: str) -> Iterator[None]:
    """A request this library cannot even make (a quantity or price beyond its bound: the request's own
    check, oms.protocol.check_bounds) is refused here as the service refuses it: ServiceError `invalid`."""
    try:
        yield
    except ValueError as exc:
        raise ServiceError("invalid", str(exc), client_order_id=client_order_id) from None


def _contract_spec(contract: str | Contract | ContractSpec) -> ContractSpec:
    if isinstance(contract, ContractSpec):
        return contract
    if isinstance(contract, str):
        return ContractSpec(symbol=contract)
    return msgspec.convert(msgspec.to_builtins(contract), ContractSpec)


def _good_till(value: str | datetime | None) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("good_till needs its zone: give an aware datetime")
        return value.isoformat()
    return value or ""


def _order_type(limit_price: float | None, stop_price: float | None) -> OrderType:
    if stop_price is not None:
        return "STP LMT" if limit_price is not None else "STP"
    return "LMT" if limit_price is not None else "MKT"
