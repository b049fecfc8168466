"""IBAdapter: one IB connection. Callbacks in (as events, through the service's sink), commands out,
reconnect with backoff, and a reconciliation after every (re)connect.

The sink is synchronous: the service appends, folds and publishes before it returns, so the state the
adapter reads back (`state_provider`) already holds every event it emitted. The adapter never writes
files. `master_client=True` connects as client id 0, the one client IB binds orders placed in TWS to
(the libraries send reqAutoOpenOrders(True) for it), so those orders arrive live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

import msgspec

from adapters.ib import normalize, outbound, timezones
from adapters.ib.backoff import Backoff
from adapters.ib.clientlib import ClientLib, load
from adapters.ib.errors import CLIENT_ID_IN_USE, LINK_STATE, client_id_in_use_message, quiet_expected_codes
from adapters.ib.hooks import CallbackHooks
from adapters.ib.pacing import Pacing, TokenBucket
from adapters.ib.reconcile import LogView, NewFacts, position_mismatches
from adapters.ib.refdata import ContractInfo, IBReferenceData, ReferenceDataError
from adapters.ib.retention import Release, Retention, release
from adapters.ib.wire import WireRecorder
from events.schema import (
    BrokerError,
    ConnectionChanged,
    ConnectionState,
    Contract,
    Event,
    ModifyRequested,
    OrderRequested,
    OrderSent,
    ReconciliationFinished,
    ReconciliationStarted,
)
from oms.service.risk import UnknownContract
from oms.state.model import State, initial_state
from oms.state.money import exact

log = logging.getLogger(__name__)

Sink = Callable[[Event], None]


class ClientIdInUse(ConnectionError):
    """TWS refused the client id (error 326): another connection holds it."""


class IBAdapter:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 7497,
        client_id: int = 1,
        sink: Sink | None = None,
        state_provider: Callable[[], State] = initial_state,
        library: str = "ib_async",
        *,
        backoff: Backoff | None = None,
        reconnect: Backoff | None = None,
        pacing: Pacing | None = None,
        request_timeout: float = 10.0,
        all_open_orders: bool = True,
        tws_timezone: str | None = None,
        master_client: bool = False,
        wire: WireRecorder | None = None,
    ) -> None:
        if tws_timezone is not None and timezones.zone(tws_timezone) is None:
            raise ValueError(f"unknown time zone {tws_timezone!r}; name it as IANA does: 'America/New_York'")
        self.host, self.port = host, port
        self.client_id = 0 if master_client else client_id
        self.master_client = master_client
        self.lib: ClientLib = load(library)
        quiet_expected_codes(library)
        self.backoff = backoff or Backoff()
        self.reconnect_backoff = reconnect or Backoff(attempts=0)
        self.request_timeout = request_timeout
        self.all_open_orders = all_open_orders
        self.emitted = 0
        self.connect_attempts = 0
        self.connect_timeout = 10.0
        self._sink = sink or (lambda _event: None)
        self._log = LogView(state_provider)
        self._facts = NewFacts(self._log)
        self.pacer = TokenBucket(pacing)
        self._sync_from: int | None = None  # `emitted` when the open ReconciliationStarted was logged
        self._ready = False  # connected (the API started and the start-up sync ended): commands may go out
        self._connecting = False
        self._reason = "connect"
        self._closing = False
        self._sessions = 0
        self._refused: str = ""  # why the last connection attempt was refused before the API started
        self._refusal: asyncio.Future[str] | None = None  # resolved if the socket closes while connecting
        self._order_ids: dict[str, int] = {}  # working orders of this session (retention.py says until when)
        self._requests: dict[str, OrderRequested] = {}
        self._retention = Retention(self.client_id)
        self._reconcile_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.ib: Any = self.lib.IB()
        self.ib.RaiseRequestErrors = True  # a failed request must raise, never look like an empty answer
        self._timezone_override = tws_timezone
        self._hooks = CallbackHooks(self._on_callback, tws_timezone or "UTC")
        self._hooks.install(self.ib.wrapper, self.ib.client.decoder)
        self._handshake = timezones.HandshakeReader()
        self.ib.client.conn.hasData += self._handshake.feed
        self.wire = wire
        if wire is not None:
            meta = {"host": host, "port": port, "client_id": self.client_id, "library": library}
            wire.tap(self.ib.client.conn, meta | {"library_version": self.lib.version})
        self.reference = IBReferenceData(self.ib, self.lib, self.pacer, request_timeout)
        self.ib.client.apiStart += self._on_api_start
        self.ib.client.apiError += self._on_api_error
        self.ib.disconnectedEvent += self._on_disconnected

    # -- connection ---------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ready and self.ib.isConnected()

    @property
    def tws_timezone(self) -> str:
        """The zone of execution times that name none: the override, else what the handshake said."""
        return self._hooks.tws_timezone

    async def connect(self, timeout: float = 10.0) -> None:
        """Connect (retrying with backoff), then reconcile. Raises ClientIdInUse at once on error 326."""
        self._closing = False
        self.connect_timeout = timeout
        await self._connect_with(self.backoff, "connect", retry_refused=False)

    async def disconnect(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        was_ready, self._ready = self._ready, False
        self.ib.disconnect()
        if was_ready:
            self._connection("disconnected", "closed by the service")
        if self.wire is not None:
            self.wire.close()  # fsynced; a later connect opens a new segment

    async def _connect_with(self, backoff: Backoff, reason: str, retry_refused: bool) -> None:
        self._reason = reason
        delays = backoff.delays()
        attempt = 0
        while True:
            attempt += 1
            self.connect_attempts += 1
            try:
                await self._connect_once(self.connect_timeout)
                break
            except ClientIdInUse:
                if not retry_refused:
                    raise
                last: BaseException = ConnectionError(self._refused)
            except (OSError, TimeoutError, ConnectionError) as exc:
                last = exc
            delay = next(delays, None)
            if delay is None or self._closing:
                raise ConnectionError(
                    f"could not connect to {self.host}:{self.port} ({attempt} attempts): {last!r}"
                )
            log.warning(
                "connection attempt %d to %s:%d failed (%r); retrying in %.2fs",
                attempt,
                self.host,
                self.port,
                last,
                delay,
            )
            await asyncio.sleep(delay)
        await self.reconcile(reason)
        self._subscribe_pnl()

    def _subscribe_pnl(self) -> None:
        """reqPnL for every account of the login: IB's own daily P&L, which the daily loss limit takes
        where it is worse than the service's (subscriptions end with the connection: after each)."""
        for account in self.ib.client.getAccounts():
            if (account, "") not in self.ib.wrapper.pnlKey2ReqId:
                self.ib.reqPnL(account)

    async def _resubscribe_account(self) -> None:
        """After 1101: what connectAsync subscribed (account updates, per-account updates) and reqPnL
        again. The library keeps its reqPnL map, which would make reqPnL a no-op: cancel first."""
        accounts = self.ib.client.getAccounts()
        for account in accounts:
            if (account, "") in self.ib.wrapper.pnlKey2ReqId:
                self.ib.cancelPnL(account)
        self._subscribe_pnl()
        if len(accounts) == 1:
            await self.ib.reqAccountUpdatesAsync(accounts[0])
        if len(accounts) <= self.ib.MaxSyncedSubAccounts:
            for account in accounts:
                await self.ib.reqAccountUpdatesMultiAsync(account)

    async def _connect_once(self, timeout: float) -> None:
        self._refused = ""
        self._connecting = True
        self._handshake.reset()
        refused: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._refusal = refused
        connecting = asyncio.ensure_future(
            self.ib.connectAsync(self.host, self.port, clientId=self.client_id, timeout=timeout)
        )
        try:
            await asyncio.wait({connecting, refused}, return_when=asyncio.FIRST_COMPLETED)
            if not connecting.done():
                connecting.cancel()
                with contextlib.suppress(BaseException):
                    await connecting
                self.ib.disconnect()
                raise ConnectionError(refused.result())
            connecting.result()
            self._ready = True
        except BaseException as exc:
            if self._sync_from is not None:
                self._close_sync(None, None, None, [f"connection failed while synchronizing: {exc!r}"])
            if self._refused:
                self._connection("disconnected", self._refused)
                raise ClientIdInUse(self._refused) from None
            raise
        finally:
            self._connecting = False
            refused.cancel()

    def _on_api_start(self) -> None:
        self._sessions += 1
        client = self.ib.client
        conn_time = self._handshake.conn_time
        zone = self._timezone_override or timezones.zone_of_connect_time(conn_time) or "UTC"
        self._hooks.tws_timezone = zone
        session = "" if self._sessions == 1 else f"reconnected (session {self._sessions}); "
        self._connection(
            "connected",
            f"{session}TWS time {conn_time!r}: execution times without a zone are read in {zone}",
            server_version=client.serverVersion(),
            accounts=tuple(client.getAccounts()),
        )
        self._open_sync(self._reason)  # the client's own start-up sync is part of the reconciliation

    def _on_api_error(self, message: str) -> None:
        refusal = self._refusal
        if refusal is not None and not refusal.done() and self._connecting:
            refusal.set_result(message)

    def _on_disconnected(self) -> None:
        self.reference.reset()
        if self._closing or self._connecting or not self._ready:
            return
        self._ready = False
        self._connection("lost", "connection to TWS closed")
        self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        try:
            await self._connect_with(self.reconnect_backoff, "reconnect", retry_refused=True)
        except ConnectionError as exc:  # attempts exhausted (only when `reconnect.attempts` is set)
            self._connection("disconnected", str(exc))

    def _connection(self, state: ConnectionState, detail: str, **extra: Any) -> None:
        self._emit(
            ConnectionChanged(
                state=state, host=self.host, port=self.port, client_id=self.client_id, detail=detail, **extra
            )
        )

    # -- callbacks ----------------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self.emitted += 1
        self._sink(event)

    def _on_callback(self, event: Event) -> None:
        if self._facts.admit(event, self._sync_from is not None):
            self._emit(event)
        if isinstance(event, BrokerError):
            self._on_error(event)
        done = self._retention.observe(event)
        if done is not None:
            asyncio.get_running_loop().call_soon(self._release, done)  # once the library has handled it

    def _release(self, done: Release) -> None:
        """Let go of a final order's objects, the library's and ours, so memory follows the working
        orders. The journal has every fact; a later callback about the order is still logged."""
        release(self.ib.wrapper, done)
        self._order_ids.pop(done.client_order_id, None)
        self._requests.pop(done.client_order_id, None)

    def kept(self) -> dict[str, int]:
        """How many per-order objects are held now (the library's caches, ours): the working orders'
        only, once the finished ones are released. For the tests and the soak benchmark."""
        wrapper = self.ib.wrapper
        return {
            "trades": len(wrapper.trades),
            "perm_ids": len(wrapper.permId2Trade),
            "fills": len(wrapper.fills),
            "orders": len(self._retention.kept()),
            "requests": len(self._requests),
            "order_ids": len(self._order_ids),
        }

    def _on_error(self, error: BrokerError) -> None:
        if error.code == CLIENT_ID_IN_USE:
            self._refused = client_id_in_use_message(self.client_id)
        link = LINK_STATE.get(error.code)
        if link is None:
            return
        self._connection(link, f"{error.code}: {error.message}")
        if link == "restored_data_lost" and self._ready:
            # IB (message codes, 1101): market and account data subscriptions must be resubmitted
            self._spawn(self.reference.resubscribe())
            self._spawn(self._resubscribe_account())
        if link in ("restored", "restored_data_lost") and self._ready and self._sync_from is None:
            self._spawn(self.reconcile(link))  # (a connect in progress reconciles anyway)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("IB adapter task failed", exc_info=task.exception())

    # -- reconciliation -----------------------------------------------------------------------------

    async def reconcile(self, reason: str) -> ReconciliationFinished:
        """Ask IB for open orders, executions and positions; log what is new and each position
        mismatch. A request that failed or timed out is reported (ok=False), never read as empty."""
        async with self._reconcile_lock:
            if self._sync_from is None:
                self._open_sync(reason)
            problems: list[str] = []
            orders_req = self.ib.reqAllOpenOrdersAsync if self.all_open_orders else self.ib.reqOpenOrdersAsync
            orders = await self._ask("open orders", orders_req, problems)
            await self._ask("completed orders", lambda: self.ib.reqCompletedOrdersAsync(False), problems)
            executions = await self._ask(
                "executions", lambda: self.ib.reqExecutionsAsync(self.lib.ExecutionFilter()), problems
            )
            positions = await self._ask("positions", self.ib.reqPositionsAsync, problems)
            if executions is not None and positions is not None:
                broker = [normalize.position(p.account, p.contract, p.position, p.avgCost) for p in positions]
                for mismatch in position_mismatches(broker, self._log.positions()):
                    self._emit(mismatch)
            else:
                problems.append("positions not compared")
            return self._close_sync(orders, executions, positions, problems)

    def _open_sync(self, reason: str) -> None:
        self._emit(ReconciliationStarted(reason=reason))
        self._sync_from = self.emitted

    def _close_sync(
        self,
        orders: list[Any] | None,
        executions: list[Any] | None,
        positions: list[Any] | None,
        problems: list[str],
    ) -> ReconciliationFinished:
        finished = ReconciliationFinished(
            orders=len(orders or ()),
            executions=len(executions or ()),
            positions=len(positions or ()),
            new_events=self.emitted - (self._sync_from or self.emitted),
            ok=not problems,
            detail="; ".join(problems),
        )
        self._sync_from = None
        self._emit(finished)
        self._facts.sync_closed()
        return finished

    async def _ask(self, name: str, request: Callable[[], Awaitable[Any]], problems: list[str]) -> Any:
        try:
            await self.pacer.acquire()
            return await asyncio.wait_for(request(), self.request_timeout)
        except TimeoutError:
            problems.append(f"{name}: no answer within {self.request_timeout}s")
        except Exception as exc:  # ConnectionError, the library's RequestError...
            problems.append(f"{name}: {exc!r}")
        return None

    # -- commands -----------------------------------------------------------------------------------

    async def place(self, req: OrderRequested) -> int:
        """Send one order; OrderSent goes through the sink before the request leaves."""
        parent_id = self.order_id_of(req.parent_client_order_id) if req.parent_client_order_id else 0
        self._require_connected()
        await self.pacer.acquire()
        order_id = self.ib.client.getReqId()
        self._emit(
            OrderSent(client_order_id=req.client_order_id, order_id=order_id, client_id=self.client_id)
        )
        self._order_ids[req.client_order_id] = order_id
        self._requests[req.client_order_id] = req
        self._retention.sent(order_id, req.client_order_id)
        order = outbound.ib_order(self.lib, req, order_id, parent_id, req.transmit)
        self.ib.placeOrder(outbound.ib_contract(self.lib, req.contract), order)
        return order_id

    async def place_bracket(self, orders: Sequence[OrderRequested]) -> list[int]:
        """A parent and its children: transmit=False on all but the last, so none works before all
        are in."""
        last = len(orders) - 1
        return [
            await self.place(msgspec.structs.replace(r, transmit=i == last)) for i, r in enumerate(orders)
        ]

    async def modify(self, client_order_id: str, order_id: int, req: ModifyRequested) -> None:
        """Re-place the same orderId with the new quantity / prices."""
        new = outbound.modified(self._request_of(client_order_id), req)
        parent_id = self.order_id_of(new.parent_client_order_id) if new.parent_client_order_id else 0
        self._require_connected()
        await self.pacer.acquire()
        order = outbound.ib_order(self.lib, new, order_id, parent_id)
        self.ib.client.placeOrder(order_id, outbound.ib_contract(self.lib, new.contract), order)
        self._requests[client_order_id] = new

    async def cancel(self, order_id: int) -> None:
        self._require_connected()
        await self.pacer.acquire()
        self.ib.client.cancelOrder(order_id)

    async def cancel_all(self) -> None:
        self._require_connected()
        await self.pacer.acquire()
        self.ib.client.reqGlobalCancel()

    async def describe(self, contract: Contract) -> ContractInfo | None:
        """IB's contract details (conId, multiplier, size increment), for intake and risk; None when IB
        cannot say (not connected, no answer in time). Raises `UnknownContract` when IB says the contract
        names no instrument, or several: the order would get IB's error 200."""
        try:
            return await self.reference.contract_info(contract)
        except ReferenceDataError as exc:
            if exc.code in ("no_contract", "ambiguous_contract"):
                raise UnknownContract(str(exc)) from None
            log.info("no contract details for %s: %s", contract.symbol, exc)
            return None

    async def reference_price(self, contract: Contract) -> Decimal | None:
        """IB's current price for a market order's notional check (its live market data: last, else the
        midpoint, else the close); None when IB has no price for it."""
        try:
            found = await self.reference.reference_price(contract)
        except ReferenceDataError as exc:
            log.info("no reference price for %s: %s", contract.symbol, exc)
            return None
        return exact(found.price)

    def order_id_of(self, client_order_id: str) -> int:
        """IB's orderId for one of our orders: this session's, else the log's."""
        if client_order_id in self._order_ids:
            return self._order_ids[client_order_id]
        order = self._log.order_by_client_id(client_order_id)
        if order is None or not order.order_id:
            raise KeyError(f"no IB orderId known for client order {client_order_id!r}")
        return order.order_id

    def _request_of(self, client_order_id: str) -> OrderRequested:
        if client_order_id in self._requests:
            return self._requests[client_order_id]
        order = self._log.order_by_client_id(client_order_id)
        if order is None:
            raise KeyError(f"unknown client order {client_order_id!r}")
        return outbound.request_of(order)

    def _require_connected(self) -> None:
        if not self.connected:
            raise ConnectionError(f"not connected to IB at {self.host}:{self.port}")
