"""The instruments the simulator knows, each as IB describes it: its own conId, minimum tick, size
increment, multiplier, exchange, currency, time zone and session. A contract the catalog cannot resolve is
unknown to "IB" (error 200), as a made-up symbol is at the real TWS.

Stock conIds are IB's real ones where known; derivatives and foreign listings use stable made-up ids.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from events.schema import Contract


class Instrument(msgspec.Struct, frozen=True):
    con_id: int
    symbol: str
    sec_type: str  # STK, FUT, OPT, CASH
    exchange: str  # the routing exchange an order names (SMART for stocks and options)
    primary_exchange: str
    currency: str
    price: float  # the starting price of its path
    min_tick: float = 0.01
    size_increment: str = "1"  # decimal text; "0.01" for forex
    multiplier: str = ""
    last_trade_date: str = ""
    strike: float = 0.0
    right: str = ""
    local_symbol: str = ""
    trading_class: str = ""
    session: str = "us_stock"  # a key of hours.SESSIONS
    long_name: str = ""
    under_con_id: int = 0

    @property
    def contract(self) -> Contract:
        """The contract as IB describes it back (openOrder, execDetails, positions)."""
        return Contract(
            symbol=self.symbol, sec_type=self.sec_type, exchange=self.exchange, currency=self.currency,
            con_id=self.con_id, primary_exchange=self.primary_exchange, last_trade_date=self.last_trade_date,
            strike=self.strike, right=self.right, multiplier=self.multiplier,
            local_symbol=self.local_symbol or self.symbol, trading_class=self.trading_class,
        )  # fmt: skip

    @property
    def factor(self) -> float:
        """The contract multiplier as a number (1 for stocks and forex)."""
        return float(self.multiplier) if self.multiplier else 1.0

    @property
    def key(self) -> str:
        """The price path's name: the symbol for stocks, the local symbol for the others."""
        return self.symbol if self.sec_type == "STK" else (self.local_symbol or self.symbol)

    def on_tick(self, price: float) -> bool:
        return _is_multiple(price, self.min_tick)

    def valid_size(self, quantity: float) -> bool:
        """A whole number of size increments, exactly: the client sent the size as decimal text, which
        is the float's shortest repr (no tolerance: 0.0000001 over an increment is off it)."""
        return Decimal(repr(quantity)) % Decimal(self.size_increment) == 0


def _is_multiple(value: float, step: float) -> bool:
    ratio = value / step
    return abs(ratio - round(ratio)) < 1e-6


def _stock(
    symbol: str, con_id: int, primary: str, price: float, currency: str = "USD", session: str = "us_stock",
    name: str = "", trading_class: str = "NMS", min_tick: float = 0.01,
) -> Instrument:  # fmt: skip
    return Instrument(
        con_id, symbol, "STK", "SMART", primary, currency, price, min_tick=min_tick,
        trading_class=trading_class, session=session, long_name=name or f"{symbol} INC",
    )  # fmt: skip


def _es(expiry: str, month: str, con_id: int, price: float) -> Instrument:
    return Instrument(
        con_id, "ES", "FUT", "CME", "CME", "USD", price, min_tick=0.25, multiplier="50",
        last_trade_date=expiry, local_symbol=f"ES{month}", trading_class="ES", session="cme_equity",
        long_name="E-mini S&P 500", under_con_id=11004968,
    )  # fmt: skip


def _aapl_option(right: str, strike: float, con_id: int, price: float) -> Instrument:
    local = f"AAPL  261218{right}{int(strike * 1000):08d}"
    return Instrument(
        con_id, "AAPL", "OPT", "SMART", "CBOE", "USD", price, min_tick=0.05, multiplier="100",
        last_trade_date="20261218", strike=strike, right=right, local_symbol=local, trading_class="AAPL",
        session="us_option", long_name="APPLE INC", under_con_id=265598,
    )  # fmt: skip


INSTRUMENTS: tuple[Instrument, ...] = (
    _stock("AAPL", 265598, "NASDAQ", 190.0, name="APPLE INC"),
    _stock("MSFT", 272093, "NASDAQ", 410.0, name="MICROSOFT CORP"),
    _stock("AMZN", 3691937, "NASDAQ", 180.0, name="AMAZON.COM INC"),
    _stock("GOOG", 208813720, "NASDAQ", 170.0, name="ALPHABET INC-CL C"),
    _stock("NVDA", 4815747, "NASDAQ", 120.0, name="NVIDIA CORP"),
    _stock("TSLA", 76792991, "NASDAQ", 240.0, name="TESLA INC"),
    _stock("IBM", 8314, "NYSE", 190.0, name="INTL BUSINESS MACHINES CORP"),
    _stock("BRK B", 72063691, "NYSE", 410.0, name="BERKSHIRE HATHAWAY INC-CL B"),
    _stock("SPY", 756733, "ARCA", 520.0, name="SPDR S&P 500 ETF TRUST"),
    _stock("QQQ", 320227571, "NASDAQ", 450.0, name="INVESCO QQQ TRUST SERIES 1"),
    _stock("SAP", 14204, "IBIS", 180.0, "EUR", "xetra", "SAP SE", "SAP"),
    _stock("SIE", 14237, "IBIS", 170.0, "EUR", "xetra", "SIEMENS AG-REG", "SIE"),
    _stock("7203", 13905, "TSEJ", 2800.0, "JPY", "tse", "TOYOTA MOTOR CORP", "7203", 0.5),
    _es("20261218", "Z6", 649180695, 5400.0),
    _es("20270319", "H7", 649180702, 5440.0),
    _aapl_option("C", 200.0, 700000101, 12.5),
    _aapl_option("P", 200.0, 700000102, 18.0),
    _aapl_option("C", 180.0, 700000103, 22.0),
    _aapl_option("P", 180.0, 700000104, 8.5),
    Instrument(
        12087792,
        "EUR",
        "CASH",
        "IDEALPRO",
        "IDEALPRO",
        "USD",
        1.08,
        min_tick=0.00005,
        size_increment="0.01",
        local_symbol="EUR.USD",
        trading_class="EUR.USD",
        session="fx",
        long_name="European Monetary Union Euro",
    ),
    Instrument(
        15016059,
        "USD",
        "CASH",
        "IDEALPRO",
        "IDEALPRO",
        "JPY",
        150.0,
        min_tick=0.005,
        size_increment="0.01",
        local_symbol="USD.JPY",
        trading_class="USD.JPY",
        session="fx",
        long_name="US Dollar",
    ),
)
BY_CON_ID: dict[int, Instrument] = {i.con_id: i for i in INSTRUMENTS}
BY_KEY: dict[str, Instrument] = {i.key: i for i in INSTRUMENTS}
CONTRACTS: dict[int, Contract] = {i.con_id: i.contract for i in INSTRUMENTS}  # one shared per instrument


def _norm(symbol: str) -> str:
    return symbol.upper().replace(".", " ") if "." in symbol and len(symbol) <= 6 else symbol.upper()


def matches(contract: Contract) -> list[Instrument]:
    """The instruments a request names, matched as IB matches: by conId, else by the fields given
    (symbol or local symbol, type, expiry, strike, right, currency, exchange; empty fields match
    anything; a local symbol given must be the instrument's: `ES` + `ESH7` is one contract)."""
    if contract.con_id:
        known = BY_CON_ID.get(contract.con_id)
        return [known] if known else []
    symbol, sec_type = _norm(contract.symbol), contract.sec_type or "STK"
    hits = [
        i
        for i in INSTRUMENTS
        if (i.symbol == symbol or (i.local_symbol or i.symbol) == contract.local_symbol)
        and (not contract.local_symbol or (i.local_symbol or i.symbol) == contract.local_symbol)  # as at IB
        and i.sec_type == sec_type
        and (not contract.last_trade_date or i.last_trade_date.startswith(contract.last_trade_date))
        and (not contract.strike or i.strike == contract.strike)
        and (not contract.right or i.right == contract.right[:1].upper())
        and (not contract.currency or i.currency == contract.currency)
        and (not contract.exchange or contract.exchange in (i.exchange, "SMART", i.primary_exchange))
    ]
    if sec_type == "CASH" and not hits:  # EUR.USD given as symbol EUR, currency USD, or local symbol
        hits = [i for i in INSTRUMENTS if i.sec_type == "CASH" and i.local_symbol == contract.symbol]
    return hits


def resolve(contract: Contract) -> Instrument | None:
    """The one instrument an order names; None when it names none or several (IB's error 200)."""
    hits = matches(contract)
    return hits[0] if len(hits) == 1 else None


def by_key(key: str) -> Instrument | None:
    return BY_KEY.get(key)
