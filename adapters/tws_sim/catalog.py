"""Instruments the simulator knows: stable conIds (IB's real ones where known) and starting prices."""

from __future__ import annotations

import zlib

from events.schema import Contract

# symbol -> (conId, primary exchange, starting price); conIds are IB's own for these symbols.
KNOWN: dict[str, tuple[int, str, float]] = {
    "AAPL": (265598, "NASDAQ", 190.0),
    "MSFT": (272093, "NASDAQ", 410.0),
    "AMZN": (3691937, "NASDAQ", 180.0),
    "GOOG": (208813720, "NASDAQ", 170.0),
    "NVDA": (4815747, "NASDAQ", 120.0),
    "TSLA": (76792991, "NASDAQ", 240.0),
    "IBM": (8314, "NYSE", 190.0),
    "SPY": (756733, "ARCA", 520.0),
    "QQQ": (320227571, "NASDAQ", 450.0),
}


def _digest(symbol: str) -> int:
    return zlib.crc32(symbol.upper().encode())


def con_id_for(symbol: str) -> int:
    """A stable conId: IB's for well-known symbols, else derived from the symbol's CRC."""
    known = KNOWN.get(symbol.upper())
    return known[0] if known else 100_000_000 + _digest(symbol) % 100_000_000


def with_symbol(contract: Contract) -> Contract:
    """A contract given by conId alone gets its symbol back (for the symbols the catalogue knows)."""
    if contract.symbol or not contract.con_id:
        return contract
    by_id = {known[0]: symbol for symbol, known in KNOWN.items()}
    return Contract(symbol=by_id.get(contract.con_id, ""), sec_type=contract.sec_type or "STK")


def start_price(symbol: str) -> float:
    known = KNOWN.get(symbol.upper())
    return known[2] if known else float(20 + _digest(symbol) % 280)


def qualify(contract: Contract) -> Contract:
    """The contract as IB would describe it back: conId, primary exchange, local symbol, trading class."""
    symbol = contract.symbol.upper()
    known = KNOWN.get(symbol)
    return Contract(
        symbol=symbol,
        sec_type=contract.sec_type or "STK",
        exchange=contract.exchange or "SMART",
        currency=contract.currency or "USD",
        con_id=con_id_for(symbol),
        primary_exchange=contract.primary_exchange or (known[1] if known else "NYSE"),
        last_trade_date=contract.last_trade_date,
        strike=contract.strike,
        right=contract.right,
        multiplier=contract.multiplier,
        local_symbol=contract.local_symbol or symbol,
        trading_class=contract.trading_class or ("NMS" if contract.sec_type in ("", "STK") else symbol),
    )
