"""Real TWS frames (../shared/ib-captures) through the real client's Decoder with the adapter attached:
each callback becomes one event, and the fold of those events is the state the frames mean."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.ib.adapter import IBAdapter
from adapters.ib.clientlib import LIBRARIES
from adapters.ib.refdata import contract_info_of
from events.schema import (
    BrokerError,
    CommissionReported,
    ExecutionReported,
    OpenOrderReported,
    OrderStatusReported,
    PositionReported,
)
from tests.ib_helpers import FoldingSink, capture_frames, server_version_of

# message ids whose callback the adapter hooks (each frame -> exactly one event)
HOOKED = {"3", "4", "5", "6", "11", "59", "61", "73", "101"}


def decode(library: str, path: Path, sink: FoldingSink | None = None, **adapter_kw: Any) -> FoldingSink:
    """Feed a capture's frames to the decoder of an adapter's (unconnected) client."""
    sink = sink or FoldingSink()

    async def run() -> None:
        adapter = IBAdapter(sink=sink, state_provider=lambda: sink.state, library=library, **adapter_kw)
        decoder = adapter.ib.client.decoder
        decoder.serverVersion = server_version_of(path)
        for fields in capture_frames(path):
            decoder.interpret(fields)

    asyncio.run(run())
    return sink


def played(library: str, path: Path, **adapter_kw: Any) -> FoldingSink:
    """Send a capture's frames over the socket from a simulator at the capture's server version to a
    connected adapter; the sink keeps what came after the connection's own start-up."""
    from adapters.tws_sim.playback import read_capture
    from tests.ib_helpers import Cell, session

    async def run() -> FoldingSink:
        async with session(Cell(library, server_version_of(path)), **adapter_kw) as (sim, adapter, sink):
            sink.events.clear()
            for req_id in {int(f[1]) for f in read_capture(path) if f[0] == "11" and int(f[1]) > 0}:
                adapter.ib.wrapper.startReq(req_id)  # the reply to a reqExecutions the adapter did not send
            await sim.play_capture(path, client_id=7)
            await adapter.ib.reqCurrentTimeAsync()  # a round trip: every frame before it was decoded
            return sink

    return asyncio.run(run())


FEEDS = pytest.mark.parametrize("feed", [decode, played], ids=["decoder", "socket"])
Feed = Callable[..., FoldingSink]


def all_captures(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.txt"))


@pytest.mark.parametrize("library", LIBRARIES)
def test_every_capture_decodes_into_one_event_per_hooked_callback(
    library: str, captures_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for path in all_captures(captures_dir):
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            sink = decode(library, path)
        # replies to requests nobody made here (contract details, account summary) may fail; ours may not
        decoder_errors = [
            r
            for r in caplog.records
            if r.getMessage().startswith("Error for")
            or any(f"fields: ['{m}'" in r.getMessage() for m in HOOKED)
        ]
        assert not decoder_errors, f"{path.name}: {decoder_errors[0].getMessage()[:300]}"
        hooked = [f for f in capture_frames(path) if f[0] in HOOKED]
        assert len(sink.events) == len(hooked), path.name


@pytest.mark.parametrize("library", LIBRARIES)
@FEEDS
def test_tsla_market_buy_capture_is_one_filled_buy_with_commission_and_position(
    library: str, feed: Feed, captures_dir: Path
) -> None:
    sink = feed(library, captures_dir / "rust-ibapi" / "tsla_mkt_buy_fill_v163.txt")
    (order,) = sink.state.orders.values()
    assert (order.side, order.status, order.filled, order.avg_fill_price) == (
        "BUY",
        "filled",
        100,
        Decimal("196.52"),
    )
    assert order.commission == {"USD": 1} and order.perm_ids == (1376327563,) and order.external
    (execution,) = sink.of(ExecutionReported)
    assert execution.time == "20230224  12:04:56"  # raw text kept (two spaces: TWS local time)
    assert execution.time_ns == 1677240296 * 10**9  # read as UTC, the adapter's default TWS zone
    in_new_york = feed(
        library, captures_dir / "rust-ibapi" / "tsla_mkt_buy_fill_v163.txt", tws_timezone="EST"
    )
    assert in_new_york.of(ExecutionReported)[0].time_ns == 1677258296 * 10**9  # 17:04:56 UTC
    assert (execution.req_id, execution.contract.con_id, execution.exchange) == (-1, 76792991, "ISLAND")
    (commission,) = sink.of(CommissionReported)
    assert commission.realized_pnl is None  # 1.7976931348623157E308 on the wire
    positions = {p.key: p.quantity for p in sink.state.positions.values()}
    assert positions == {"DU1234567|76792991": 100.0}
    (fill,) = sink.state.fills.values()
    assert (fill.shares, fill.price, fill.commission) == (100, Decimal("196.52"), {"USD": 1})


@pytest.mark.parametrize("library", LIBRARIES)
@FEEDS
def test_es_future_limit_fill_capture(library: str, feed: Feed, captures_dir: Path) -> None:
    sink = feed(library, captures_dir / "rust-ibapi" / "es_fut_lmt_fill_v176.txt")
    (order,) = sink.state.orders.values()
    assert (order.status, order.order_type, order.limit_price, order.filled) == ("filled", "LMT", 5800.0, 1.0)
    (opened,) = sink.of(OpenOrderReported)
    assert opened.contract.multiplier == "50" and opened.contract.last_trade_date == "20250919"
    assert order.commission == {"USD": Decimal("2.25")}
    assert [p.quantity for p in sink.state.positions.values()] == [1.0]


@pytest.mark.parametrize("library", LIBRARIES)
@FEEDS
def test_es_reqexecutions_reply_keeps_its_request_id(library: str, feed: Feed, captures_dir: Path) -> None:
    sink = feed(library, captures_dir / "rust-ibapi" / "es_fut_executions_v176.txt")
    (execution,) = sink.of(ExecutionReported)
    assert execution.req_id == 9000 and execution.time == "20250708 02:35:00 America/New_York"
    assert execution.time_ns == 1751956500 * 10**9  # 06:35 UTC (EDT is UTC-4)
    assert [f.commission for f in sink.state.fills.values()] == [{"USD": Decimal("2.25")}]


@pytest.mark.parametrize("library", LIBRARIES)
@FEEDS
def test_es_open_orders_reply_is_a_working_external_order(
    library: str, feed: Feed, captures_dir: Path
) -> None:
    sink = feed(library, captures_dir / "rust-ibapi" / "es_fut_open_orders_v176.txt")
    (order,) = sink.state.orders.values()
    assert (order.status, order.external, order.quantity, order.filled) == ("submitted", True, 1.0, 0.0)


@pytest.mark.parametrize("library", LIBRARIES)
@FEEDS
def test_cancel_capture_cancels_the_order(library: str, feed: Feed, captures_dir: Path) -> None:
    sink = feed(library, captures_dir / "rust-ibapi" / "cancel_v163.txt")
    (error,) = sink.of(BrokerError)
    assert (error.req_id, error.code, error.error_class) == (41, 202, "cancel")
    assert [o.status for o in sink.state.orders.values()] == ["cancelled"]


NAUTILUS_FRAMES: dict[str, Callable[[FoldingSink], object]] = {
    "open_order_1.txt": lambda s: (
        s.of(OpenOrderReported)[0].status == "PendingCancel"
        and s.of(OpenOrderReported)[0].order_ref == "O-20231203-1921-001-000-2:190"
        and s.of(OpenOrderReported)[0].commission is None
        and s.of(OpenOrderReported)[0].limit_price is None
    ),
    "order_status_1.txt": lambda s: (
        s.of(OrderStatusReported)[0]
        == OrderStatusReported(
            order_id=216,
            perm_id=1351823369,
            client_id=2,
            status="Filled",
            filled=Decimal(3000),
            remaining=Decimal(0),
            avg_fill_price=1.08725,
            last_fill_price=1.08725,
        )
    ),
    "execution_details_1.txt": lambda s: (
        s.of(ExecutionReported)[0].time_ns == 1701652520 * 10**9
        and s.of(ExecutionReported)[0].exec_id == "0000e215.656d0000.01.01"
    ),
    "commission_report_1.txt": lambda s: (
        s.of(CommissionReported)[0]
        == CommissionReported(exec_id="0000e215.656d0002.01.01", commission=2.5, currency="USD")
    ),
    "open_positions.txt": lambda s: (
        s.of(PositionReported)[0].position == Decimal("1.24115341")
        and s.of(PositionReported)[0].contract.sec_type == "CRYPTO"
    ),
    "position_1.txt": lambda s: s.of(PositionReported)[0].position == 0.0,
    "data_connections_1.txt": lambda s: s.of(BrokerError)[0].error_class == "information",
    "data_connections_2.txt": lambda s: s.of(BrokerError)[0].code == 2107,
    "data_connections_3.txt": lambda s: s.of(BrokerError)[0].code == 2158,
}


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("name", sorted(NAUTILUS_FRAMES))
def test_nautilus_frame(library: str, name: str, captures_dir: Path) -> None:
    sink = decode(library, captures_dir / "nautilus" / name)
    assert NAUTILUS_FRAMES[name](sink), sink.events


@pytest.mark.parametrize("library", LIBRARIES)
def test_eurusd_contract_details_capture_gives_exact_ticks_sizes_and_hours(
    library: str, captures_dir: Path
) -> None:
    path = captures_dir / "nautilus" / "contract_details_eurusd.txt"
    got: list[Any] = []

    async def run() -> None:
        client = IBAdapter(library=library).ib
        client.wrapper.contractDetails = lambda _req_id, details: got.append(details)
        client.client.decoder.serverVersion = server_version_of(path)
        for fields in capture_frames(path):
            client.client.decoder.interpret(fields)

    asyncio.run(run())
    info = contract_info_of(got[0])
    assert (info.con_id, info.contract.symbol, info.contract.sec_type) == (12087792, "EUR", "CASH")
    assert (info.multiplier, info.min_tick) == (Decimal(1), Decimal("0.00005"))
    assert (info.size_increment, info.min_size) == (Decimal("0.01"), Decimal("0.01"))  # fractional sizes
    assert info.time_zone == "US/Eastern" and info.long_name == "European Monetary Union Euro"
    assert info.trading_hours.startswith(";20231203:1715-20231204:1700;") and info.liquid_hours
