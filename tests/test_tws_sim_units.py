"""The simulator's pure parts: framing, the placeOrder layout walk, matching and account arithmetic."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.tws_sim import SimConfig
from adapters.tws_sim.account import Position, apply_execution
from adapters.tws_sim.config import load_config
from adapters.tws_sim.framing import FrameBuffer, FramingError, encode_frame, parse_version_range
from adapters.tws_sim.matching import SimOrder, executable, split_quantity, validate, with_fill
from events.schema import Contract
from tests.test_tws_sim_support import CLIENT_LIBS, ErrorLog, run, sim_client, wait_for

FIELD = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=30)


@settings(max_examples=60, deadline=None)
@given(frames=st.lists(st.lists(FIELD, min_size=1, max_size=8), min_size=1, max_size=6), data=st.data())
def test_frames_round_trip_across_any_chunking(frames: list[list[str]], data: st.DataObject) -> None:
    wire = b"".join(encode_frame(f) for f in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=5)))
    buffer, out, last = FrameBuffer(), [], 0
    for cut in [*cuts, len(wire)]:
        out += buffer.feed(wire[last:cut])
        last = cut
    assert out == frames


def test_version_announcements() -> None:
    assert parse_version_range(["v157..176"]) == (157, 176)
    assert parse_version_range(["v157..178 +PACEAPI"]) == (157, 178)
    assert parse_version_range(["v100"]) == (100, 100)
    for bad in (["157..176"], ["vx..y"], ["v170..160"], ["v1", "v2"]):
        with pytest.raises(FramingError):
            parse_version_range(bad)


def test_oversized_frame_is_refused() -> None:
    with pytest.raises(FramingError):
        FrameBuffer().feed(b"\xff\xff\xff\xff")


def _order(**kw) -> SimOrder:
    base = {"order_id": 1, "client_id": 1, "perm_id": 1, "contract": Contract("AAPL"), "action": "BUY",
            "quantity": 10.0, "order_type": "LMT", "lmt_price": 100.0}  # fmt: skip
    return SimOrder(**{**base, **kw})


@settings(max_examples=100, deadline=None)
@given(
    price=st.floats(1, 1000),
    limit=st.floats(1, 1000),
    buy=st.booleans(),
    kind=st.sampled_from(["MKT", "LMT", "STP", "STP LMT"]),
)
def test_executable_follows_the_order_type(price: float, limit: float, buy: bool, kind: str) -> None:
    order = _order(action="BUY" if buy else "SELL", order_type=kind, lmt_price=limit, aux_price=limit)
    better_or_equal = price <= limit if buy else price >= limit
    stop_touched = price >= limit if buy else price <= limit
    expected = {
        "MKT": True,
        "LMT": better_or_equal,
        "STP": stop_touched,
        "STP LMT": stop_touched and better_or_equal,
    }[kind]
    assert executable(order, price) is expected


def test_validate_names_what_is_wrong() -> None:
    assert validate(_order()) is None
    assert "Limit price" in (validate(_order(lmt_price=None)) or "")
    assert "Stop price" in (validate(_order(order_type="STP", aux_price=None)) or "")
    assert "order type" in (validate(_order(order_type="PEG MID")) or "")
    assert "time in force" in (validate(_order(tif="GTX")) or "")
    assert "Trailing" in (validate(_order(order_type="TRAIL", aux_price=None)) or "")
    assert "Trigger price" in (validate(_order(order_type="MIT", aux_price=None)) or "")
    assert "Good till" in (validate(_order(tif="GTD")) or "")
    assert "quantity" in (validate(_order(quantity=0.0)) or "")


@settings(max_examples=100, deadline=None)
@given(quantity=st.one_of(st.integers(1, 10_000).map(float), st.floats(0.001, 1000)), parts=st.integers(1, 7))
def test_split_quantity_sums_exactly(quantity: float, parts: int) -> None:
    pieces = split_quantity(quantity, parts)
    assert sum(pieces) == pytest.approx(quantity)
    assert 1 <= len(pieces) <= parts and all(p > 0 for p in pieces)
    order = _order(quantity=quantity)
    for piece in pieces:
        order = with_fill(order, piece, 50.0)
    assert order.status == "Filled" and order.avg_fill_price == pytest.approx(50.0)


@settings(max_examples=100, deadline=None)
@given(qty=st.integers(1, 1000), buy=st.floats(1, 500), sell=st.floats(1, 500), comm=st.floats(0, 5))
def test_round_trip_realizes_the_price_difference_net_of_commission(
    qty: int, buy: float, sell: float, comm: float
) -> None:
    pos = Position("DU1", Contract("AAPL"))
    pos, opened = apply_execution(pos, qty, buy, comm)
    assert opened == 0.0 and pos.avg_cost == pytest.approx(buy + comm / qty)
    pos, realized = apply_execution(pos, -qty, sell, comm)
    assert pos.quantity == 0
    assert realized == pytest.approx((sell - buy) * qty - 2 * comm, abs=1e-6)


def test_position_flip_opens_at_the_fill_price() -> None:
    pos, _ = apply_execution(Position("DU1", Contract("AAPL")), 10, 100.0, 0.0)
    pos, realized = apply_execution(pos, -15, 110.0, 0.0)
    assert (pos.quantity, pos.avg_cost, realized) == (-5, 110.0, 100.0)


def test_config_validation_and_toml(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_server_version"):
        SimConfig(max_server_version=179)
    with pytest.raises(ValueError, match="account"):
        SimConfig(accounts=())
    toml = tmp_path / "sim.toml"
    toml.write_text('seed = 9\naccounts = ["DU1", "DU2"]\n[faults]\nreject = 0.25\nseed = 3\n')
    config = load_config(toml)
    assert (config.seed, config.accounts, config.faults.reject, config.faults.seed) == (
        9,
        ("DU1", "DU2"),
        0.25,
        3,
    )
    toml.write_text("sed = 9\n")
    with pytest.raises(msgspec.ValidationError):
        load_config(toml)


ORDERS = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["MKT", "LMT", "STP", "STP LMT"]),
        "action": st.sampled_from(["BUY", "SELL"]),
        "quantity": st.integers(1, 100_000).map(float),  # whole shares: IB refuses fractions (10243)
        "lmt": st.decimals("0.01", "99999", places=2).map(float),
        "aux": st.decimals("0.01", "99999", places=2).map(float),
        "tif": st.sampled_from(["DAY", "GTC"]),
        "ref": FIELD,
        "outside_rth": st.booleans(),
    }
)


@pytest.mark.parametrize("lib_name", CLIENT_LIBS)
@pytest.mark.parametrize("version", [157, 163, 176, 178])
def test_place_order_layout_walk_matches_the_real_clients(lib_name: str, version: int) -> None:
    """Orders encoded by the real client parse back field for field, with no field left over."""

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(specs=st.lists(ORDERS, min_size=1, max_size=4))
    def check(specs: list[dict]) -> None:
        async def body() -> None:
            handler = ErrorLog()
            handler.setLevel(logging.WARNING)
            logging.getLogger("adapters.tws_sim").addHandler(handler)
            try:
                async with sim_client(lib_name, SimConfig(max_server_version=version)) as (sim, ib, lib):
                    sim.set_price("AAPL", 1_000_000.0)  # nothing but market orders trades
                    for spec in specs:
                        order = lib.Order(
                            action=spec["action"], totalQuantity=spec["quantity"], orderType=spec["kind"],
                            tif=spec["tif"], orderRef=spec["ref"], outsideRth=spec["outside_rth"],
                        )  # fmt: skip
                        if "LMT" in spec["kind"]:
                            order.lmtPrice = spec["lmt"]
                        if "STP" in spec["kind"]:
                            order.auxPrice = spec["aux"]
                        ib.placeOrder(lib.Stock("AAPL", "SMART", "USD"), order)
                    await wait_for(lambda: len(sim.orders) == len(specs))
                    for spec, got in zip(specs, sim.orders, strict=True):
                        assert (got.action, got.quantity, got.order_type, got.tif) == (
                            spec["action"], spec["quantity"], spec["kind"], spec["tif"],
                        )  # fmt: skip
                        assert got.order_ref == spec["ref"] and got.outside_rth == spec["outside_rth"]
                        assert got.lmt_price == (spec["lmt"] if "LMT" in spec["kind"] else None)
                        assert got.aux_price == (spec["aux"] if "STP" in spec["kind"] else None)
            finally:
                logging.getLogger("adapters.tws_sim").removeHandler(handler)
            assert not [r for r in handler.records if "layout walk" in r.getMessage()]

        run(body)

    check()


def test_price_paths_are_seeded_and_independent() -> None:
    from adapters.tws_sim.prices import PricePaths

    a, b, c = PricePaths(1), PricePaths(1), PricePaths(2)
    for paths in (a, b, c):
        paths.price("AAPL")
        paths.price("MSFT")
    for paths in (a, b, c):
        paths.step(100)
    assert a.snapshot() == b.snapshot() != c.snapshot()
    lone = PricePaths(1)
    lone.price("AAPL")
    lone.step(100)
    assert lone.price("AAPL") == a.price("AAPL")  # another symbol's path does not disturb this one
    assert a.price("AAPL") != 190.0


def test_timer_ticks_move_prices() -> None:
    from adapters.tws_sim.server import TwsSimulator

    async def body() -> None:
        sim = TwsSimulator(SimConfig(tick_interval_ms=1.0))
        prices = [sim.price("SPY")]
        await sim.start()

        def ticked() -> bool:
            if sim.price("SPY") != prices[-1]:
                prices.append(sim.price("SPY"))
            return len(prices) >= 3

        try:
            await wait_for(ticked, "two ticks moved SPY")
            assert prices[0] != prices[1] != prices[2]  # no client asked: only the timer moves it
            assert all(price > 0 for price in prices)
        finally:
            await sim.stop()

    run(body)


def test_history_end_reads_as_a_good_till_date_and_empty_is_now() -> None:
    from adapters.tws_sim.history import end_epoch

    assert end_epoch(" ", 123.0, "America/New_York") == 123.0
    assert end_epoch("20261204-20:00:00", 0.0, "America/New_York") == 1796414400.0
    assert end_epoch("20261204 15:00:00", 0.0, "America/New_York") == 1796414400.0  # TWS's zone
    assert end_epoch("20261204 15:00:00 Nowhere/Zone", 0.0, "America/New_York") is None
