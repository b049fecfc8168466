"""`oms check --acceptance`: a scripted scenario against the user's own paper account, so a user can
check in one command that their TWS / IB Gateway does what this project expects, and send us the wire
capture when it does not.

Paper only: a live port (7496, 4001) is refused before connecting and a non-`DU` account right after
(before anything is placed), whatever the flags. Orders are far from the market (limit buys at half the
reference price) and one share; fills happen only with `allow_fills`. Each step is reported as it ends:
passed with what IB said, or what IB answered instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, cast

from adapters.ib import outbound
from adapters.ib.adapter import Backoff, IBAdapter
from adapters.ib.wire import WireRecorder
from events.schema import (
    AnyEvent,
    BrokerError,
    ConnectionChanged,
    Contract,
    Envelope,
    Event,
    ModifyRequested,
    OrderRequested,
    ReconciliationFinished,
)
from oms.state.fold import step as fold_step
from oms.state.model import Order, State, initial_state
from oms.state.money import exact

LIVE_PORTS = (7496, 4001)  # TWS live, IB Gateway live (IB's defaults)
PAPER_PREFIX = "DU"
STOCK = Contract(symbol="AAPL")
FUTURE = Contract(symbol="ES", sec_type="FUT", exchange="CME")
FOREX = Contract(symbol="EUR", sec_type="CASH", exchange="IDEALPRO")
FALLBACK_FAR_PRICE = Decimal("1.00")  # when IB gives no price: a limit buy no stock will fill at
QUIET = ("information", "warning", "connectivity")
STEPS = (
    "connect",
    "server version",
    "accounts",
    "contract details (stock)",
    "contract details (future)",
    "contract details (forex)",
    "LMT placed",
    "LMT modified",
    "LMT cancelled",
    "bracket placed",
    "bracket cancelled",
    "reconciliation after disconnect",
    "MKT buy 1 share",
    "MKT sell 1 share",
)  # the report's lines, in order: every run prints each once


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the report: passed True / False, or None when skipped."""

    name: str
    passed: bool | None
    detail: str

    def line(self) -> str:
        mark = "skip" if self.passed is None else ("ok" if self.passed else "FAILED")
        return f"{mark:<7}{self.name:<32}{self.detail}"


class Refused(Exception):
    """Not a paper account or port: nothing is sent."""


def refuse_port(port: int) -> None:
    if port in LIVE_PORTS:
        raise Refused(
            f"port {port} is a live-trading port: the acceptance check runs against paper accounts only "
            "(TWS paper 7497, IB Gateway paper 4002)"
        )


class _Log:
    """The adapter's sink: every event kept and folded, as the service would (minus the journal)."""

    def __init__(self) -> None:
        self.state: State = initial_state()
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.state, _ = fold_step(
            self.state, Envelope(self.state.seq + 1, time.time_ns(), cast(AnyEvent, event))
        )


class Acceptance:
    def __init__(
        self,
        host: str,
        port: int,
        client_id: int,
        library: str,
        timeout: float,
        allow_fills: bool,
        wire: WireRecorder | None,
        report: Callable[[Step], None],
    ) -> None:
        self.log = _Log()
        self.timeout, self.allow_fills, self._report = timeout, allow_fills, report
        self.adapter = IBAdapter(
            host, port, client_id, sink=self.log, state_provider=lambda: self.log.state, library=library,
            backoff=Backoff(attempts=1), request_timeout=timeout, wire=wire,
        )  # fmt: skip
        self.steps: list[Step] = []
        self.account = ""
        self._tag = time.strftime("%H%M%S")
        self._seen = 0  # events already looked at for IB's answers

    async def run(self) -> list[Step]:
        """Every step in order; stops early only when there is no connection or no paper account."""
        refuse_port(self.adapter.port)
        try:
            if not await self._connect():
                reported = {s.name for s in self.steps}
                for name in STEPS:
                    if name not in reported:
                        self._done(name, None, "not tried: connect failed")
                return self.steps
            await self._contracts()
            await self._limit_order()
            await self._bracket()
            await self._reconnect()
            await self._fills()
        finally:
            await self.adapter.disconnect()
        return self.steps

    # -- steps ------------------------------------------------------------------------------------

    async def _connect(self) -> bool:
        try:
            await self.adapter.connect(timeout=self.timeout)
        except Exception as exc:
            self._done("connect", False, str(exc))
            return False
        connected = next(e for e in self.log.events if isinstance(e, ConnectionChanged))
        self._done(
            "connect", True, f"{self.adapter.host}:{self.adapter.port} client {self.adapter.client_id}"
        )
        self._done("server version", True, str(connected.server_version))
        live = [a for a in connected.accounts if not a.startswith(PAPER_PREFIX)]
        if not connected.accounts or live:
            self._done("accounts", False, f"not paper: {', '.join(live) or 'none reported'}")
            raise Refused(
                f"account(s) {', '.join(live) or '(none)'} are not paper (DU...) accounts: the acceptance "
                "check places orders, so it runs on paper accounts only"
            )
        self.account = connected.accounts[0]
        self._done("accounts", True, ", ".join(connected.accounts))
        return True

    async def _contracts(self) -> None:
        for label, contract in (("stock", STOCK), ("future", FUTURE), ("forex", FOREX)):
            name = f"contract details ({label})"
            await self.adapter.pacer.acquire()  # IB's message rate, as the adapter's own requests
            try:
                found = await asyncio.wait_for(
                    self.adapter.ib.reqContractDetailsAsync(outbound.ib_contract(self.adapter.lib, contract)),
                    self.timeout,
                )
            except Exception as exc:
                self._done(name, False, self._answer(repr(exc)))
                continue
            if not found:
                self._done(name, False, self._answer("no contract"))
                continue
            first = min(found, key=lambda d: d.contract.lastTradeDateOrContractMonth)
            c, tick = first.contract, exact(first.minTick)
            more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
            self._done(name, True, f"{c.localSymbol or c.symbol} conId {c.conId} min tick {tick:f}{more}")

    async def _limit_order(self) -> None:
        price = await self._far_price()
        coid = f"acc-lmt-{self._tag}"
        req = self._request(coid, "BUY", "LMT", limit_price=float(price))
        if not await self._place("LMT placed", [req], f"BUY 1 {STOCK.symbol} LMT {price}"):
            self._skipped("LMT modified", "LMT cancelled", because="LMT placed")
            return
        lower = float((price * Decimal("0.9")).quantize(Decimal("0.01"), rounding=ROUND_DOWN))
        change = ModifyRequested(client_order_id=coid, limit_price=lower)
        self.log(change)
        await self._act(
            "LMT modified",
            lambda: self.adapter.modify(coid, self._order(coid).order_id, change),
            lambda: self._order(coid).limit_price == lower or self._order(coid).modify_rejected != "",
            lambda: self._order(coid).limit_price == lower,
            f"limit {lower}",
        )
        await self._cancel("LMT cancelled", coid, [coid])

    async def _bracket(self) -> None:
        price = await self._far_price()
        parent = f"acc-br-{self._tag}"
        reqs = [
            self._request(parent, "BUY", "LMT", limit_price=float(price)),
            self._request(f"{parent}-tp", "SELL", "LMT", limit_price=float(price * 3), parent=parent),
            self._request(f"{parent}-sl", "SELL", "STP", stop_price=float(price / 2), parent=parent),
        ]
        if await self._place("bracket placed", reqs, f"parent LMT {price}, take-profit and stop"):
            await self._cancel("bracket cancelled", parent, [r.client_order_id for r in reqs])
        else:
            self._skipped("bracket cancelled", because="bracket placed")

    async def _reconnect(self) -> None:
        before = {c: o.status for c, o in self.log.state.orders.items()}
        finished = len([e for e in self.log.events if isinstance(e, ReconciliationFinished)])
        await self.adapter.disconnect()
        try:
            await self.adapter.connect(timeout=self.timeout)
        except Exception as exc:
            self._done("reconciliation after disconnect", False, str(exc))
            return
        syncs = [e for e in self.log.events if isinstance(e, ReconciliationFinished)][finished:]
        after = {c: o.status for c, o in self.log.state.orders.items() if c in before}
        ok = bool(syncs) and syncs[-1].ok and after == before
        detail = (
            f"{syncs[-1].orders} open orders, {syncs[-1].executions} executions, {syncs[-1].positions} "
            f"positions; our {len(before)} orders unchanged"
            if ok
            else self._answer(syncs[-1].detail if syncs else "no reconciliation")
        )
        self._done("reconciliation after disconnect", ok, detail)

    async def _fills(self) -> None:
        if not self.allow_fills:
            for name in ("MKT buy 1 share", "MKT sell 1 share"):
                self._done(name, None, "pass --allow-fills to trade one share")
            return
        buy = self._request(f"acc-buy-{self._tag}", "BUY", "MKT")
        if await self._place("MKT buy 1 share", [buy], "", fill=True):
            sell = self._request(f"acc-sell-{self._tag}", "SELL", "MKT")
            await self._place("MKT sell 1 share", [sell], "", fill=True)
        else:
            self._skipped("MKT sell 1 share", because="MKT buy 1 share")

    # -- helpers ----------------------------------------------------------------------------------

    async def _far_price(self) -> Decimal:
        """Half IB's price of the stock (a limit buy that will not fill), or $1 when IB has none."""
        found = await self.adapter.reference_price(STOCK)
        if found is None:
            return FALLBACK_FAR_PRICE
        return max((found / 2).quantize(Decimal("0.01"), rounding=ROUND_DOWN), FALLBACK_FAR_PRICE)

    def _request(
        self,
        coid: str,
        side: str,
        order_type: str,
        limit_price: float | None = None,
        stop_price: float | None = None,
        parent: str | None = None,
    ) -> OrderRequested:
        return OrderRequested(
            client_order_id=coid, strategy_id="acceptance", account=self.account, contract=STOCK,
            side=side, quantity=Decimal(1), order_type=order_type, limit_price=limit_price,  # type: ignore[arg-type]
            stop_price=stop_price, parent_client_order_id=parent,
        )  # fmt: skip

    async def _place(self, name: str, reqs: list[OrderRequested], what: str, fill: bool = False) -> bool:
        for req in reqs:
            self.log(req)
        coids = [r.client_order_id for r in reqs]

        def place() -> Awaitable[Any]:
            return self.adapter.place_bracket(reqs) if len(reqs) > 1 else self.adapter.place(reqs[0])

        def settled(o: Order) -> bool:
            if fill:
                return o.status in ("filled", "cancelled", "rejected", "inactive") and (
                    o.status != "filled" or bool(o.commission)
                )
            return o.status != "pending"

        def passed() -> bool:
            orders = [self._order(c) for c in coids]
            return all(o.status == ("filled" if fill else "submitted") for o in orders)

        def detail() -> str:
            if not fill:
                return what
            o = self._order(coids[0])
            money = ", ".join(f"{v} {k}" for k, v in o.commission.items())
            return f"filled {o.filled} @ {o.avg_fill_price.normalize():f}, commission {money}"

        return await self._act(
            name, place, lambda: all(settled(self._order(c)) for c in coids), passed, detail
        )

    async def _cancel(self, name: str, coid: str, coids: list[str]) -> None:
        await self._act(
            name,
            lambda: self.adapter.cancel(self._order(coid).order_id),
            lambda: all(
                self._order(c).status in ("cancelled", "filled", "rejected", "inactive") for c in coids
            ),
            lambda: all(self._order(c).status == "cancelled" for c in coids),
            f"{len(coids)} order(s) cancelled",
        )

    async def _act(
        self,
        name: str,
        action: Callable[[], Awaitable[Any]],
        settled: Callable[[], bool],
        passed: Callable[[], bool],
        detail: str | Callable[[], str],
    ) -> bool:
        """Do `action`, wait until `settled` (or the timeout), and report whether `passed`; a failure
        says what IB answered: its errors since the step began, or the orders' states."""
        try:
            await action()
            await self._until(settled)
        except Exception as exc:
            self._done(name, False, self._answer(repr(exc)))
            return False
        ok = passed()
        text = detail() if callable(detail) else detail
        self._done(name, ok, text if ok else self._answer(self._states()))
        return ok

    async def _until(self, predicate: Callable[[], bool]) -> None:
        deadline = asyncio.get_running_loop().time() + self.timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no answer within {self.timeout}s")
            await asyncio.sleep(0.01)  # the adapter's callbacks run on this loop meanwhile

    def _order(self, coid: str) -> Order:
        return self.log.state.orders[coid]

    def _states(self) -> str:
        mine = [o for c, o in self.log.state.orders.items() if c.startswith("acc-")]
        return "; ".join(f"{o.client_order_id} {o.status}{' ' + o.reason if o.reason else ''}" for o in mine)

    def _answer(self, fallback: str) -> str:
        """IB's errors since the last report, else `fallback`."""
        errors = [
            f"IB {e.code}: {e.message}"
            for e in self.log.events[self._seen :]
            if isinstance(e, BrokerError) and e.error_class not in QUIET
        ]
        return "; ".join(errors) or fallback

    def _skipped(self, *names: str, because: str) -> None:
        for name in names:
            self._done(name, None, f"not tried: {because} failed")

    def _done(self, name: str, passed: bool | None, detail: str) -> None:
        step = Step(name, passed, detail)
        self._seen = len(self.log.events)
        self.steps.append(step)
        self._report(step)
