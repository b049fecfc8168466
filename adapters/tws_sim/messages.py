"""Server -> client messages as field lists, laid out for the negotiated server version.

Field counts follow reference/tws-protocol.md §2.5-2.6: execDetails is exactly 31 fields, commissionReport
8, position 16, updatePortfolio 20 (ib_insync unpacks those strictly); openOrder is 120 fields at v157
plus the version tail (128 at v176), with the delta-neutral block left out by sending an empty type.
"""

from __future__ import annotations

from adapters.tws_sim.account import UNSET_DOUBLE_TEXT, ExecRecord, Position
from adapters.tws_sim.framing import Field
from adapters.tws_sim.matching import SimOrder
from events.schema import Contract

UNSET_INT_TEXT = "2147483647"
Fields = list[Field]


def contract_fields(c: Contract) -> Fields:
    """The 11 contract fields of openOrder and execDetails (no primaryExchange)."""
    return [
        c.con_id, c.symbol, c.sec_type, c.last_trade_date, c.strike, c.right, c.multiplier,
        c.exchange, c.currency, c.local_symbol, c.trading_class,
    ]  # fmt: skip


def handshake(version: int, conn_time: str) -> Fields:
    return [version, conn_time]


def managed_accounts(accounts: tuple[str, ...]) -> Fields:
    return [15, 1, ",".join(accounts)]


def next_valid_id(order_id: int) -> Fields:
    return [9, 1, order_id]


def error(version: int, req_id: int, code: int, text: str) -> Fields:
    return [4, 2, req_id, code, text, *([""] if version >= 166 else [])]


def order_status(o: SimOrder, status: str | None = None) -> Fields:
    return [
        3, o.order_id, status or o.status, o.filled, o.remaining, o.avg_fill_price, o.perm_id,
        o.parent_id, o.last_fill_price, o.client_id, "", 0.0,
    ]  # fmt: skip


def _price(value: float | None) -> Field:
    return "" if value is None else value


def open_order(
    version: int, o: SimOrder, status: str | None = None, commission: float | None = None
) -> Fields:
    """openOrder (5): 120 fields at v157 and the tail for v159/160/162/170 (no version field)."""
    unset = [UNSET_DOUBLE_TEXT] * 9  # margin before/change/after
    comm: Fields = [commission, "", "", "USD"] if commission is not None else ["", "", "", ""]
    fields: Fields = [
        5, o.order_id, *contract_fields(o.contract),
        o.action, o.quantity, o.order_type, _price(o.lmt_price), _price(o.aux_price), o.tif, o.oca_group,
        o.account, "", 0, o.order_ref, o.client_id, o.perm_id, o.outside_rth, 0, 0, "", "",
        "", "", "", "", "", "", "", "", "",  # fa*, modelCode, goodTillDate, rule80A, percentOffset, firm
        0, "", -1, 0, "", "", "", "", "",  # shortSaleSlot .. stockRangeUpper
        UNSET_INT_TEXT, 0, 0, 0, "", 3, 0, 0, "", o.parent_id, 0, "", 0,  # displaySize .. volatilityType
        "", "", 0, 0, "", "", "", "", "",  # deltaNeutralOrderType("") .. comboLegsDescrip
        0, 0, 0, UNSET_INT_TEXT, UNSET_INT_TEXT, "", "",  # combo counts, scale, hedgeType
        0, "", "IB", 0, 0, "", 0, 0,  # optOutSmartRouting .. whatIf
        status or o.status, *unset, *comm, "",  # orderState, commission block, warningText
        0, 0, 0, "",  # randomizeSize, randomizePrice, numConditions, adjustedOrderType
        *[UNSET_DOUBLE_TEXT] * 6, 0, "", "", "", "", 0, 0, 0, 0,  # adjusted .. usePriceMgmtAlgo
    ]  # fmt: skip
    if version >= 159:
        fields.append("")  # duration
    if version >= 160:
        fields.append("")  # postToAts
    if version >= 162:
        fields.append(0)  # autoCancelParent
    if version >= 170:
        fields += ["", "", "", "", ""]
    return fields


def open_order_end() -> Fields:
    return [53, 1]


def exec_details(req_id: int, e: ExecRecord) -> Fields:
    """execDetails (11): exactly 31 fields, no version field."""
    return [
        11, req_id, e.order_id, *contract_fields(e.contract), e.exec_id, e.time, e.account,
        e.contract.exchange if e.contract.exchange != "SMART" else (e.contract.primary_exchange or "ISLAND"),
        e.side, e.shares, e.price, e.perm_id, e.client_id, 0, e.cum_qty, e.avg_price, e.order_ref,
        "", "", "", 1,
    ]  # fmt: skip


def exec_details_end(req_id: int) -> Fields:
    return [55, 1, req_id]


def commission_report(e: ExecRecord) -> Fields:
    """commissionReport (59): exactly 8 fields; realized P&L unset on opening fills, as TWS sends it."""
    pnl: Field = UNSET_DOUBLE_TEXT if e.realized_pnl is None else e.realized_pnl
    return [59, 1, e.exec_id, e.commission, e.currency, pnl, UNSET_DOUBLE_TEXT, ""]


def position(p: Position) -> Fields:
    c = p.contract
    return [
        61, 3, p.account, c.con_id, c.symbol, c.sec_type, c.last_trade_date, c.strike, c.right, c.multiplier,
        c.exchange, c.currency, c.local_symbol, c.trading_class, p.quantity, p.avg_cost,
    ]  # fmt: skip


def position_end() -> Fields:
    return [62, 1]


def completed_order(version: int, o: SimOrder, completed_time: str) -> Fields:
    """completedOrder (101): no orderId, clientId or version field; the status comes after `solicited`."""
    fields: Fields = [
        101, *contract_fields(o.contract),
        o.action, o.quantity, o.order_type, _price(o.lmt_price), _price(o.aux_price), o.tif, o.oca_group,
        o.account, "", 0, o.order_ref, o.perm_id, o.outside_rth, 0, 0, "",  # .. goodAfterTime
        "", "", "", "", "", "", "", "", "",  # fa*, modelCode, goodTillDate, rule80A, percentOffset, firm
        0, "", -1, "", "", "", "", "",  # shortSaleSlot .. stockRangeUpper
        UNSET_INT_TEXT, 0, 0, "", 3, 0, "", 0, "", "",  # displaySize .. deltaNeutralAuxPrice
        0, 0, "", "", "", 0, 0, 0,  # continuousUpdate .. comboLegsDescrip, three counts
        UNSET_INT_TEXT, UNSET_INT_TEXT, "", "",  # scale sizes, scalePriceIncrement, hedgeType
        "", "IB", 0, 0, "",  # clearingAccount, clearingIntent, notHeld, dnc flag, algoStrategy
        0, o.status, 0, 0, 0,  # solicited, status, randomizeSize, randomizePrice, numConditions
        UNSET_DOUBLE_TEXT, UNSET_DOUBLE_TEXT, "", 0, 0, "", o.filled, 0, 0, "", 0, 0, 0,  # .. parentPermId
        completed_time, o.status,
    ]  # fmt: skip
    if version >= 170:
        fields += ["", "", "", "", ""]
    return fields


def completed_orders_end() -> Fields:
    return [102]


def account_value(key: str, value: str, currency: str, account: str) -> Fields:
    return [6, 2, key, value, currency, account]


def portfolio(p: Position, price: float) -> Fields:
    c = p.contract
    market_value = price * p.quantity
    unrealized = (price - p.avg_cost) * p.quantity
    return [
        7, 8, c.con_id, c.symbol, c.sec_type, c.last_trade_date, c.strike, c.right, c.multiplier,
        c.primary_exchange, c.currency, c.local_symbol, c.trading_class, p.quantity, price, market_value,
        p.avg_cost, unrealized, 0.0, p.account,
    ]  # fmt: skip


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


def contract_details(version: int, req_id: int, c: Contract, long_name: str) -> Fields:
    """contractDetails (10): a version field and mdSizeMultiplier below v164, size fields from v163."""
    head: Fields = [10, *([8] if version < 164 else [])]
    fields: Fields = [
        *head, req_id, c.symbol, c.sec_type, c.last_trade_date, c.strike, c.right, c.exchange, c.currency,
        c.local_symbol, c.trading_class, c.trading_class, c.con_id, 0.01,
        *([1] if version < 164 else []),  # mdSizeMultiplier
        c.multiplier, "ACTIVETIM,AD,ADJUST,ALERT,LMT,MKT,STP,STPLMT", "SMART,NASDAQ,NYSE,ARCA,ISLAND", 1, 0,
        long_name, c.primary_exchange, "", "", "", "", "US/Eastern",
        "20240101:0930-20240101:1600", "20240101:0930-20240101:1600", "", "", 0,  # evRule, evMult, nSecIds
        1, "", "", "26,26", "", "COMMON",  # aggGroup .. stockType
    ]  # fmt: skip
    if version == 163:
        fields.append(1)
    if version >= 164:
        fields += [1, 1, 1]
    return fields


def contract_details_end(req_id: int) -> Fields:
    return [52, 1, req_id]
