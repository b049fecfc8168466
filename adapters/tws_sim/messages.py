"""Server -> client order and execution messages as field lists, laid out for the negotiated version.

Field counts follow reference/tws-protocol.md §2.5-2.6 and the decoders of ib_async 2.1.0 / ib_insync
0.9.86: execDetails is exactly 31 fields below v178 and 32 from v178 (`pendingPriceRevision`),
commissionReport 8 (ib_insync unpacks those strictly); openOrder is 120 fields at v157 plus the version
tail (128 at v176; v177 drops the FA profile field, so 127 at v177-178), with the delta-neutral block
left out by sending an empty type. completedOrder loses the FA profile field at v177 too.
"""

from __future__ import annotations

from adapters.tws_sim.account import UNSET_DOUBLE_TEXT, ExecRecord
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


def fa_profile(version: int) -> Fields:
    """The FA profile field of openOrder / completedOrder / placeOrder, gone from v177 (IB's decoder)."""
    return [""] if version < 177 else []


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
        3, o.wire_id, status or o.status, o.filled, o.remaining, o.avg_fill_price, o.perm_id,
        o.parent_id, o.last_fill_price, o.client_id, "", 0.0,
    ]  # fmt: skip


def _price(value: float | None) -> Field:
    return "" if value is None else value


def algo_fields(o: SimOrder) -> Fields:
    """algoStrategy, and when there is one its parameters (count, then tag and value pairs)."""
    if not o.algo:
        return [""]
    return [o.algo, len(o.algo_params), *(x for pair in o.algo_params for x in pair)]


def open_order(
    version: int,
    o: SimOrder,
    status: str | None = None,
    commission: float | None = None,
    margin: tuple[float, float, float] | None = None,
) -> Fields:
    """openOrder (5): 120 fields at v157 and the tail for v159/160/162/170 (no version field); a what-if
    order carries its margin (init, maint, equity with loan) before/change/after in the order state."""
    if margin is None:
        unset: Fields = [UNSET_DOUBLE_TEXT] * 9
    else:
        unset = [0.0, 0.0, margin[2], margin[0], margin[1], 0.0, margin[0], margin[1], margin[2]]
    comm: Fields = [commission, "", "", "USD"] if commission is not None else ["", "", "", ""]
    trail = _price(o.trail_stop_price)  # sent twice; the decoders keep the second
    trail_again: Field = UNSET_DOUBLE_TEXT if o.trail_stop_price is None else o.trail_stop_price
    offset: Field = UNSET_DOUBLE_TEXT if o.lmt_price_offset is None else o.lmt_price_offset
    fields: Fields = [
        5, o.wire_id, *contract_fields(o.contract),
        o.action, o.quantity, o.order_type, _price(o.lmt_price), _price(o.aux_price), o.tif, o.oca_group,
        o.account, "", 0, o.order_ref, o.client_id, o.perm_id, o.outside_rth, 0, 0, "", "",
        "", "", "", *fa_profile(version), "", o.good_till, "", "", "",  # fa*, modelCode .. firm
        0, "", -1, 0, "", "", "", "", "",  # shortSaleSlot .. stockRangeUpper
        UNSET_INT_TEXT, 0, 0, 0, "", o.oca_type or 3, 0, 0, "", o.parent_id, o.trigger_method, "", 0,
        "", "", 0, 0, trail, _price(o.trailing_percent), "", "", "",  # deltaNeutral .. comboLegsDescrip
        0, 0, 0, UNSET_INT_TEXT, UNSET_INT_TEXT, "", "",  # combo counts, scale, hedgeType
        0, "", "IB", 0, 0, *algo_fields(o), 0, o.what_if,  # optOutSmartRouting .. whatIf
        status or o.status, *unset, *comm, "",  # orderState, commission block, warningText
        0, 0, 0, "",  # randomizeSize, randomizePrice, numConditions, adjustedOrderType
        UNSET_DOUBLE_TEXT, trail_again, offset, *[UNSET_DOUBLE_TEXT] * 3,  # triggerPrice .. adjusted
        0, "", "", "", "", 0, 0, 0, 0,  # adjustableTrailingUnit .. usePriceMgmtAlgo
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


def exec_details(version: int, req_id: int, e: ExecRecord) -> Fields:
    """execDetails (11): exactly 31 fields, no version field; v178 adds pendingPriceRevision."""
    fields: Fields = [
        11, req_id, e.order_id, *contract_fields(e.contract), e.exec_id, e.time, e.account,
        e.contract.exchange if e.contract.exchange != "SMART" else (e.contract.primary_exchange or "ISLAND"),
        e.side, e.shares, e.price, e.perm_id, e.client_id, 0, e.cum_qty, e.avg_price, e.order_ref,
        "", "", "", 1,
    ]  # fmt: skip
    if version >= 178:
        fields.append(0)  # pendingPriceRevision
    return fields


def exec_details_end(req_id: int) -> Fields:
    return [55, 1, req_id]


def commission_report(e: ExecRecord) -> Fields:
    """commissionReport (59): exactly 8 fields; realized P&L unset on opening fills, as TWS sends it."""
    pnl: Field = UNSET_DOUBLE_TEXT if e.realized_pnl is None else e.realized_pnl
    return [59, 1, e.exec_id, e.commission, e.currency, pnl, UNSET_DOUBLE_TEXT, ""]


def completed_order(version: int, o: SimOrder, completed_time: str) -> Fields:
    """completedOrder (101): no orderId, clientId or version field; the status comes after `solicited`."""
    fields: Fields = [
        101, *contract_fields(o.contract),
        o.action, o.quantity, o.order_type, _price(o.lmt_price), _price(o.aux_price), o.tif, o.oca_group,
        o.account, "", 0, o.order_ref, o.perm_id, o.outside_rth, 0, 0, "",  # .. goodAfterTime
        "", "", "", *fa_profile(version), "", "", "", "", "",  # fa*, modelCode .. percentOffset, firm
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
