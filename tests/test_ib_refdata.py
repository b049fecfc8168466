"""Reference data for risk through the adapter's own IB client against the simulator: contract details
(cached per conId) and a market-data snapshot's reference price (last, else midpoint, else close), each
failure a `ReferenceDataError` with a stable code."""

from __future__ import annotations

import asyncio
import importlib
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.ib.adapter import IBAdapter
from adapters.ib.refdata import ReferenceData, ReferenceDataError
from adapters.tws_sim import TwsSimulator
from events.schema import Contract
from tests.ib_helpers import Cell, matrix, session, until

AAPL = Contract(symbol="AAPL")
REQ_CONTRACT_DETAILS = b"9\0"
REQ_MKT_DATA = 1


def sim_answers_snapshots() -> bool:
    """Whether the simulator handles reqMktData (another helper is adding market-data snapshots)."""
    handlers = getattr(importlib.import_module("adapters.tws_sim.session"), "_HANDLERS", {})
    return REQ_MKT_DATA in handlers


def count_contract_detail_requests(adapter: IBAdapter) -> list[bytes]:
    sent: list[bytes] = []
    conn = adapter.ib.client.conn
    original = conn.sendMsg

    def record(msg: bytes) -> None:
        if msg[4:6] == REQ_CONTRACT_DETAILS:
            sent.append(msg)
        original(msg)

    conn.sendMsg = record
    return sent


@matrix
def test_contract_info_from_contract_details_is_cached_per_con_id(ib: Cell) -> None:
    async def run() -> None:
        async with session(ib) as (_sim, adapter, _sink):
            reference: ReferenceData = adapter.reference
            sent = count_contract_detail_requests(adapter)
            info = await reference.contract_info(AAPL)
            assert (info.con_id, info.contract.symbol, info.contract.sec_type) == (265598, "AAPL", "STK")
            assert info.multiplier == 1 and info.min_tick == Decimal("0.01") and info.min_tick > 0
            assert info.time_zone and info.trading_hours and info.liquid_hours
            again = await reference.contract_info(AAPL)  # the same request contract: no new request
            by_id = await reference.contract_info(Contract(symbol="AAPL", con_id=265598))  # its conId
            assert again == by_id == info and len(sent) == 1

    asyncio.run(run())


@matrix
def test_unknown_contract_and_no_connection_are_refused_with_a_code(ib: Cell) -> None:
    async def run() -> None:
        async with session(ib) as (_sim, adapter, _sink):
            with pytest.raises(ReferenceDataError, match="IB has no contract details for BOND ZZZZ") as err:
                await adapter.reference.contract_info(Contract(symbol="ZZZZ", sec_type="BOND"))
            assert err.value.code == "no_contract"  # IB's 200: no security definition
        offline = IBAdapter("127.0.0.1", 1, 9, library=ib.library)
        with pytest.raises(ReferenceDataError, match="not connected") as err:
            await offline.reference.reference_price(AAPL)
        assert err.value.code == "not_connected"

    asyncio.run(run())


@matrix
def test_reference_price_from_the_simulators_snapshot(ib: Cell) -> None:
    if not sim_answers_snapshots():
        pytest.skip("simulator lacks market data snapshots (reqMktData)")

    async def run() -> None:
        async with session(ib) as (sim, adapter, _sink):
            sim.set_price("AAPL", 187.25)
            price = await adapter.reference.reference_price(AAPL)
            assert price.con_id == 265598 and price.price == pytest.approx(187.25, abs=0.05)
            assert price.source in ("last", "midpoint", "close")

    asyncio.run(run())


@matrix
def test_reference_price_through_the_clients_market_data_decoder(ib: Cell, tmp_path: Path) -> None:
    """IB's own tick frames (tickPrice 1, tickSnapshotEnd 57) answer the adapter's snapshot request."""
    if sim_answers_snapshots():
        pytest.skip(
            "the simulator answers snapshots itself: see test_reference_price_from_the_simulators_snapshot"
        )

    async def answer(sim: TwsSimulator, adapter: IBAdapter, ticks: dict[int, float]) -> None:
        tickers = adapter.ib.wrapper.reqId2Ticker
        await until(lambda: tickers, "the snapshot request")
        (req_id,) = tickers
        frames = tmp_path / f"ticks{req_id}.txt"
        lines = [f"1|6|{req_id}|{tick}|{value}|100|0|" for tick, value in ticks.items()]
        frames.write_text("\n".join([*lines, f"57|1|{req_id}|"]) + "\n")
        await sim.play_capture(frames, client_id=7)

    async def run() -> None:
        async with session(ib) as (sim, adapter, _sink):
            adapter.reference.timeout = 0.05
            with pytest.raises(ReferenceDataError, match="did not answer a market data snapshot") as err:
                await adapter.reference.reference_price(AAPL)  # nobody answers: a timeout, never a guess
            assert err.value.code == "timeout"
            adapter.ib.wrapper.reqId2Ticker.clear()
            adapter.reference.timeout = 5.0
            cases = [
                ({1: 187.4, 2: 187.6, 4: 187.5, 9: 186.0}, (187.5, "last")),  # bid, ask, last, close
                ({1: 187.4, 2: 187.6, 9: 186.0}, (187.5, "midpoint")),
                ({2: 187.6, 9: 186.0}, (186.0, "close")),
            ]
            for ticks, expected in cases:
                asking = asyncio.ensure_future(adapter.reference.reference_price(AAPL))
                await answer(sim, adapter, ticks)
                price = await asking
                assert (price.con_id, price.price, price.source) == (265598, *expected)
                adapter.ib.wrapper.reqId2Ticker.clear()
            asking = asyncio.ensure_future(adapter.reference.reference_price(AAPL))
            await answer(sim, adapter, {})
            with pytest.raises(ReferenceDataError, match="has no last, bid/ask or close") as err:
                await asking
            assert err.value.code == "no_price"

    asyncio.run(run())
