"""reqHistoricalData answered from the price paths: bars that end at the path's current price, walked
back deterministically (seeded by the instrument, the bar size and the end), so the same request gets
the same bars. A bar size or duration TWS does not take is the historical data service's error 162;
no more than `MAX_BARS` bars are sent (IB paces and caps large requests too).

historicalData (17) carries every bar in one message, then the start and end of the range; that is the
layout through server version 178 (ib_async / ib_insync `decoder.historicalData`).
"""

from __future__ import annotations

import math
import random
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec

from adapters.tws_sim.catalog import Instrument
from adapters.tws_sim.framing import Field
from adapters.tws_sim.hours import SESSIONS
from adapters.tws_sim.prices import VOLATILITY, on_grid
from adapters.tws_sim.requests import Reader, read_contract
from adapters.tws_sim.timing import good_till_epoch
from events.schema import Contract

MAX_BARS = 2000
BAR_UNITS = {"sec": 1, "secs": 1, "min": 60, "mins": 60, "hour": 3600, "hours": 3600, "day": 86400,
             "week": 7 * 86400, "month": 30 * 86400}  # fmt: skip
DURATION_UNITS = {"S": 1, "D": 86400, "W": 7 * 86400, "M": 30 * 86400, "Y": 365 * 86400}
BAD_BAR_SIZE = "Historical Market Data Service error message:Bar size setting is invalid"
BAD_DURATION = "Historical Market Data Service error message:Duration format is invalid"


class HistoryRequest(msgspec.Struct, frozen=True):
    req_id: int
    contract: Contract
    end: str
    bar_size: str
    duration: str
    format_date: int


def parse_history_request(fields: list[str]) -> HistoryRequest:
    """reqHistoricalData (20), no version field: reqId, the contract with primaryExchange, includeExpired,
    endDateTime, barSizeSetting, durationStr, useRTH, whatToShow, formatDate, ..."""
    r = Reader(fields, 1)
    req_id = r.integer()
    contract = read_contract(r)
    r.skip(1)  # includeExpired
    end, bar_size, duration = r.next(), r.next(), r.next()
    r.skip(2)  # useRTH, whatToShow
    return HistoryRequest(req_id, contract, end, bar_size, duration, r.integer(1))


def seconds_of(text: str, units: dict[str, int], pattern: str) -> int | None:
    match = re.fullmatch(pattern, text.strip())
    if not match or int(match.group(1)) <= 0 or match.group(2) not in units:
        return None
    return int(match.group(1)) * units[match.group(2)]


def end_epoch(text: str, now: float, tws_zone: str) -> float | None:
    """endDateTime: empty for now, otherwise read as IB reads a goodTillDate (same two forms)."""
    return good_till_epoch(text, tws_zone) if text.strip() else now


def bars(
    req: HistoryRequest, inst: Instrument, price: float, end: float, seed: int
) -> list[Field] | tuple[int, str]:
    """historicalData's fields for the request, or (code, text) of the error TWS answers instead."""
    step = seconds_of(req.bar_size, BAR_UNITS, r"(\d+)\s+([a-z]+)")
    if step is None:
        return 162, BAD_BAR_SIZE
    span = seconds_of(req.duration, DURATION_UNITS, r"(\d+)\s+([SDWMY])")
    if span is None:
        return 162, BAD_DURATION
    count = max(1, min(MAX_BARS, span // step))
    rng = random.Random(f"{seed}:{inst.key}:{step}:{int(end)}")
    tz = ZoneInfo(SESSIONS[inst.session].tz)
    sigma = VOLATILITY * math.sqrt(max(1.0, step / 60))  # the path's move per minute
    closes = [price]
    for _ in range(count - 1):
        closes.append(on_grid(closes[-1] / math.exp(rng.gauss(0.0, sigma)), inst.min_tick))
    closes.reverse()
    out: list[Field] = []
    first_open = closes[0]
    for n, close in enumerate(closes):
        start = end - (count - n) * step
        open_ = closes[n - 1] if n else first_open
        high = max(open_, close) + inst.min_tick * rng.randint(0, 3)
        low = max(inst.min_tick, min(open_, close) - inst.min_tick * rng.randint(0, 3))
        volume = rng.randint(100, 10_000)
        out += [_stamp(start, step, tz, req.format_date), open_, round(high, 10), round(low, 10), close,
                volume, round((high + low + close) / 3, 10), rng.randint(1, 500)]  # fmt: skip
    first = _stamp(end - count * step, 1, tz, req.format_date)
    return [17, req.req_id, first, _stamp(end, 1, tz, req.format_date), count, *out]


def _stamp(epoch: float, step: int, tz: ZoneInfo, format_date: int) -> str:
    if format_date == 2:
        return str(int(epoch))
    moment = datetime.fromtimestamp(epoch, tz)
    if step >= 86400:
        return f"{moment:%Y%m%d}"
    return f"{moment:%Y%m%d %H:%M:%S} {tz.key}"
