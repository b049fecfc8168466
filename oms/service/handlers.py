"""Request handlers: one typed request in, one reply out.

Commands follow one rule: decide (pure, oms.service.intake) -> log the intent -> WAIT until it is durable ->
reply -> hand it to the broker. The reply therefore means "recorded, and will be sent": it comes before
IB has answered (the client follows the order's state on PUB). If the broker then fails to send a new
order, an OrderDenied(code="not_sent") is logged, so the order ends `rejected` instead of hanging.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec

from events.lookup import order_events
from events.schema import (
    CancelRequested,
    Contract,
    Envelope,
    Event,
    KillSwitchChanged,
    ModifyRequested,
    OrderDenied,
    OrderRequested,
    kill_scope,
)
from oms.ids import new_client_order_id
from oms.protocol import (
    MAX_EVENTS_BATCH,
    CancelAllRequest,
    CancelAllResult,
    CancelRequest,
    CommandResult,
    ErrorInfo,
    ErrorReply,
    EventsRequest,
    EventsResult,
    KillSwitchRequest,
    KillSwitchResult,
    ModifyRequest,
    OkReply,
    OrderRequest,
    OrderResult,
    OrdersRequest,
    PingRequest,
    PingResult,
    PlaceRequest,
    PlaceResult,
    PositionsRequest,
    Request,
    RiskRequest,
    RiskResult,
    SnapshotRequest,
    StatusRequest,
    StatusResult,
    op_of,
)
from oms.readable import plain
from oms.service import authz, intake, queries, riskview
from oms.service.config import Config
from oms.service.exposure import last_fill_reference
from oms.service.pipeline import Pipeline
from oms.service.risk import Described, Reference, RiskLimits, UnknownContract
from oms.service.riskbook import RiskBook, scope_names, scope_switch
from oms.service.terms import OWN_PRICE
from oms.state.model import Account, Changed, Order, Position
from oms.state.queries import every_order

log = logging.getLogger(__name__)


Reply = OkReply | ErrorReply
COMMANDS = (PlaceRequest, ModifyRequest, CancelRequest, CancelAllRequest, KillSwitchRequest)
CONNECTED = frozenset({"connected", "restored", "restored_data_lost"})
T = TypeVar("T")
REFERENCE_TIMEOUT_S = 2.0  # how long a market order waits for IB's market data before the last fill
VALUING = ("max_notional", "max_position_value", "max_position_pct_nlv", "max_risk_per_trade_pct_nlv")


def _prices(limits: RiskLimits, own: RiskLimits) -> bool:
    """Whether a market order needs a reference price: some limit (the account's or the strategy's
    own) values it."""
    return any(getattr(lim, key) is not None for lim in (limits, own) for key in VALUING)


class Broker(Protocol):
    """What the service needs of the IB adapter (adapters.ib.adapter.IBAdapter)."""

    async def place(self, req: OrderRequested) -> int: ...
    async def modify(self, client_order_id: str, order_id: int, req: ModifyRequested) -> None: ...
    async def cancel(self, order_id: int) -> None: ...
    async def cancel_all(self) -> None: ...
    async def reference_price(self, contract: Contract) -> Decimal | None: ...
    async def describe(self, contract: Contract) -> Described | None: ...


class EventSource(Protocol):
    """Reads logged envelopes back (events.journal.JournalReader)."""

    directory: Path

    def read_payloads(self, from_seq: int = 1) -> Any: ...


class Handlers:
    def __init__(
        self,
        pipeline: Pipeline,
        config: Config,
        reader: EventSource,
        version: str,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.pipeline = pipeline
        self.clock = clock  # the journal's clock: max-age and the risk book compare event times with it
        self.config = config
        self.reader = reader
        self.version = version
        self.broker: Broker | None = None  # set once connected and reconciled: until then, `not_ready`
        self.default_account = config.account
        self.accepting = True  # False from shutdown on: new commands get `not_ready`
        self._tasks: set[asyncio.Task[Any]] = set()
        self._placing: dict[str, asyncio.Future[None]] = {}  # client order id -> done once sent (or not)
        self.status_provider: Callable[[], StatusResult] | None = None  # set by the service
        self.grants = authz.load_grants(config.curve)  # None: no CURVE, every local client trusted
        self.book = RiskBook(config.risk, lambda: pipeline.state, Path(config.data_dir), clock())
        self.book.last_fills = pipeline.last_prices
        self._loss_limits = config.risk.daily_loss_limit is not None or any(
            lim.daily_loss_limit is not None for lim in config.risk.strategies.values()
        )
        self.book.prime()
        pipeline.observers.append(self.after_event)
        self._table: dict[type[Request], Callable[[Any], Coroutine[Any, Any, Any]]] = {
            PingRequest: self.ping,
            SnapshotRequest: self.query,
            PlaceRequest: self.place,
            ModifyRequest: self.modify,
            CancelRequest: self.cancel,
            CancelAllRequest: self.cancel_all,
            OrdersRequest: self.query,
            OrderRequest: self.order,
            PositionsRequest: self.query,
            EventsRequest: self.events,
            KillSwitchRequest: self.kill_switch,
            StatusRequest: self.status,
            RiskRequest: self.risk,
        }

    def not_ready(self) -> str | None:
        """Why commands are refused right now (`not_ready`), or None: they need a connected,
        reconciled IB session (the order would otherwise be logged, then fail to send)."""
        state = self.pipeline.state
        if self.pipeline.failure is not None:
            return f"the journal failed ({self.pipeline.failure}): nothing more can be recorded"
        if self.broker is None:
            return "start-up reconciliation has not finished; retry"
        if not self.accepting:
            return "the service is shutting down"
        if state.connection not in CONNECTED:
            return f"the IB connection is {state.connection}; commands resume once it is back and reconciled"
        if state.reconciling:
            return "reconciling with IB; retry"
        return None

    @property
    def ready(self) -> bool:
        return self.not_ready() is None

    async def handle(self, request: Request, peer: str | None = None) -> Reply:
        """`peer`: the CURVE client's public key (Z85), None without CURVE."""
        op = op_of(request)
        if self.grants is not None and isinstance(request, COMMANDS):
            grant = self.grants.get(peer or "")
            denied = authz.denial(request, grant, self.pipeline.state)
            if denied is not None:
                log.warning("not authorized: %s (%s)", denied, op)
                return ErrorReply(
                    id=request.id, op=op, error=ErrorInfo(code="not_authorized", message=denied)
                )
        if isinstance(request, COMMANDS) and (why := self.not_ready()) is not None:
            return ErrorReply(id=request.id, op=op, error=ErrorInfo(code="not_ready", message=why))
        result = await self._table[type(request)](request)
        if isinstance(result, ErrorInfo):
            return ErrorReply(id=request.id, op=op, error=result)
        return OkReply(id=request.id, op=op, seq=self.pipeline.state.seq, result=result)

    # -- queries ------------------------------------------------------------------------------------

    async def ping(self, _: PingRequest) -> PingResult:
        return PingResult(ready=self.ready, version=self.version)

    async def status(self, _: StatusRequest) -> StatusResult | ErrorInfo:
        if self.status_provider is None:
            return ErrorInfo(code="not_ready", message="the service is starting; retry")
        return self.status_provider()

    async def risk(self, req: RiskRequest) -> RiskResult:
        self.book.now_ns = self.clock()
        return RiskResult(scopes=riskview.standings(self.pipeline.state, self.book, req.strategy_id))

    async def query(self, req: queries.StateQuery) -> queries.StateResult:
        return queries.answer(self.pipeline.state, req)

    async def order(self, req: OrderRequest) -> OrderResult | ErrorInfo:
        """A live order from the state; a retired one rebuilt from its own events in the journal, read
        through the segment indexes in a thread (the loop keeps serving meanwhile)."""
        coid = req.client_order_id
        live = self.pipeline.state.orders.get(coid)
        if live is not None:
            return OrderResult(order=live)
        self.pipeline.drain()  # everything logged is readable
        events = await asyncio.to_thread(order_events, self.reader.directory, coid)
        found = every_order(events).get(coid)
        if found is None:
            return ErrorInfo(code="unknown_order", message=f"no order {coid!r}", client_order_id=coid)
        return OrderResult(order=found, retired=True)

    async def events(self, req: EventsRequest) -> EventsResult:
        self.pipeline.drain()  # everything logged is readable
        last = self.pipeline.journal.last_seq
        limit = min(req.limit, MAX_EVENTS_BATCH)
        batch: list[Any] = []
        for seq, payload in self.reader.read_payloads(req.from_seq):
            if seq > last or len(batch) >= limit:
                break
            batch.append(msgspec.Raw(payload))
        return EventsResult(events=batch, next_seq=req.from_seq + len(batch), last_seq=last)

    # -- commands -----------------------------------------------------------------------------------

    async def place(self, req: PlaceRequest) -> PlaceResult | ErrorInfo:
        state = self.pipeline.state
        coid = req.client_order_id or new_client_order_id(req.strategy_id)
        contract = req.contract.to_contract()
        try:
            described = await self._ask_ib(self._broker().describe(contract), "contract details", contract)
        except UnknownContract as exc:
            return intake.unknown_contract(str(exc), coid)
        reference = None  # valued at the market (risk.order_price); a bracket child under such a parent too
        parent = state.orders.get(req.parent_client_order_id or "")
        at_market = req.order_type not in OWN_PRICE or (
            parent is not None and parent.order_type not in OWN_PRICE
        )
        own = self.book.limits_of(kill_scope(req.strategy_id))  # kept: not made anew per order
        if at_market and _prices(self.config.risk, own):
            reference = await self._reference(contract, described)
        self.book.now_ns = now = self.clock()
        decision = intake.decide_place(
            req,
            state,
            self.config.risk,
            self.default_account,
            coid,
            reference,
            described,
            self.book,
            now,
            own,
        )
        if isinstance(decision, ErrorInfo):
            return decision
        if isinstance(decision, intake.Duplicate):
            return PlaceResult(
                client_order_id=coid, seq=decision.order.created_seq, duplicate=True, order=decision.order
            )
        if isinstance(decision, OrderDenied):
            await self._log(decision)
            return ErrorInfo(
                code="risk_denied", message=decision.reason, reason=decision.code, client_order_id=coid
            )
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._placing[coid] = sent  # from the moment it is logged, a cancel or modify waits for the send
        try:
            env = self.pipeline.append(decision)
            self.book.placed(decision.strategy_id, decision.account)
            await self.pipeline.durable(env.seq)
        except BaseException:
            self._settle(coid, sent)
            raise
        self._send(self._place(decision)).add_done_callback(lambda _: self._settle(coid, sent))
        return PlaceResult(client_order_id=coid, seq=env.seq, order=state.orders.get(coid))

    async def modify(self, req: ModifyRequest) -> CommandResult | ErrorInfo:
        decision = intake.decide_modify(req, self.pipeline.state, self.config.risk, self.clock())
        if isinstance(decision, ErrorInfo):
            return decision
        env = await self._log(decision)
        self._send(self._modify(decision))
        return CommandResult(client_order_id=req.client_order_id, seq=env.seq)

    async def cancel(self, req: CancelRequest) -> CommandResult | ErrorInfo:
        decision = intake.decide_cancel(req, self.pipeline.state, self.clock())
        if isinstance(decision, ErrorInfo):
            return decision
        env = await self._log(decision)
        self._send(self._cancel(decision.client_order_id))
        return CommandResult(client_order_id=req.client_order_id, seq=env.seq)

    async def cancel_all(self, req: CancelAllRequest) -> CancelAllResult:
        ids, seq = await self.cancel_orders(
            intake.cancellable(self.pipeline.state, req.strategy_id), "cancel_all"
        )
        if req.account_wide:  # asked for explicitly: every order of the account, TWS's included
            self._send(self._broker().cancel_all())
        return CancelAllResult(client_order_ids=ids, seq=seq)

    async def kill_switch(self, req: KillSwitchRequest) -> KillSwitchResult:
        """For everything, or for one strategy or account (`strategy_id`, `account`): engaging cancels
        that scope's working orders; an operator's release of a scope also keeps its loss limit from
        engaging it again this session."""
        scoped = bool(req.strategy_id or req.account)
        event = KillSwitchChanged(
            engaged=req.engaged,
            reason=req.reason,
            strategy_id=req.strategy_id or "",
            account=req.account or "",  # never with a strategy_id: the request refuses both
        )
        env = await self._log(event)
        cancelled: list[str] = []
        if not req.engaged and scoped:
            self.book.released(event.scope)
        if req.engaged:
            state = self.pipeline.state
            orders = intake.cancellable(state, req.strategy_id, req.account)
            cancelled, _ = await self.cancel_orders(orders, "kill_switch")
            if req.account_wide and not scoped:  # only when asked: IB's global cancel also ends orders
                self._send(self._broker().cancel_all())  # placed by hand
        return KillSwitchResult(engaged=req.engaged, seq=env.seq, cancelled=cancelled)

    # -- the daily loss limit -----------------------------------------------------------------------

    def after_event(self, env: Envelope, changes: tuple[Changed, ...]) -> None:
        """The pipeline's observer: a step that moved a scope's money past its loss limit engages that
        scope's kill switch and cancels its working orders before any other event or request."""
        self.book.observe(changes)
        if not self._loss_limits or type(env.event) is KillSwitchChanged:
            return
        scopes = set()
        for change in changes:
            if type(change) is Position and change.strategy_id:
                scopes.add(kill_scope(change.strategy_id))
            elif type(change) is Account:
                scopes.add(kill_scope(account=change.account))
        if scopes:
            self.book.now_ns = env.ts
            self.check_losses(scopes)

    def check_losses(self, scopes: set[str] | list[str]) -> None:
        state = self.pipeline.state
        for scope, pnl, limit in self.book.crossed(state, scopes):
            reason = f"daily P&L {pnl:,.2f} reached the daily_loss_limit {plain(limit)}"
            log.warning("%s: %s: kill switch engaged", scope, reason)
            self.pipeline.append(scope_switch(scope, True, reason, "daily_loss_limit"))
            self.book.engaged(scope)
            self.cancel_scope(scope, "daily_loss_limit")

    def cancel_scope(self, scope: str, reason: str) -> list[str]:
        """Log a cancel of each of the scope's working orders now; send them once durable."""
        strategy_id, account = scope_names(scope)
        orders = intake.cancellable(self.pipeline.state, strategy_id or None, account or None)
        seq = self._log_cancels(orders, reason)
        if orders:
            self._send(self._send_cancels(orders, seq))
        return [o.client_order_id for o in orders]

    async def watch_losses(self) -> None:
        """Periodic: new sessions' baselines, loss kills of ended sessions released, IB's prices of
        the positions loss limits watch, and the limits checked against them."""
        if not self._loss_limits or self.pipeline.failure is not None:
            return
        book = self.book
        book.now_ns = self.clock()
        book.prime()
        state = self.pipeline.state
        for scope in book.expired(state):
            self.pipeline.append(scope_switch(scope, False, "a new session began", "session_reset"))
        if self.broker is not None:
            for pos in [p for p in state.strategy_positions.values() if p.quantity]:
                price = await self._ask_ib(self._broker().reference_price(pos.contract), "market data",
                                           pos.contract)  # fmt: skip
                if price is not None and pos.contract.con_id:
                    book.set_quote(pos.contract.con_id, price)
        self.check_losses(book.scopes(self.pipeline.state))

    def cancel_killed(self) -> None:
        """At start-up, once IB is reconciled: a killed scope keeps no working orders."""
        for scope in self.pipeline.state.kill_scopes:
            self.cancel_scope(scope, "kill_switch")

    async def _reference(self, contract: Contract, described: Described | None) -> Reference | None:
        """A market order's reference price: IB's market data for the contract, else the last fill of
        that conId; None when neither exists (the notional check then denies it, see risk.py)."""
        price = await self._ask_ib(self._broker().reference_price(contract), "market data", contract)
        if price is not None:
            return Reference(price, "market data")
        return last_fill_reference(self.pipeline.state, contract, self.pipeline.last_prices, described)

    async def _ask_ib(self, question: Coroutine[Any, Any, T], what: str, contract: Contract) -> T | None:
        """IB's answer, or None when it does not come in time (the checks then fail closed)."""
        try:
            return await asyncio.wait_for(question, REFERENCE_TIMEOUT_S)
        except (TimeoutError, ConnectionError) as exc:
            log.warning("no %s for %s from IB: %s", what, contract.symbol, exc or type(exc).__name__)
            return None

    async def cancel_orders(self, orders: list[Order], reason: str) -> tuple[list[str], int]:
        """Log a CancelRequested per order, wait for the last to be durable, then send the cancels."""
        seq = self._log_cancels(orders, reason)
        await self._send_cancels(orders, seq)
        return [o.client_order_id for o in orders], seq

    def _log_cancels(self, orders: list[Order], reason: str) -> int:
        seq = self.pipeline.state.seq
        for order in orders:
            cancel = CancelRequested(client_order_id=order.client_order_id, reason=reason)
            seq = self.pipeline.append(cancel).seq
        return seq

    async def _send_cancels(self, orders: list[Order], seq: int) -> None:
        await self.pipeline.durable(seq)
        if self.broker is None:  # start-up: sent once IB is reconciled (cancel_killed)
            return
        for order in orders:
            self._send(self._cancel(order.client_order_id))

    def cancel_expired(self) -> None:
        """The max-age sweep (called periodically by the service)."""
        max_age = self.config.risk.max_order_age_s
        if max_age is None or not self.ready:
            return
        orders = intake.expired(self.pipeline.state, self.clock(), max_age)
        if orders:
            self._send(self.cancel_orders(orders, "max_age"))

    # -- plumbing -----------------------------------------------------------------------------------

    async def _log(self, event: Event) -> Any:
        env = self.pipeline.append(event)
        await self.pipeline.durable(env.seq)
        return env

    def _broker(self) -> Broker:
        assert self.broker is not None, "commands are refused until the broker is connected"
        return self.broker

    def _send(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a broker call after the reply; failures are logged, never lost silently."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("broker call failed", exc_info=task.exception())

    def abandon_unsent(self, session_seq: int) -> None:
        """After start-up reconciliation: an order requested in an earlier session that IB never got is
        ended (rejected, code `not_sent`) rather than sent late or twice."""
        for order in intake.unsent(self.pipeline.state, session_seq):
            self.pipeline.append(
                OrderDenied(
                    client_order_id=order.client_order_id,
                    code="not_sent",
                    reason="the service stopped before sending it; not re-sent (place it again)",
                    strategy_id=order.strategy_id,
                )
            )

    async def _place(self, order: OrderRequested) -> None:
        try:
            if order.parent_client_order_id is not None:  # a bracket child needs its parent's orderId
                await self._sent(order.parent_client_order_id)
            await self._broker().place(order)
        except Exception as exc:
            log.exception("placing %s failed", order.client_order_id)
            self.pipeline.append(
                OrderDenied(
                    client_order_id=order.client_order_id,
                    code="not_sent",
                    reason=f"the broker did not take the order: {type(exc).__name__}: {exc}",
                    strategy_id=order.strategy_id,
                    request=order,
                )
            )

    async def _sent(self, client_order_id: str) -> Order:
        """The order once its place() (if still pending) has handed it to IB, so its orderId is known."""
        placing = self._placing.get(client_order_id)
        if placing is not None:
            await asyncio.shield(placing)
        return self.pipeline.state.orders[client_order_id]

    def _settle(self, client_order_id: str, sent: asyncio.Future[None]) -> None:
        self._placing.pop(client_order_id, None)
        if not sent.done():
            sent.set_result(None)

    async def _modify(self, req: ModifyRequested) -> None:
        order = await self._sent(req.client_order_id)
        await self._broker().modify(req.client_order_id, order.order_id, req)

    async def _cancel(self, client_order_id: str) -> None:
        order = await self._sent(client_order_id)
        if order.order_id:
            await self._broker().cancel(order.order_id)
        else:
            log.warning("cancel of %s: no IB orderId yet (never sent); nothing to send", client_order_id)

    async def drain_tasks(self) -> None:
        """Let broker calls already handed out finish (shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
