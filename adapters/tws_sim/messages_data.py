"""Server -> client messages about the account, positions, contracts and market data, as field lists.

position is 16 fields and updatePortfolio 20 (ib_insync unpacks both strictly); contractDetails has a
version field and mdSizeMultiplier below v164 and the size fields from v163 (IB's decoder); tickPrice
carries its size and an attribute mask (version 6), tickSize and tickSnapshotEnd follow it.
"""

from __future__ import annotations

from adapters.tws_sim.account import Position
from adapters.tws_sim.catalog import Instrument
from adapters.tws_sim.framing import Field

Fields = list[Field]
ORDER_TYPES = {
    "STK": "ACTIVETIM,AD,ADJUST,ALERT,FOK,GAT,GTC,GTD,IOC,LIT,LMT,LOC,MIT,MKT,MOC,OPG,REL,STP,STPLMT,TRAIL,"
    "TRAILLIMIT,WHATIF",
    "FUT": "ACTIVETIM,AD,ADJUST,ALERT,FOK,GAT,GTC,GTD,IOC,LIT,LMT,MIT,MKT,STP,STPLMT,TRAIL,TRAILLIMIT,WHATIF",
    "OPT": "ACTIVETIM,AD,ADJUST,ALERT,GAT,GTC,GTD,IOC,LMT,MKT,STP,STPLMT,TRAIL,WHATIF",
    "CASH": "ACTIVETIM,AD,ALERT,GAT,GTC,GTD,IOC,LMT,MKT,STP,STPLMT,TRAIL,WHATIF",
}


def position(p: Position) -> Fields:
    """position (61): avgCost per contract with the multiplier, as IB reports it."""
    c = p.contract
    return [
        61, 3, p.account, c.con_id, c.symbol, c.sec_type, c.last_trade_date, c.strike, c.right, c.multiplier,
        c.exchange, c.currency, c.local_symbol, c.trading_class, p.quantity, p.avg_cost,
    ]  # fmt: skip


def position_end() -> Fields:
    return [62, 1]


def portfolio(p: Position, price: float) -> Fields:
    """updatePortfolio (7): the market price per unit; value, avgCost and P&L with the multiplier."""
    c = p.contract
    market_value = round(price * p.factor * p.quantity, 2)
    unrealized = round(market_value - p.avg_cost * p.quantity, 2)
    return [
        7, 8, c.con_id, c.symbol, c.sec_type, c.last_trade_date, c.strike, c.right, c.multiplier,
        c.primary_exchange, c.currency, c.local_symbol, c.trading_class, p.quantity, price, market_value,
        p.avg_cost, unrealized, 0.0, p.account,
    ]  # fmt: skip


def account_value(key: str, value: str, currency: str, account: str) -> Fields:
    return [6, 2, key, value, currency, account]


def pnl(req_id: int, daily: float, unrealized: float, realized: float) -> Fields:
    """PNL (94): an account's daily, unrealized and realized P&L, answering reqPnL."""
    return [94, req_id, daily, unrealized, realized]


def account_time(hhmm: str) -> Fields:
    return [8, 1, hhmm]


def account_download_end(account: str) -> Fields:
    return [54, 1, account]


def account_update_multi(req_id: int, account: str, key: str, value: str, currency: str) -> Fields:
    return [73, 1, req_id, account, "", key, value, currency]


def account_update_multi_end(req_id: int) -> Fields:
    return [74, 1, req_id]


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> Fields:
    return [63, 1, req_id, account, tag, value, currency]


def account_summary_end(req_id: int) -> Fields:
    return [64, 1, req_id]


def current_time(epoch: int) -> Fields:
    return [49, 1, epoch]


def contract_details(
    version: int, req_id: int, i: Instrument, time_zone: str, trading: str, liquid: str
) -> Fields:
    """contractDetails (10) for one instrument of the catalog, its hours in IB's format."""
    c = i.contract
    head: Fields = [10, *([8] if version < 164 else [])]
    valid = "SMART,NASDAQ,NYSE,ARCA,ISLAND" if i.exchange == "SMART" else i.exchange
    fields: Fields = [
        *head, req_id, c.symbol, c.sec_type, c.last_trade_date, c.strike, c.right, c.exchange, c.currency,
        c.local_symbol, c.trading_class, c.trading_class, c.con_id, i.min_tick,
        *([1] if version < 164 else []),  # mdSizeMultiplier
        c.multiplier, ORDER_TYPES[c.sec_type], valid, 1, i.under_con_id,
        i.long_name, c.primary_exchange, c.last_trade_date[:6], "", "", "", time_zone,
        trading, liquid, "", "", 0,  # evRule, evMult, nSecIds
        1, "", "", "26" if i.min_tick == 0.01 else "", c.last_trade_date,
        "COMMON" if c.sec_type == "STK" else "",
    ]  # fmt: skip
    if version == 163:
        fields.append(i.size_increment)
    if version >= 164:
        fields += [i.size_increment, i.size_increment, i.size_increment]
    return fields


def contract_details_end(req_id: int) -> Fields:
    return [52, 1, req_id]


def tick_price(req_id: int, tick_type: int, price: float, size: float) -> Fields:
    return [1, 6, req_id, tick_type, price, size, 0]


def tick_size(req_id: int, tick_type: int, size: float) -> Fields:
    return [2, 6, req_id, tick_type, size]


def tick_snapshot_end(req_id: int) -> Fields:
    return [57, 1, req_id]


def market_data_type(req_id: int, kind: int) -> Fields:
    return [58, 1, req_id, kind]


def quote(req_id: int, i: Instrument, price: float) -> list[Fields]:
    """A one-tick-wide quote around `price`: bid, ask, last, close (tick types 1, 2, 4, 9) and sizes."""
    tick = i.min_tick
    bid, ask = round(price - tick, 10), round(price + tick, 10)
    return [
        market_data_type(req_id, 1),
        tick_price(req_id, 1, bid, 100), tick_price(req_id, 2, ask, 100), tick_price(req_id, 4, price, 10),
        tick_price(req_id, 9, price, 0), tick_size(req_id, 0, 100), tick_size(req_id, 3, 100),
        tick_size(req_id, 5, 10), tick_size(req_id, 8, 1000),
    ]  # fmt: skip
