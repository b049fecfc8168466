"""Issue 19's order types and the simulator's IB behaviour for each, end to end: the real ib_async /
ib_insync client, the adapter and the fold, against the TWS simulator; prices and the clock are moved
through the simulator's control channel (no sleeps: every wait is on a condition)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import ib_async
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.ib.adapter import IBAdapter
from adapters.tws_sim import SimConfig, TwsSimulator
from adapters.tws_sim import control as channel
from adapters.tws_sim.control import CONTROL_FILE
from events.schema import BrokerError, Contract, ModifyRequested, OpenOrderReported, OrderRequested
from tests.ib_helpers import MAIN, Cell, FoldingSink, matrix, request, session, until

NEW_YORK = ZoneInfo("America/New_York")
REFUSED = ("rejected", "inactive")


@asynccontextmanager
async def harness(
    ib: Cell, tmp: Path, **config: Any
) -> AsyncIterator[tuple[TwsSimulator, IBAdapter, FoldingSink, Control]]:
    cfg = SimConfig(control_file=str(tmp / CONTROL_FILE), **config)
    async with session(ib, cfg) as (sim, adapter, sink):
        yield sim, adapter, sink, Control(tmp, sim)


class Control:
    """The control channel as `oms sim price|clock|restart` uses it."""

    def __init__(self, data_dir: Path, sim: TwsSimulator) -> None:
        self.data_dir = data_dir
        self.sim = sim

    async def price(self, symbol: str, price: float) -> None:
        reply = await channel.send(self.data_dir, "price", {"symbol": symbol, "price": price})
        assert reply.ok and reply.price == price, reply

    async def clock(self, when: str) -> None:
        reply = await channel.send(self.data_dir, "clock", {"when": when})
        assert reply.ok, reply

    def new_york(self, hhmm: str, days: int = 0) -> str:
        """Today (the simulator's day, a weekday) at HH:MM New York, ISO 8601 with its offset."""
        day = datetime.fromtimestamp(self.sim.now(), NEW_YORK).date() + timedelta(days=days)
        hour, minute = (int(x) for x in hhmm.split(":"))
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK).isoformat()


async def place(adapter: IBAdapter, sink: FoldingSink, req: OrderRequested) -> int:
    sink(req)
    return await adapter.place(req)


def on(contract: Contract, coid: str, **kw: Any) -> OrderRequested:
    return msgspec.structs.replace(request(coid, **kw), contract=contract)


def stops(sink: FoldingSink, order_id: int) -> list[float]:
    """The trailing stop of each openOrder IB sent for the order, in order (its timeline)."""
    return [
        e.trail_stop_price
        for e in sink.of(OpenOrderReported)
        if e.order_id == order_id and e.trail_stop_price is not None
    ]


def codes(sink: FoldingSink, order_id: int) -> list[int]:
    return [e.code for e in sink.of(BrokerError) if e.req_id == order_id]


@matrix
def test_trailing_stop_ratchets_reports_each_move_and_triggers(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        async with harness(ib, tmp_path) as (sim, adapter, sink, ctl):
            await ctl.price("AAPL", 100.0)
            oid = await place(
                adapter, sink, request("tr-1", side="SELL", order_type="TRAIL", trailing_amount=1.0)
            )
            await until(lambda: sink.state.orders["tr-1"].trail_stop_price == 99.0, "initial stop 99")
            await ctl.price("AAPL", 102.0)
            await until(lambda: sink.state.orders["tr-1"].trail_stop_price == 101.0, "stop up to 101")
            await ctl.price("AAPL", 101.5)  # down: a sell's stop never moves down
            await ctl.price("AAPL", 103.25)
            await until(lambda: sink.state.orders["tr-1"].trail_stop_price == 102.25, "stop up to 102.25")
            assert sink.state.orders["tr-1"].status == "submitted"
            await ctl.price("AAPL", 102.2)  # through the stop: a market order at the price
            await until(lambda: sink.state.orders["tr-1"].status == "filled", "triggered and filled")
            order = sink.state.orders["tr-1"]
            assert order.avg_fill_price == Decimal("102.2")
            assert stops(sink, oid)[:3] == [99.0, 101.0, 102.25]  # each move in the order's timeline
            assert order.trail_stop_price == stops(sink, oid)[-1]
            (sim_order,) = sim.orders
            assert sim_order.trail_stop_price == 102.25

    asyncio.run(run())


@matrix
def test_trailing_stop_limit_by_percent_with_offset(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        async with harness(ib, tmp_path) as (_sim, adapter, sink, ctl):
            await ctl.price("AAPL", 100.0)
            req = request("tl-1", order_type="TRAIL LIMIT", trailing_percent=1.0, limit_offset=0.1, qty=5)
            await place(adapter, sink, req)
            await until(lambda: sink.state.orders["tl-1"].trail_stop_price == 101.0, "buy stop 101")
            assert sink.state.orders["tl-1"].limit_price == 101.1  # stop + offset, as IB reports it
            await ctl.price("AAPL", 98.0)
            await until(lambda: sink.state.orders["tl-1"].trail_stop_price == 98.98, "stop down to 98.98")
            assert sink.state.orders["tl-1"].limit_price == 99.08
            await ctl.price("AAPL", 99.0)
            await until(lambda: sink.state.orders["tl-1"].status == "filled", "filled at 99")
            assert sink.state.orders["tl-1"].avg_fill_price == Decimal("99")

    asyncio.run(run())


@matrix
def test_market_and_limit_if_touched(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        async with harness(ib, tmp_path) as (sim, adapter, sink, ctl):
            await ctl.price("AAPL", 100.0)
            await place(adapter, sink, request("mit-1", order_type="MIT", touch_price=95.0))
            await place(
                adapter, sink,
                request("lit-1", side="SELL", order_type="LIT", touch_price=105.0, limit_price=104.5),
            )  # fmt: skip
            await until(lambda: sink.state.orders["lit-1"].status == "submitted", "LIT working")
            await ctl.price("AAPL", 96.0)
            assert not [o for o in sim.orders if o.filled]  # IB has executed nothing
            await ctl.price("AAPL", 95.0)  # a buy MIT triggers when the price falls to its touch price
            await until(lambda: sink.state.orders["mit-1"].status == "filled", "MIT filled")
            assert sink.state.orders["mit-1"].avg_fill_price == Decimal("95")
            await ctl.price("AAPL", 105.2)
            await until(lambda: sink.state.orders["lit-1"].status == "filled", "LIT filled")
            assert sink.state.orders["lit-1"].avg_fill_price == Decimal("105.2")
            assert sink.state.orders["lit-1"].touch_price == 105.0

    asyncio.run(run())


@matrix
def test_market_and_limit_on_close_trade_in_the_closing_auction(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        async with harness(ib, tmp_path) as (sim, adapter, sink, ctl):
            await ctl.clock(ctl.new_york("15:40"))
            await ctl.price("IBM", 150.0)
            moc = await place(adapter, sink, request("moc-1", "IBM", order_type="MOC"))
            loc = await place(adapter, sink, request("loc-1", "IBM", order_type="LOC", limit_price=140.0))
            await until(lambda: sink.state.orders["loc-1"].status == "submitted", "acknowledged")
            await ctl.clock(ctl.new_york("15:51"))  # from 15:50: no cancel, no modify
            await adapter.cancel(moc)
            change = ModifyRequested(client_order_id="loc-1", limit_price=139.0)
            sink(change)
            await adapter.modify("loc-1", loc, change)
            await until(lambda: codes(sink, moc) == [161] and codes(sink, loc) == [201], "both refused")
            assert [o.lmt_price for o in sim.orders if o.order_type == "LOC"] == [140.0]
            await ctl.price("IBM", 151.0)
            assert not [o for o in sim.orders if o.filled]  # nothing before the close
            await ctl.clock("16:00")  # HH:MM: New York, the simulator's day
            await until(lambda: sink.state.orders["moc-1"].status == "filled", "MOC filled at the close")
            assert sink.state.orders["moc-1"].avg_fill_price == Decimal("151")
            await until(lambda: sink.state.orders["loc-1"].status == "cancelled", "LOC not crossed")

    asyncio.run(run())


@matrix
def test_on_close_orders_refused_after_the_cutoff_and_without_an_auction(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        async with harness(ib, tmp_path) as (_sim, adapter, sink, ctl):
            await ctl.clock(ctl.new_york("15:52"))
            nyse = await place(adapter, sink, request("moc-nyse", "IBM", order_type="MOC"))
            nasdaq = await place(adapter, sink, request("moc-nasdaq", "AAPL", order_type="MOC"))
            await until(lambda: sink.state.orders["moc-nyse"].status in REFUSED, "NYSE after 15:50")
            assert 201 in codes(sink, nyse)
            await until(lambda: sink.state.orders["moc-nasdaq"].status == "submitted", "Nasdaq till 15:55")
            await ctl.clock(ctl.new_york("15:56"))
            late = await place(adapter, sink, request("moc-late", "AAPL", order_type="MOC"))
            await until(lambda: 201 in codes(sink, late), "Nasdaq after 15:55")
            eur = Contract(symbol="EUR", sec_type="CASH", exchange="IDEALPRO", currency="USD")
            fx = await place(adapter, sink, on(eur, "moc-fx", order_type="MOC", qty=20000))
            await until(lambda: codes(sink, fx) == [387], "no closing auction: 387")
            assert not codes(sink, nasdaq)

    asyncio.run(run())


@matrix
def test_good_till_date_ends_at_its_time(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        async with harness(ib, tmp_path) as (sim, adapter, sink, ctl):
            await ctl.price("AAPL", 100.0)
            await ctl.clock(ctl.new_york("11:00"))
            till = ctl.new_york("11:30")
            gtd = request("gtd-1", order_type="LMT", limit_price=90.0, tif="GTD", good_till=till)
            oid = await place(adapter, sink, gtd)
            await place(adapter, sink, msgspec.structs.replace(gtd, client_order_id="gtd-2"))
            await until(lambda: sink.state.orders["gtd-2"].status == "submitted", "working")
            later = ModifyRequested(client_order_id="gtd-1", good_till=ctl.new_york("12:00"))
            sink(later)
            await adapter.modify("gtd-1", oid, later)  # a GTD order's time is what IB lets change
            await ctl.clock("+29m")
            assert sink.state.orders["gtd-2"].status == "submitted"
            await ctl.clock("+2m")
            await until(lambda: sink.state.orders["gtd-2"].status == "cancelled", "ended at its time")
            assert sink.state.orders["gtd-2"].good_till == till
            assert [o.status for o in sim.orders if o.order_id == oid] == ["Submitted"]  # its time: 12:00
            await ctl.clock("12:00:01")
            await until(lambda: sink.state.orders["gtd-1"].status == "cancelled", "ended at its new time")

    asyncio.run(run())


@matrix
def test_fill_or_kill(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        async with harness(ib, tmp_path, partial_fills=3) as (_sim, adapter, sink, ctl):
            await ctl.price("AAPL", 100.0)
            await place(adapter, sink, request("fok-1", order_type="LMT", limit_price=99.0, tif="FOK"))
            await place(
                adapter, sink, request("fok-2", order_type="LMT", limit_price=101.0, tif="FOK", qty=9)
            )
            await until(lambda: sink.state.orders["fok-1"].status == "cancelled", "not fillable: cancelled")
            await until(lambda: sink.state.orders["fok-2"].status == "filled", "filled whole")
            assert sink.state.orders["fok-1"].filled == 0 and sink.state.orders["fok-2"].filled == 9

    asyncio.run(run())


@matrix
def test_opening_auction_only(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        async with harness(ib, tmp_path) as (sim, adapter, sink, ctl):
            late = await place(adapter, sink, request("opg-late", order_type="MKT", tif="OPG"))
            await until(lambda: sink.state.orders["opg-late"].status in REFUSED, "after 09:28: refused")
            assert 201 in codes(sink, late)
            await ctl.clock(ctl.new_york("08:00", days=1 if _weekday_after(ctl) else 3))
            await ctl.price("AAPL", 100.0)
            await place(adapter, sink, request("opg-1", order_type="MKT", tif="OPG"))
            await place(adapter, sink, request("opg-2", order_type="LMT", limit_price=90.0, tif="OPG"))
            await until(lambda: sink.state.orders["opg-2"].status == "submitted", "held for the open")
            await ctl.price("AAPL", 101.0)
            assert not [o for o in sim.orders if o.filled]  # nothing before the open
            await ctl.clock("+1h31m")  # 09:31: the opening auction
            await until(lambda: sink.state.orders["opg-1"].status == "filled", "filled in the auction")
            assert sink.state.orders["opg-1"].avg_fill_price == Decimal("101")
            await until(lambda: sink.state.orders["opg-2"].status == "cancelled", "limit not reached")

    asyncio.run(run())


def _weekday_after(ctl: Control) -> bool:
    return datetime.fromtimestamp(ctl.sim.now(), NEW_YORK).weekday() < 4  # Monday to Thursday


@matrix
def test_oca_type_1_cancels_the_others(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        async with harness(ib, tmp_path) as (_sim, adapter, sink, ctl):
            await ctl.price("AAPL", 100.0)
            for coid, limit in (("oca-a", 105.0), ("oca-b", 106.0)):
                req = request(
                    coid, side="SELL", order_type="LMT", limit_price=limit, oca_group="g1", oca_type=1
                )
                await place(adapter, sink, req)
            await until(lambda: sink.state.orders["oca-b"].status == "submitted", "both working")
            await ctl.price("AAPL", 106.0)
            await until(lambda: sink.state.orders["oca-b"].status == "cancelled", "the other cancelled")
            assert sink.state.orders["oca-a"].status == "filled"
            assert sink.state.orders["oca-a"].filled + sink.state.orders["oca-b"].filled == 10

    asyncio.run(run())


@matrix
def test_oca_types_2_and_3_reduce_the_others(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        async with harness(ib, tmp_path) as (_sim, adapter, sink, ctl):
            await ctl.price("AAPL", 100.0)
            for coid, limit, qty, kind in (("r-a", 99.0, 10, 2), ("r-b", 95.0, 25, 2), ("r-c", 94.0, 10, 3)):
                group = "g2" if kind == 2 else "g3"
                req = request(
                    coid, order_type="LMT", limit_price=limit, qty=qty, oca_group=group, oca_type=kind
                )
                await place(adapter, sink, req)
            await until(lambda: sink.state.orders["r-c"].status == "submitted", "all working")
            await ctl.price("AAPL", 99.0)
            await until(lambda: sink.state.orders["r-b"].quantity == 15, "reduced by the 10 filled")
            assert sink.state.orders["r-b"].status == "submitted"
            assert sink.state.orders["r-c"].quantity == 10  # another group
            await ctl.price("AAPL", 95.0)
            await until(lambda: sink.state.orders["r-b"].status == "filled", "the rest filled")
            assert sink.state.orders["r-b"].filled == 15

    asyncio.run(run())


@matrix
def test_bracket_whose_stop_is_a_trail_and_whose_children_are_one_oca(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        async with harness(ib, tmp_path) as (_sim, adapter, sink, ctl):
            await ctl.price("AAPL", 100.0)
            parent = request("br-p", order_type="LMT", limit_price=99.0, transmit=False)
            take = request(
                "br-tp", side="SELL", order_type="LMT", limit_price=110.0, parent_client_order_id="br-p",
                oca_group="br", transmit=False,
            )  # fmt: skip
            stop = request(
                "br-sl", side="SELL", order_type="TRAIL", trailing_amount=2.0, parent_client_order_id="br-p",
                oca_group="br",
            )  # fmt: skip
            for req in (parent, take, stop):
                sink(req)
            await adapter.place_bracket([parent, take, stop])
            await until(lambda: sink.state.orders["br-sl"].status == "submitted", "children acknowledged")
            await ctl.price("AAPL", 99.0)
            await until(lambda: sink.state.orders["br-p"].status == "filled", "parent filled")
            await ctl.price("AAPL", 104.0)
            await until(lambda: sink.state.orders["br-sl"].trail_stop_price == 102.0, "stop trails")
            await ctl.price("AAPL", 101.5)
            await until(lambda: sink.state.orders["br-sl"].status == "filled", "trailing stop filled")
            await until(lambda: sink.state.orders["br-tp"].status == "cancelled", "take-profit cancelled")

    asyncio.run(run())


@matrix
def test_adaptive_algo_passes_through(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        async with harness(ib, tmp_path) as (sim, adapter, sink, _ctl):
            req = request("alg-1", order_type="LMT", limit_price=1.0, algo="Adaptive", algo_priority="Urgent")
            await place(adapter, sink, req)
            await until(lambda: sink.state.orders["alg-1"].status == "submitted", "working")
            (order,) = sim.orders
            assert (order.algo, order.algo_params) == ("Adaptive", (("adaptivePriority", "Urgent"),))
            assert sink.state.orders["alg-1"].algo_priority == "Urgent"

    asyncio.run(run())


@matrix
def test_modify_changes_the_trail_and_the_touch_price(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        async with harness(ib, tmp_path) as (sim, adapter, sink, ctl):
            await ctl.price("AAPL", 100.0)
            trail = await place(
                adapter, sink, request("m-tr", side="SELL", order_type="TRAIL", trailing_amount=1.0)
            )
            touch = await place(adapter, sink, request("m-mit", order_type="MIT", touch_price=90.0))
            await until(lambda: sink.state.orders["m-mit"].status == "submitted", "working")
            for coid, oid, change in (
                ("m-tr", trail, ModifyRequested(client_order_id="m-tr", trailing_amount=3.0)),
                ("m-mit", touch, ModifyRequested(client_order_id="m-mit", touch_price=92.0)),
            ):
                sink(change)
                await adapter.modify(coid, oid, change)
            await until(lambda: {o.aux_price for o in sim.orders} == {3.0, 92.0}, "IB has the new terms")
            await ctl.price("AAPL", 103.0)  # a trail of 3: the stop moves to 100, not 102
            await until(lambda: sink.state.orders["m-tr"].trail_stop_price == 100.0, "trails by 3")

    asyncio.run(run())


@matrix
def test_contract_without_exchange_or_currency_is_321_before_any_200(ib: Cell, tmp_path: Path) -> None:
    async def run() -> None:
        async with harness(ib, tmp_path) as (_sim, adapter, sink, _ctl):
            no_exchange = Contract(symbol="ZZZZNOTREAL", exchange="")
            no_currency = Contract(symbol="ZZZZNOTREAL", currency="")
            a = await place(adapter, sink, on(no_exchange, "v-1"))
            b = await place(adapter, sink, on(no_currency, "v-2"))
            await until(lambda: codes(sink, a) and codes(sink, b), "both answered")
            assert codes(sink, a) == [321] and codes(sink, b) == [321]  # never 200, though unknown

    asyncio.run(run())


def test_every_request_is_answered_within_a_second(tmp_path: Path) -> None:
    """Historical bars from the price path; head timestamps IB's 162; a request not modelled IB's 322."""

    async def run() -> None:
        async with harness(MAIN[0], tmp_path) as (sim, _adapter, _sink, ctl):
            await ctl.price("AAPL", 150.0)
            ib = ib_async.IB()
            await ib.connectAsync("127.0.0.1", sim.port, clientId=9)
            try:
                aapl = ib_async.Stock("AAPL", "SMART", "USD")
                started = time.monotonic()
                bars = await ib.reqHistoricalDataAsync(aapl, "", "1 D", "1 hour", "TRADES", False)
                assert len(bars) == 24 and bars[-1].close == 150.0
                assert await ib.reqHeadTimeStampAsync(aapl, "TRADES", True, 1) == []
                assert await ib.reqMatchingSymbolsAsync("AAP") == []
                assert time.monotonic() - started < 1.0
            finally:
                ib.disconnect()

    asyncio.run(run())


# ---- properties ------------------------------------------------------------------------------------

moves = st.lists(st.integers(min_value=-300, max_value=300), min_size=1, max_size=12)


@settings(max_examples=12, deadline=None)
@given(steps=moves, trail=st.sampled_from([0.5, 1.0, 2.25]))
def test_property_fold_trail_stop_is_the_last_stop_ib_reported(
    tmp_path_factory: Any, steps: list[int], trail: float
) -> None:
    async def run() -> None:
        async with harness(MAIN[0], tmp_path_factory.mktemp("p")) as (sim, adapter, sink, ctl):
            price = 100.0
            await ctl.price("AAPL", price)
            oid = await place(
                adapter, sink, request("pt", side="SELL", order_type="TRAIL", trailing_amount=trail)
            )
            await until(lambda: stops(sink, oid), "first stop")
            for step in steps:
                price = round(max(1.0, price + step / 100), 2)
                await ctl.price("AAPL", price)
                await adapter.ib.reqCurrentTimeAsync()  # a round trip: what the price caused has arrived
            (sim_order,) = sim.orders
            await until(lambda: stops(sink, oid)[-1] == sim_order.trail_stop_price, "the last stop arrived")
            assert sink.state.orders["pt"].trail_stop_price == stops(sink, oid)[-1]

    asyncio.run(run())


@settings(max_examples=12, deadline=None)
@given(
    limits=st.lists(st.integers(min_value=95, max_value=105), min_size=2, max_size=4),
    path=st.lists(st.integers(min_value=90, max_value=110), min_size=1, max_size=6),
)
def test_property_oca_type_1_never_fills_more_than_one_order(
    tmp_path_factory: Any, limits: list[int], path: list[int]
) -> None:
    async def run() -> None:
        async with harness(MAIN[0], tmp_path_factory.mktemp("p")) as (sim, adapter, sink, ctl):
            await ctl.price("AAPL", 100.0)
            for n, limit in enumerate(limits):
                req = request(
                    f"o{n}", order_type="LMT", limit_price=float(limit), qty=10, oca_group="P", oca_type=1
                )
                await place(adapter, sink, req)
            for price in path:
                await ctl.price("AAPL", float(price))
            await adapter.ib.reqCurrentTimeAsync()
            assert sum(o.filled for o in sim.orders) <= 10
            filled = [o for o in sim.orders if o.filled]
            assert len(filled) <= 1
            await until(
                lambda: (
                    sum(o.filled for o in sink.state.orders.values()) == sum(o.filled for o in sim.orders)
                ),
                "fold caught up",
            )

    asyncio.run(run())


def test_the_clock_takes_a_time_with_its_zone_a_new_york_time_or_a_duration() -> None:
    now = datetime(2026, 12, 4, 10, 0, tzinfo=NEW_YORK).timestamp()
    assert channel.parse_when("+1h30m", now) == now + 5400
    assert channel.parse_when("+2d", now) == now + 2 * 86400
    assert channel.parse_when("16:00", now) == now + 6 * 3600
    assert channel.parse_when("2026-12-04T21:00:00+00:00", now) == now + 6 * 3600
    for bad in ("+", "+5x", "tomorrow", "2026-12-04T16:00"):
        with pytest.raises(ValueError):
            channel.parse_when(bad, now)
