"""Client -> server requests: typed views of the fields the simulator acts on.

placeOrder is walked field by field along the layout of reference/placeorder-layout.txt, so the parser
knows where each conditional block starts; unset values arrive as "" (ib_insync, ib_async) or as the
max-value strings IB's own client sends, and quantities as "10" or "10.0".
"""

from __future__ import annotations

import msgspec

from events.schema import Contract

UNSET_INT = 2147483647
UNSET_DOUBLE = 1.7976931348623157e308


class RequestError(ValueError):
    """A request whose fields do not parse; the session answers with an error instead of crashing."""


def opt_float(text: str) -> float | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise RequestError(f"not a number: {text!r}") from exc
    return None if value >= UNSET_DOUBLE else value


def to_int(text: str, default: int = 0) -> int:
    if text == "":
        return default
    try:
        value = int(float(text)) if "." in text or "e" in text.lower() else int(text)
    except ValueError as exc:
        raise RequestError(f"not an integer: {text!r}") from exc
    return default if value == UNSET_INT else value


class Reader:
    """Consumes fields in order; running out is a RequestError, never an IndexError."""

    def __init__(self, fields: list[str], start: int = 0) -> None:
        self._fields = fields
        self._pos = start

    def next(self) -> str:
        if self._pos >= len(self._fields):
            raise RequestError(f"message ended after {len(self._fields)} fields")
        value = self._fields[self._pos]
        self._pos += 1
        return value

    def skip(self, n: int) -> None:
        for _ in range(n):
            self.next()

    def integer(self, default: int = 0) -> int:
        return to_int(self.next(), default)

    def number(self) -> float | None:
        return opt_float(self.next())

    @property
    def left(self) -> int:
        return len(self._fields) - self._pos


def read_contract(r: Reader, with_primary: bool = True) -> Contract:
    con_id = r.integer()
    symbol, sec_type, last, strike, right, mult, exchange = (r.next() for _ in range(7))
    primary = r.next() if with_primary else ""
    currency, local, trading_class = r.next(), r.next(), r.next()
    return Contract(
        symbol=symbol.upper(),
        sec_type=sec_type,
        exchange=exchange,
        currency=currency,
        con_id=con_id,
        primary_exchange=primary,
        last_trade_date=last,
        strike=opt_float(strike) or 0.0,
        right=right,
        multiplier=mult,
        local_symbol=local,
        trading_class=trading_class,
    )


class PlaceOrder(msgspec.Struct, frozen=True):
    order_id: int
    contract: Contract
    action: str
    quantity: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    oca_group: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool
    unread_fields: int = 0  # fields the layout walk did not account for (0 when the layout matched)
    what_if: bool = False
    trigger_method: int = 0
    good_till: str = ""  # goodTillDate as the client sent it
    oca_type: int = 0
    trail_stop_price: float | None = None
    trailing_percent: float | None = None
    lmt_price_offset: float | None = None
    algo: str = ""
    algo_params: tuple[tuple[str, str], ...] = ()


class Tail(msgspec.Struct):
    """What the walk of placeOrder's tail finds (fields past `hidden`)."""

    what_if: bool = False
    good_till: str = ""
    oca_type: int = 0
    trail_stop_price: float | None = None
    trailing_percent: float | None = None
    lmt_price_offset: float | None = None
    algo: str = ""
    algo_params: tuple[tuple[str, str], ...] = ()


def parse_place_order(fields: list[str], version: int) -> PlaceOrder:
    r = Reader(fields, 1)
    order_id = r.integer()
    contract = read_contract(r)
    r.skip(2)  # secIdType, secId
    action, qty_text, order_type = r.next().upper(), r.next(), r.next().upper()
    lmt, aux = r.number(), r.number()
    tif, oca_group, account = r.next().upper() or "DAY", r.next(), r.next()
    r.skip(2)  # openClose, origin
    order_ref = r.next()
    transmit = r.integer(1) != 0
    parent_id = r.integer()
    r.skip(3)  # blockOrder, sweepToFill, displaySize
    trigger_method = r.integer()
    outside_rth = r.integer() != 0
    r.skip(1)  # hidden
    quantity = opt_float(qty_text) or 0.0
    head = PlaceOrder(
        order_id, contract, action, quantity, order_type, lmt, aux, tif, oca_group, account, order_ref,
        transmit, parent_id, outside_rth,
    )  # fmt: skip
    tail = Tail()
    try:
        unread = _walk_tail(r, contract, order_type, version, tail)
    except RequestError:
        unread = -1
    return msgspec.structs.replace(
        head, unread_fields=unread, trigger_method=trigger_method,
        **{f: getattr(tail, f) for f in tail.__struct_fields__},
    )  # fmt: skip


def _walk_tail(r: Reader, contract: Contract, order_type: str, version: int, tail: Tail) -> int:
    """Walk the rest of placeOrder into `tail`; returns how many fields were left over (-1: conditions
    not walked)."""
    if contract.sec_type == "BAG":
        r.skip(8 * r.integer())
        r.skip(r.integer())
        r.skip(2 * r.integer())
    r.skip(3)  # sharesAllocation, discretionaryAmt, goodAfterTime
    tail.good_till = r.next()
    r.skip(3)  # faGroup, faMethod, faPercentage
    if version < 177:
        r.skip(1)  # faProfile
    r.skip(4)  # modelCode, shortSaleSlot, designatedLocation, exemptCode
    tail.oca_type = r.integer()
    r.skip(15)  # rule80A .. overridePercentageConstraints
    r.skip(2)  # volatility, volatilityType
    dn_type = r.next()
    r.skip(1)  # deltaNeutralAuxPrice
    if dn_type:
        r.skip(8)
    r.skip(2)  # continuousUpdate, referencePriceType
    tail.trail_stop_price, tail.trailing_percent = r.number(), r.number()
    r.skip(2)  # scaleInitLevelSize, scaleSubsLevelSize
    increment = r.number()
    if increment is not None and increment > 0:
        r.skip(7)
    r.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if r.next():  # hedgeType
        r.skip(1)
    r.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if r.integer():
        r.skip(3)
    tail.algo = r.next()
    if tail.algo:
        pairs = [(r.next(), r.next()) for _ in range(r.integer())]
        tail.algo_params = tuple(pairs)
    r.skip(1)  # algoId
    tail.what_if = r.integer() != 0
    r.skip(4)  # orderMiscOptions, solicited, randomizeSize, randomizePrice
    if order_type in ("PEG BENCH", "PEGBENCH"):
        r.skip(5)
    if r.integer() > 0:
        return -1
    r.skip(2)  # adjustedOrderType, triggerPrice
    tail.lmt_price_offset = r.number()
    r.skip(16)  # adjustedStopPrice .. usePriceMgmtAlgo
    r.skip(sum(version >= v for v in (158, 160, 162, 166, 169)))
    if version >= 170 and contract.exchange == "IBKRATS":
        r.skip(1)
    return r.left


class ExecFilter(msgspec.Struct, frozen=True):
    req_id: int
    client_id: int = 0
    account: str = ""
    time: str = ""
    symbol: str = ""
    sec_type: str = ""
    exchange: str = ""
    side: str = ""


def parse_exec_filter(fields: list[str]) -> ExecFilter:
    r = Reader(fields, 2)
    req_id = r.integer()
    rest = [r.next() if r.left else "" for _ in range(7)]
    return ExecFilter(
        req_id, to_int(rest[0]), rest[1], rest[2], rest[3].upper(), rest[4], rest[5], rest[6].upper()
    )


def parse_contract_request(fields: list[str]) -> tuple[int, Contract]:
    r = Reader(fields, 2)
    return r.integer(), read_contract(r)


class MarketDataRequest(msgspec.Struct, frozen=True):
    req_id: int
    contract: Contract
    snapshot: bool


def parse_market_data_request(fields: list[str]) -> MarketDataRequest:
    """reqMktData (1, version 11): the contract, combo legs, delta-neutral block, then the flags."""
    r = Reader(fields, 2)
    req_id = r.integer()
    contract = read_contract(r)
    if contract.sec_type == "BAG":
        r.skip(4 * r.integer())
    if r.integer():
        r.skip(3)
    r.skip(1)  # genericTickList
    return MarketDataRequest(req_id, contract, r.integer() != 0)
