"""Reference data for risk: what IB says an instrument is (contract details) and what it trades at
(a market-data snapshot), through the adapter's own IB client.

`ReferenceData` is the interface the service calls; `IBReferenceData` implements it. Contract details are
cached per conId (and per request contract, so a symbol asked twice is asked of IB once); prices never
are. Every failure raises `ReferenceDataError` with a stable `code` and a message that says what is
missing, so a risk check can deny an order with that reason (fail closed) instead of guessing.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol

from msgspec import Struct

from adapters.ib import normalize, outbound
from adapters.ib.clientlib import ClientLib
from adapters.ib.pacing import TokenBucket
from events.schema import Contract
from oms.state.money import exact

NO_SECURITY_DEFINITION = 200  # IB's error for a contract it cannot resolve (unknown or ambiguous)
MAX_STREAMS = 50  # instruments kept subscribed for reference prices (IB allows 100 lines by default)
PriceSource = Literal["last", "midpoint", "close"]
RefDataCode = Literal["not_connected", "no_contract", "ambiguous_contract", "timeout", "no_price", "refused"]


class ContractInfo(Struct, frozen=True, kw_only=True):
    """One instrument as IB's contract details describe it; sizes and ticks exact."""

    contract: Contract  # as IB qualified it: con_id, exchange, multiplier, ... set
    multiplier: Decimal  # 1 where IB gives none (stocks, forex)
    min_tick: Decimal
    size_increment: Decimal  # 0 where IB sent none (server versions below 164)
    min_size: Decimal  # 0 where IB sent none
    trading_hours: str  # IB's text: "20240102:0930-20240102:1600;20240103:CLOSED;..."
    liquid_hours: str
    time_zone: str  # IB's timeZoneId of the hours above, e.g. "US/Eastern"
    long_name: str = ""

    @property
    def con_id(self) -> int:
        return self.contract.con_id

    @property
    def primary_exchange(self) -> str:
        """IB's ContractDetails.contract.primaryExchange (NYSE, NASDAQ, ARCA, ...)."""
        return self.contract.primary_exchange


class ReferencePrice(Struct, frozen=True, kw_only=True):
    con_id: int
    price: float
    source: PriceSource  # last, else the bid/ask midpoint, else the previous close


class ReferenceDataError(LookupError):
    def __init__(self, code: RefDataCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class ReferenceData(Protocol):
    """What risk asks of the broker side (implemented by `IBReferenceData`)."""

    async def contract_info(self, contract: Contract) -> ContractInfo: ...

    async def reference_price(self, contract: Contract) -> ReferencePrice: ...


def choose_price(last: float, bid: float, ask: float, close: float) -> tuple[float, PriceSource] | None:
    """Last, else the midpoint of a two-sided quote, else the close; IB's "none" (-1, 0, nan) skipped."""
    if _valid(last):
        return last, "last"
    if _valid(bid) and _valid(ask):
        return (bid + ask) / 2, "midpoint"
    if _valid(close):
        return close, "close"
    return None


def _valid(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0 and normalize.number(value) is not None


def _exact(value: Any, default: str) -> Decimal:
    """IB's float or text -> Decimal by its shortest text (0.01, not 0.01000000000000000020816...)."""
    if isinstance(value, float):
        found = normalize.number(value)
        return Decimal(default) if found is None or found == 0 else exact(found)
    try:
        return Decimal(str(value or default))
    except InvalidOperation:
        return Decimal(default)


def contract_info_of(details: Any) -> ContractInfo:
    """A library ContractDetails -> ContractInfo (pure)."""
    contract = normalize.contract(details.contract)
    return ContractInfo(
        contract=contract,
        multiplier=_exact(contract.multiplier, "1"),
        min_tick=_exact(details.minTick, "0"),
        size_increment=_exact(getattr(details, "sizeIncrement", 0.0), "0"),
        min_size=_exact(getattr(details, "minSize", 0.0), "0"),
        trading_hours=normalize.text(details.tradingHours),
        liquid_hours=normalize.text(details.liquidHours),
        time_zone=normalize.text(details.timeZoneId),
        long_name=normalize.text(details.longName),
    )


class IBReferenceData:
    """`ReferenceData` over an ib_async / ib_insync `IB` object (the adapter's, so requests are paced
    with its orders)."""

    def __init__(self, ib: Any, lib: ClientLib, pacer: TokenBucket, timeout: float = 10.0) -> None:
        self._ib, self._lib, self._pacer = ib, lib, pacer
        self.timeout = timeout
        self._by_con_id: dict[int, ContractInfo] = {}
        self._con_ids: dict[Contract, int] = {}
        self._streams: OrderedDict[int, Any] = OrderedDict()  # conId -> the library's live Ticker

    def reset(self) -> None:
        """The connection dropped: the library forgot its tickers, so streams are asked for again."""
        self._streams.clear()

    async def resubscribe(self) -> int:
        """After 1101 ("restored - data lost") IB has dropped every market data line: ask for each stream
        again (the library's old request cancelled first, so one line stays one line). Returns how many."""
        count = 0
        for con_id, ticker in list(self._streams.items()):
            if not self._ib.isConnected():
                break
            await self._pacer.acquire()
            self._ib.cancelMktData(ticker.contract)
            await self._pacer.acquire()
            self._streams[con_id] = self._ib.reqMktData(ticker.contract, "", False, False)
            count += 1
        return count

    async def contract_info(self, contract: Contract) -> ContractInfo:
        con_id = contract.con_id or self._con_ids.get(contract, 0)
        if con_id in self._by_con_id:
            return self._by_con_id[con_id]
        found = await self._ask(
            f"contract details for {_name(contract)}",
            lambda: self._ib.reqContractDetailsAsync(outbound.ib_contract(self._lib, contract)),
        )
        if not found:
            raise ReferenceDataError("no_contract", f"IB knows no contract {_name(contract)}")
        if len(found) > 1:
            raise ReferenceDataError(
                "ambiguous_contract",
                f"{_name(contract)} matches {len(found)} contracts at IB; name the exchange, expiry or conId",
            )
        info = contract_info_of(found[0])
        self._by_con_id[info.con_id] = info
        self._con_ids[contract] = info.con_id
        return info

    async def reference_price(self, contract: Contract) -> ReferencePrice:
        """IB's current price of the contract: last, else the bid/ask midpoint, else the close. The first
        request subscribes to its market data and waits for the first tick; later ones read the live
        ticker and send nothing (a burst of market orders must not spend IB's 50 messages a second).
        At most `MAX_STREAMS` instruments stay subscribed (IB's market data lines), oldest dropped."""
        info = await self.contract_info(contract)
        ticker = self._streams.get(info.con_id)
        if ticker is None:
            ticker = await self._subscribe(info)
        else:
            self._streams.move_to_end(info.con_id)
        chosen = choose_price(ticker.last, ticker.bid, ticker.ask, ticker.close)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while chosen is None:
            left = deadline - loop.time()
            if left <= 0:
                raise ReferenceDataError(
                    "no_price", f"IB's market data for {_name(info.contract)} has no last, bid/ask or close"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_next(ticker.updateEvent), left)
            chosen = choose_price(ticker.last, ticker.bid, ticker.ask, ticker.close)
        return ReferencePrice(con_id=info.con_id, price=chosen[0], source=chosen[1])

    async def _subscribe(self, info: ContractInfo) -> Any:
        if not self._ib.isConnected():
            raise ReferenceDataError(
                "not_connected", f"no market data for {_name(info.contract)}: not connected"
            )
        if len(self._streams) >= MAX_STREAMS:
            _, oldest = self._streams.popitem(last=False)
            await self._pacer.acquire()
            self._ib.cancelMktData(oldest.contract)
        await self._pacer.acquire()
        ticker = self._ib.reqMktData(outbound.ib_contract(self._lib, info.contract), "", False, False)
        self._streams[info.con_id] = ticker
        return ticker

    async def _ask(self, what: str, request: Callable[[], Awaitable[Any]]) -> Any:
        if not self._ib.isConnected():
            raise ReferenceDataError("not_connected", f"cannot ask IB for {what}: not connected")
        try:
            await self._pacer.acquire()
            return await asyncio.wait_for(request(), self.timeout)
        except TimeoutError:
            raise ReferenceDataError("timeout", f"IB did not answer {what} within {self.timeout}s") from None
        except ConnectionError as exc:
            raise ReferenceDataError("not_connected", f"cannot ask IB for {what}: {exc}") from None
        except Exception as exc:  # the library's RequestError: IB answered with an error code
            if getattr(exc, "code", None) == NO_SECURITY_DEFINITION:
                raise ReferenceDataError("no_contract", f"IB has no {what}") from None
            raise ReferenceDataError("refused", f"IB refused {what}: {exc}") from None


async def _next(event: Any) -> Any:
    """The next value an eventkit event emits (both libraries' events are awaitable)."""
    return await event


def _name(contract: Contract) -> str:
    parts = [contract.sec_type, contract.symbol, contract.last_trade_date, contract.right, contract.currency]
    label = " ".join(p for p in parts if p)
    return f"{label} (conId {contract.con_id})" if contract.con_id else label
