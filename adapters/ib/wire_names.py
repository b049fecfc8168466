"""IB's API message ids and their names (the ids of IB's own `ibapi/message.py`), both directions.

Used to print a wire capture as messages. The ids are IB's, not a client library's: a capture from any
client reads the same.
"""

from __future__ import annotations

FROM_TWS: dict[int, str] = {
    1: "tickPrice", 2: "tickSize", 3: "orderStatus", 4: "error", 5: "openOrder", 6: "updateAccountValue",
    7: "updatePortfolio", 8: "updateAccountTime", 9: "nextValidId", 10: "contractDetails",
    11: "execDetails", 12: "updateMktDepth", 13: "updateMktDepthL2", 14: "updateNewsBulletin",
    15: "managedAccounts", 16: "receiveFA", 17: "historicalData", 18: "bondContractDetails",
    19: "scannerParameters", 20: "scannerData", 21: "tickOptionComputation", 45: "tickGeneric",
    46: "tickString", 47: "tickEFP", 49: "currentTime", 50: "realtimeBar", 51: "fundamentalData",
    52: "contractDetailsEnd", 53: "openOrderEnd", 54: "accountDownloadEnd", 55: "execDetailsEnd",
    56: "deltaNeutralValidation", 57: "tickSnapshotEnd", 58: "marketDataType", 59: "commissionReport",
    61: "position", 62: "positionEnd", 63: "accountSummary", 64: "accountSummaryEnd",
    65: "verifyMessageAPI", 66: "verifyCompleted", 67: "displayGroupList", 68: "displayGroupUpdated",
    69: "verifyAndAuthMessageAPI", 70: "verifyAndAuthCompleted", 71: "positionMulti",
    72: "positionMultiEnd", 73: "accountUpdateMulti", 74: "accountUpdateMultiEnd",
    75: "securityDefinitionOptionParameter", 76: "securityDefinitionOptionParameterEnd",
    77: "softDollarTiers", 78: "familyCodes", 79: "symbolSamples", 80: "mktDepthExchanges",
    81: "tickReqParams", 82: "smartComponents", 83: "newsArticle", 84: "tickNews", 85: "newsProviders",
    86: "historicalNews", 87: "historicalNewsEnd", 88: "headTimestamp", 89: "histogramData",
    90: "historicalDataUpdate", 91: "rerouteMktDataReq", 92: "rerouteMktDepthReq", 93: "marketRule",
    94: "pnl", 95: "pnlSingle", 96: "historicalTicks", 97: "historicalTicksBidAsk",
    98: "historicalTicksLast", 99: "tickByTick", 100: "orderBound", 101: "completedOrder",
    102: "completedOrdersEnd", 103: "replaceFAEnd", 104: "wshMetaData", 105: "wshEventData",
    106: "historicalSchedule", 107: "userInfo",
}  # fmt: skip

TO_TWS: dict[int, str] = {
    1: "reqMktData", 2: "cancelMktData", 3: "placeOrder", 4: "cancelOrder", 5: "reqOpenOrders",
    6: "reqAccountUpdates", 7: "reqExecutions", 8: "reqIds", 9: "reqContractDetails", 10: "reqMktDepth",
    11: "cancelMktDepth", 12: "reqNewsBulletins", 13: "cancelNewsBulletins", 14: "setServerLogLevel",
    15: "reqAutoOpenOrders", 16: "reqAllOpenOrders", 17: "reqManagedAccts", 18: "requestFA",
    19: "replaceFA", 20: "reqHistoricalData", 21: "exerciseOptions", 22: "reqScannerSubscription",
    23: "cancelScannerSubscription", 24: "reqScannerParameters", 25: "cancelHistoricalData",
    49: "reqCurrentTime", 50: "reqRealTimeBars", 51: "cancelRealTimeBars", 52: "reqFundamentalData",
    53: "cancelFundamentalData", 54: "calculateImpliedVolatility", 55: "calculateOptionPrice",
    56: "cancelCalculateImpliedVolatility", 57: "cancelCalculateOptionPrice", 58: "reqGlobalCancel",
    59: "reqMarketDataType", 61: "reqPositions", 62: "reqAccountSummary", 63: "cancelAccountSummary",
    64: "cancelPositions", 65: "verifyRequest", 66: "verifyMessage", 67: "queryDisplayGroups",
    68: "subscribeToGroupEvents", 69: "updateDisplayGroup", 70: "unsubscribeFromGroupEvents",
    71: "startApi", 72: "verifyAndAuthRequest", 73: "verifyAndAuthMessage", 74: "reqPositionsMulti",
    75: "cancelPositionsMulti", 76: "reqAccountUpdatesMulti", 77: "cancelAccountUpdatesMulti",
    78: "reqSecDefOptParams", 79: "reqSoftDollarTiers", 80: "reqFamilyCodes", 81: "reqMatchingSymbols",
    82: "reqMktDepthExchanges", 83: "reqSmartComponents", 84: "reqNewsArticle", 85: "reqNewsProviders",
    86: "reqHistoricalNews", 87: "reqHeadTimeStamp", 88: "reqHistogramData", 89: "cancelHistogramData",
    90: "cancelHeadTimeStamp", 91: "reqMarketRule", 92: "reqPnL", 93: "cancelPnL", 94: "reqPnLSingle",
    95: "cancelPnLSingle", 96: "reqHistoricalTicks", 97: "reqTickByTickData", 98: "cancelTickByTickData",
    99: "reqCompletedOrders", 100: "reqWshMetaData", 101: "cancelWshMetaData", 102: "reqWshEventData",
    103: "cancelWshEventData", 104: "reqUserInfo",
}  # fmt: skip


def name_of(msg_id: int | None, to_tws: bool) -> str:
    if msg_id is None:
        return "?"
    return (TO_TWS if to_tws else FROM_TWS).get(msg_id, f"unknown{msg_id}")
