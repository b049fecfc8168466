"""IB's day in the simulator, through the real client and the adapter: the nightly server reset (1100,
then 1101 with the socket up, market data requested again) and the daily automatic restart (socket
closed, reconnect with the same client id, the fill made meanwhile found once)."""

from __future__ import annotations

import asyncio
from collections import Counter

from adapters.tws_sim import SimConfig, TwsSimulator
from events.schema import ConnectionChanged, ExecutionReported, ReconciliationFinished
from tests.ib_helpers import Cell, FoldingSink, matrix, request, session, until

START = "2026-12-02T23:30-05:00"  # a Wednesday evening in New York


def states(sink: FoldingSink) -> list[str]:
    return [e.state for e in sink.of(ConnectionChanged)]


def lines(sim: TwsSimulator) -> int:
    """Market data lines the simulator is streaming to its clients."""
    return sim._call(lambda: sum(len(peer.market_data) for peer in sim.engine.peers))


def account_lines(sim: TwsSimulator) -> list[tuple[str | None, list[int], list[int]]]:
    """Each client's account subscriptions: reqAccountUpdates' account, reqAccountUpdatesMulti's and
    reqPnL's request ids."""
    return sim._call(
        lambda: [
            (p.account_subscribed, sorted(p.multi_subscriptions), sorted(p.pnl_subscriptions))
            for p in sim.engine.peers
        ]
    )


@matrix
def test_nightly_reset_keeps_the_socket_and_resubscribes_market_data(ib: Cell) -> None:
    config = SimConfig(clock_start=START, reset_at="23:45", reset_minutes=10)

    async def run() -> None:
        async with session(ib, config) as (sim, adapter, sink):
            assert await adapter.reference_price(request("x").contract) is not None
            assert lines(sim) == 1
            await until(lambda: account_lines(sim)[0][2], "reqPnL")
            [(account, multi, pnl)] = account_lines(sim)
            assert account and multi
            gtc = request("gtc-1", order_type="LMT", limit_price=1.0, tif="GTC")
            sink(gtc)
            await adapter.place(gtc)
            await until(lambda: sink.state.orders["gtc-1"].status == "submitted", "working")
            sim.advance(16 * 60)  # 23:46: the reset begins
            await until(lambda: states(sink)[-1] == "lost", "1100")
            assert lines(sim) == 1 and len(sim.connections) == 1  # the socket stays up
            sim.advance(10 * 60)  # 23:56: back, data lost
            await until(lambda: states(sink)[-1] == "restored_data_lost", "1101")
            await until(lambda: lines(sim) == 1, "market data requested again")
            await until(  # IB dropped the account subscriptions too: requested again, under new ids
                lambda: (
                    [(a, bool(m), bool(p)) for a, m, p in account_lines(sim)] == [(account, True, True)]
                    and not set(account_lines(sim)[0][1]) & set(multi)
                    and not set(account_lines(sim)[0][2]) & set(pnl)
                ),
                "account data requested again",
            )
            await until(
                lambda: not sink.state.reconciling and len(sink.of(ReconciliationFinished)) == 2, "sync"
            )
            assert states(sink) == ["connected", "lost", "restored_data_lost"]  # never disconnected
            assert sink.state.orders["gtc-1"].status == "submitted"  # GTC works on
            assert sim.connections[0].client_id == 7

    asyncio.run(run())


@matrix
def test_daily_restart_closes_the_socket_and_the_adapter_comes_back_with_its_fill_once(ib: Cell) -> None:
    config = SimConfig(clock_start="2026-12-02T10:00-05:00", restart_at="10:30", restart_minutes=2)

    async def run() -> None:
        async with session(ib, config) as (sim, adapter, sink):
            price = sim.price("AAPL")
            order = request("lmt-1", order_type="LMT", limit_price=price - 5)
            sink(order)
            await adapter.place(order)
            await until(lambda: sink.state.orders["lmt-1"].status == "submitted", "working")
            sim.advance(31 * 60)  # 10:31: TWS restarts, the socket closes
            await until(lambda: "lost" in states(sink), "socket closed")
            sim.set_price("AAPL", price - 6)  # the order fills while the adapter is away
            assert not sim.connections
            sim.advance(2 * 60)  # 10:33: back
            await until(lambda: states(sink).count("connected") == 2, "reconnected")
            await until(lambda: sink.state.orders["lmt-1"].status == "filled", "the fill found")
            await until(lambda: sink.state.orders["lmt-1"].commission, "its commission")
            assert [c.client_id for c in sim.connections] == [7]  # the same client id
            executions = Counter(e.exec_id for e in sink.of(ExecutionReported))
            assert len(executions) == 1 and len(sink.state.fills) == 1
            assert [p.quantity for p in sink.state.positions.values()] == [10]

    asyncio.run(run())


def test_the_schedule_goes_through_every_moment_crossed_in_order() -> None:
    from datetime import datetime

    from adapters.tws_sim.schedule import ZONE, Schedule

    def at(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=ZONE).timestamp()

    config = SimConfig(reset_at="23:45", reset_minutes=10, restart_at="00:30", restart_minutes=2)
    schedule = Schedule(config, at("2026-12-02T23:00"))
    assert schedule.crossed(at("2026-12-02T23:44")) == []
    assert schedule.crossed(at("2026-12-02T23:50")) == ["reset_start"]
    assert schedule.crossed(at("2026-12-03T00:31")) == ["reset_end", "restart_start"]  # across midnight
    assert schedule.crossed(at("2026-12-05T00:00")) == [  # a jump of two days goes through both
        "restart_end", "reset_start", "reset_end", "restart_start", "restart_end", "reset_start", "reset_end",
    ]  # fmt: skip
    assert schedule.crossed(at("2026-12-04T00:00")) == []  # a clock set back repeats nothing
    assert not Schedule(SimConfig(), 0.0).active and Schedule(SimConfig(), 0.0).crossed(1e12) == []
    dst = Schedule(SimConfig(reset_at="23:45"), at("2026-11-01T12:00"))  # New York falls back that night
    assert dst.crossed(at("2026-11-01T23:00")) == []  # 23:45 is wall-clock, not midnight + 23h45m
    assert dst.crossed(at("2026-11-01T23:46")) == ["reset_start"]


def test_a_bad_time_of_day_is_refused_by_name() -> None:
    import pytest

    with pytest.raises(ValueError, match="restart_at must be a time of day"):
        SimConfig(restart_at="25:00")
    with pytest.raises(ValueError, match="reset_at"):
        SimConfig(reset_at="noon")


def test_oms_sim_takes_the_schedule_from_its_flags() -> None:
    from oms.cli import build_parser, main
    from oms.cli.sim import build_config

    args = build_parser().parse_args(["sim", "--reset-at", "23:45", "--restart-at", "01:00"])
    config = build_config(args)
    assert (config.reset_at, config.restart_at, config.reset_minutes) == ("23:45", "01:00", 5.0)
    assert main(["sim", "--restart-at", "1am"]) == 2  # refused before anything listens
