"""The client library and the client CLI against a real service (`oms run` with the embedded simulator)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from oms.cli import main as oms_main
from oms.client import AsyncClient, Client, OrderDone, ServiceError, ServiceUnavailable
from oms.state.model import Order, Position
from tests.client_helpers import REPO, ServiceProcess, journal_state, running_service, settled_equal
from tests.waiting import async_wait_until, wait_until

Capture = pytest.CaptureFixture[str]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_service(tmp_path_factory.mktemp("client") / "data") as running:
        yield running


def dedupe(values: list[str]) -> list[str]:
    return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]


def test_place_is_followed_from_pending_to_filled_and_the_position_to_closed(service: ServiceProcess) -> None:
    async def scenario() -> None:
        client = await AsyncClient.connect(service.data_dir, strategy_id="life")
        orders: dict[str, list[str]] = {}
        positions: list[Position] = []
        client.on_order(lambda o: orders.setdefault(o.client_order_id, []).append(o.status))
        client.on_position(lambda p: positions.append(p) if p.strategy_id == "life" else None)
        try:
            entry = await client.place("AAPL", "BUY", 10)
            filled = await client.wait_for_order(entry, "filled", timeout=10)
            assert filled.filled == 10 and filled.avg_fill_price > 0
            exit_ = await client.place("AAPL", "SELL", 10)
            await client.wait_for_order(exit_, "filled", timeout=10)
            await async_wait_until(lambda: client.positions("life")[0].status == "closed", what="closed")
            (position,) = client.positions("life")
            assert position.quantity == 0 and position.close_reason == "flat"
            await settled_equal(client, service.endpoints.router)
        finally:
            await client.close()
        assert dedupe(orders[entry]) == ["pending", "submitted", "filled"]
        assert dedupe(orders[exit_]) == ["pending", "submitted", "filled"]
        statuses = dedupe([p.status for p in positions])
        assert statuses == ["pending", "submitted", "filled", "closing", "closed"], statuses

    asyncio.run(scenario())


def test_a_late_joiner_equals_the_service_and_the_fold_of_the_journal(service: ServiceProcess) -> None:
    async def scenario() -> None:
        async with await AsyncClient.connect(service.data_dir, strategy_id="early") as early:
            first = await early.place("MSFT", "BUY", 3)
            await early.wait_for_order(first, "filled", timeout=10)
        late = await AsyncClient.connect(service.data_dir, strategy_id="late")
        try:
            known = late.order(first)  # from the snapshot
            assert known is not None and known.status == "filled"
            second = await late.place("MSFT", "SELL", 3)
            await late.wait_for_order(second, "filled", timeout=10)
            seq = await settled_equal(late, service.endpoints.router)
            assert late.state == journal_state(service.data_dir, seq)
            assert late.resyncs == 1
        finally:
            await late.close()

    asyncio.run(scenario())


def test_service_errors_surface_with_their_stable_codes(service: ServiceProcess) -> None:
    async def scenario() -> None:
        async with await AsyncClient.connect(service.data_dir, strategy_id="errs") as client:
            with pytest.raises(ServiceError) as unknown:
                await client.cancel("no-such-order")
            assert unknown.value.code == "unknown_order"
            with pytest.raises(ServiceError) as invalid:
                await client.place("AAPL", "BUY", -5)
            assert invalid.value.code == "invalid"
            with pytest.raises(ServiceError) as too_big:
                await client.place("AAPL", "BUY", 1_000_000)
            assert (too_big.value.code, too_big.value.reason) == ("risk_denied", "max_quantity")
            coid = await client.place("AAPL", "BUY", 1, client_order_id="errs-dup-1")
            assert await client.place("AAPL", "BUY", 1, client_order_id="errs-dup-1") == coid
            await client.wait_for_order(coid, "filled", timeout=10)
            assert [o.client_order_id for o in client.orders("errs") if o.status != "rejected"] == [coid]
            with pytest.raises(ServiceError) as done:
                await client.cancel(coid)
            assert done.value.code == "order_done"

    asyncio.run(scenario())


def test_cancel_a_resting_limit_order_and_a_wait_for_a_fill_that_cannot_come(
    service: ServiceProcess,
) -> None:
    async def scenario() -> None:
        async with await AsyncClient.connect(service.data_dir, strategy_id="rest") as client:
            coid = await client.place("AAPL", "BUY", 2, limit_price=1.0, tif="GTC")
            order = await client.wait_for_order(coid, "submitted", timeout=10)
            assert (order.order_type, order.limit_price) == ("LMT", 1.0)
            assert [o.client_order_id for o in client.orders("rest", open_only=True)] == [coid]
            assert await client.modify(coid, limit_price=2.0, quantity=3) == coid
            await async_wait_until(lambda: client.state.orders[coid].limit_price == 2.0, what="the modify")
            assert client.state.orders[coid].quantity == 3
            assert await client.cancel(coid) == coid
            with pytest.raises(OrderDone) as ended:
                await client.wait_for_order(coid, "filled", timeout=10)
            assert ended.value.order.status == "cancelled"
            assert client.orders("rest", open_only=True) == []

    asyncio.run(scenario())


def test_cancel_all_of_one_strategy_and_the_kill_switch(service: ServiceProcess) -> None:
    async def scenario() -> None:
        async with await AsyncClient.connect(service.data_dir, strategy_id="many") as client:
            other = await client.place("AAPL", "BUY", 1, limit_price=1.0, strategy_id="bystander")
            mine = [await client.place("AAPL", "BUY", 1, limit_price=1.0 + i) for i in range(2)]
            assert sorted(await client.cancel_all("many")) == sorted(mine)
            for coid in mine:
                await client.wait_for_order(coid, "cancelled", timeout=10)
            assert client.state.orders[other].status in ("pending", "submitted")
            engaged = await client.kill_switch(True, "test")
            try:
                assert engaged.engaged and other in engaged.cancelled
                with pytest.raises(ServiceError) as refused:
                    await client.place("AAPL", "BUY", 1)
                assert (refused.value.code, refused.value.reason) == ("risk_denied", "kill_switch")
                await client.wait_for_order(other, "cancelled", timeout=10)
            finally:
                assert not (await client.kill_switch(False)).engaged
            assert client.state.kill_switch is False

    asyncio.run(scenario())


def test_the_blocking_client_places_waits_and_reads(service: ServiceProcess) -> None:
    seen: list[Order] = []
    with Client.connect(service.data_dir, strategy_id="sync") as client:
        client.on_order(seen.append)
        coid = client.place("IBM", "BUY", 4)
        assert client.wait_for_order(coid, "filled", timeout=10).filled == 4
        (position,) = client.positions(strategy_id="sync")
        assert (position.contract.symbol, position.quantity, position.status) == ("IBM", 4, "filled")
        assert [o.client_order_id for o in client.fetch_orders("sync")] == [coid]
        kept = client.state()
        assert kept.orders[coid].status == "filled" and kept.seq <= client.seq
    assert {o.status for o in seen if o.client_order_id == coid} >= {"pending", "filled"}


def test_no_service_is_reported_not_hung(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match=r"endpoints\.json"):
        asyncio.run(AsyncClient.connect(tmp_path))
    silent = "tcp://127.0.0.1:9"  # discard port: nothing answers there
    with pytest.raises(ServiceUnavailable, match="no reply"):
        asyncio.run(AsyncClient.connect(router=silent, pub=silent, request_timeout=0.3))


# --- the CLI ---------------------------------------------------------------------------------------


def test_cli_order_then_positions_shows_it(
    service: ServiceProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(service.data_dir)
    assert oms_main(["order", "buy", "AAPL", "7", "--strategy", "cli-t", "--wait", "--data-dir", data]) == 0
    placed = capsys.readouterr().out
    coid = placed.split()[0]
    assert coid.startswith("cli-t-") and f"placed {coid}" in placed
    lines = [line.split(maxsplit=2)[1:] for line in placed.splitlines() if line.startswith(f"{coid} ")]
    statuses = [status for status, *_ in lines]
    assert statuses[0] == "pending" and "submitted" in statuses and statuses[-1] == "filled", placed
    assert lines[-1][1].startswith("7 @ ")  # each transition on its own line, the fill with its price
    assert oms_main(["positions", "--strategy", "cli-t", "--data-dir", data]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if "AAPL" in line)
    assert "cli-t" in row and " 7 " in row and " open " in row
    assert oms_main(["positions", "--data-dir", data]) == 0  # account positions: every strategy's
    assert "(all)" in next(line for line in capsys.readouterr().out.splitlines() if "AAPL" in line)
    assert oms_main(["positions", "--strategy", "cli-t", "--json", "--data-dir", data]) == 0
    (position,) = json.loads(capsys.readouterr().out)
    assert (position["quantity"], position["status"]) == ("7", "filled")  # exact decimals as text
    assert oms_main(["orders", "--strategy", "cli-t", "--json", "--data-dir", data]) == 0
    (order,) = json.loads(capsys.readouterr().out)
    assert (order["side"], order["status"], order["filled"]) == ("BUY", "filled", "7")


def test_cli_cancel_and_open_orders(service: ServiceProcess, capsys: Capture) -> None:
    data = ["--data-dir", str(service.data_dir)]
    assert oms_main(["order", "sell", "AAPL", "1", "--limit", "100000", "--strategy", "cli-c", *data]) == 0
    coid = capsys.readouterr().out.split()[1]
    wait_until(lambda: oms_main(["orders", "--strategy", "cli-c", "--open", "--json", *data]) == 0
               and coid in capsys.readouterr().out)  # fmt: skip
    assert oms_main(["cancel", coid, *data]) == 0
    assert f"cancel requested for {coid}" in capsys.readouterr().out
    assert oms_main(["cancel", "cli-c-unknown", *data]) == 1
    assert "unknown_order" in capsys.readouterr().err


def test_cli_positions_hide_an_entry_cancelled_before_any_fill(
    service: ServiceProcess, capsys: Capture
) -> None:
    data = ["--data-dir", str(service.data_dir)]
    assert oms_main(["order", "buy", "IBM", "1", "--limit", "0.01", "--strategy", "cli-x", *data]) == 0
    coid = capsys.readouterr().out.split()[1]
    assert oms_main(["cancel", coid, *data]) == 0
    wait_until(lambda: oms_main(["orders", "--strategy", "cli-x", "--open", "--json", *data]) == 0
               and capsys.readouterr().out.strip() == "[]", what="the cancel")  # fmt: skip
    assert oms_main(["positions", "--strategy", "cli-x", *data]) == 0
    assert "IBM" not in capsys.readouterr().out  # never held: no row
    assert oms_main(["positions", "--strategy", "cli-x", "--all", *data]) == 0
    assert "closed (cancelled)" in next(
        line for line in capsys.readouterr().out.splitlines() if "IBM" in line
    )


def test_cli_without_a_service_says_so_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["orders"], ["positions"], ["order", "buy", "AAPL", "1"], ["cancel", "x"], ["tail"]):
        assert oms_main([*command, "--data-dir", str(tmp_path / "none")]) == 2
        assert "not running" in capsys.readouterr().err
    silent = ["--router", "tcp://127.0.0.1:9", "--pub", "tcp://127.0.0.1:9", "--timeout", "0.2"]
    assert oms_main(["orders", *silent]) == 2
    assert "no reply" in capsys.readouterr().err


def test_cli_tail_prints_live_events_filtered_by_order(service: ServiceProcess) -> None:
    coid = "cli-tail-order-1"
    tail = subprocess.Popen(
        [sys.executable, "-m", "oms", "tail", "--order", coid, "--json", "--count", "3",
         "--data-dir", str(service.data_dir)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert tail.stderr is not None
        assert "following from seq" in tail.stderr.readline()  # subscribed and snapshotted: nothing missed
        assert oms_main(["order", "buy", "AAPL", "1", "--id", coid, "--data-dir", str(service.data_dir)]) == 0
        out, err = tail.communicate(timeout=20)
    finally:
        if tail.poll() is None:
            tail.kill()
    assert tail.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert len(events) == 3
    assert events[0]["event"]["kind"] == "order_requested" and events[0]["event"]["client_order_id"] == coid
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)


def test_cli_positions_watch_draws_a_live_table_and_stops_on_ctrl_c(service: ServiceProcess) -> None:
    data = ["--data-dir", str(service.data_dir)]
    assert oms_main(["order", "buy", "MSFT", "2", "--strategy", "cli-w", "--wait", *data]) == 0
    watch = subprocess.Popen(
        [sys.executable, "-m", "oms", "positions", "--watch", "--strategy", "cli-w", *data],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert watch.stderr is not None
        assert "watching from seq" in watch.stderr.readline()
        watch.send_signal(signal.SIGINT)
        out, _ = watch.communicate(timeout=20)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 130
    row = next(line for line in out.splitlines() if "MSFT" in line)
    assert "cli-w" in row and " 2 " in row and " open " in row
