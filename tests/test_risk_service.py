"""Risk limits in a real service (`oms run`, embedded simulator, a TOML config): each limit refuses with
its code and changes nothing; a strategy's daily loss limit engages its kill switch, cancels its working
orders and refuses what adds exposure, until an operator releases it; `oms risk` shows where it stands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from events.reader import JournalReader
from events.schema import KillSwitchChanged, OrderRequested, OrderSent
from oms.cli import main
from oms.client import Client, ContractSpec, ServiceError
from oms.state.fold import step
from oms.state.model import TERMINAL, State, initial_state
from tests.client_helpers import ServiceProcess
from tests.waiting import wait_until

CONFIG = """
[risk]
max_quantity = 100000
max_notional = 1000000
session_reset = "17:00 America/New_York"

[risk.strategies.qty]
max_quantity = 5
[risk.strategies.notional]
max_notional = 100.5
[risk.strategies.pos]
max_position = 5
[risk.strategies.value]
max_position_value = 100
[risk.strategies.pct]
max_position_pct_nlv = 1
[risk.strategies.stops]
max_risk_per_trade_pct_nlv = 0.1
[risk.strategies.rate]
max_orders_per_minute = 1
[risk.strategies.working]
max_working_orders = 1
[risk.strategies.loser]
daily_loss_limit = 2.5
"""
RESTING = 100.0  # a limit price far below AAPL's (about 190): the order rests


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    base = tmp_path_factory.mktemp("risk")
    (base / "oms.toml").write_text(CONFIG)
    process = ServiceProcess(base / "data", "--config", str(base / "oms.toml"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(service: ServiceProcess) -> Iterator[Client]:
    with Client.connect(service.data_dir) as connected:
        wait_until(lambda: _nlv(connected) is not None, timeout=10, what="IB's NetLiquidation")
        yield connected


def _nlv(client: Client) -> str | None:
    return next(
        (
            v
            for a in client.state().accounts.values()
            for k, v in a.values.items()
            if k.startswith("NetLiquidation:")
        ),
        None,
    )


def _refused(client: Client, strategy: str, quantity: int, **fields: object) -> str:
    """The risk code that refused the order; asserts nothing was sent for it and no position or working
    order changed (the denial is on record: the order exists, rejected, never given to IB)."""
    before = client.state()
    with pytest.raises(ServiceError) as refused:
        client.place("AAPL", "BUY", quantity, strategy_id=strategy, **fields)
    error = refused.value
    assert error.code == "risk_denied" and error.reason and error.client_order_id
    coid = error.client_order_id
    wait_until(lambda: client.order(coid) is not None, timeout=5, what="the denial on PUB")
    order = client.order(coid)
    assert order is not None and order.status == "rejected" and order.order_id == 0 and order.reason
    after = client.state()
    for held in (lambda s: s.positions, lambda s: s.strategy_positions):
        quantities = {k: p.quantity for k, p in held(after).items() if p.quantity}
        assert quantities == {k: p.quantity for k, p in held(before).items() if p.quantity}
    assert _working(after) == _working(before)
    return error.reason


def _working(state: State) -> set[str]:
    return {c for c, o in state.orders.items() if o.status not in TERMINAL}


def test_each_limit_refuses_with_its_code_and_changes_nothing(
    client: Client, service: ServiceProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _refused(client, "qty", 6, limit_price=RESTING) == "max_quantity"
    assert _refused(client, "notional", 2, limit_price=RESTING) == "max_notional"  # 200 > 100.5
    assert _refused(client, "pos", 6, limit_price=RESTING) == "max_position"
    assert _refused(client, "value", 2, limit_price=RESTING) == "max_position_value"  # 200 > 100
    assert _refused(client, "pct", 200, limit_price=RESTING) == "max_position_pct_nlv"  # 20,000 of ~1M: 2%
    assert _refused(client, "stops", 1, limit_price=RESTING) == "no_stop"
    parent = client.place("AAPL", "BUY", 100, strategy_id="stops", limit_price=RESTING, transmit=False)
    with pytest.raises(ServiceError) as risky:  # |100 - 50| x 100 = 5,000: 0.5% of ~1M > 0.1%
        client.place("AAPL", "SELL", 100, strategy_id="stops", stop_price=50.0, parent_client_order_id=parent)
    assert risky.value.reason == "max_risk_per_trade_pct_nlv"
    client.place("AAPL", "SELL", 100, strategy_id="stops", stop_price=95.0, parent_client_order_id=parent)
    market = client.place("AAPL", "BUY", 100, strategy_id="stops", transmit=False)  # entry: IB's price
    with pytest.raises(ServiceError) as far:  # about |190 - 100| x 100 = 9,000: 0.9%
        client.place(
            "AAPL", "SELL", 100, strategy_id="stops", stop_price=100.0, parent_client_order_id=market
        )
    assert far.value.reason == "max_risk_per_trade_pct_nlv"
    client.place("AAPL", "BUY", 1, strategy_id="rate", limit_price=RESTING)
    assert _refused(client, "rate", 1, limit_price=RESTING) == "max_orders_per_minute"
    client.place("AAPL", "BUY", 1, strategy_id="working", limit_price=RESTING)
    assert _refused(client, "working", 1, limit_price=RESTING) == "max_working_orders"
    assert main(["kill", "--strategy", "working", "--data-dir", str(service.data_dir)]) == 0
    out = capsys.readouterr().out
    assert "strategy working's kill switch ENGAGED" in out and "cancel requested for 1 working order" in out
    wait_until(lambda: "strategy:working" in client.state().kill_scopes, timeout=5, what="the scoped kill")
    assert _refused(client, "working", 1, limit_price=RESTING) == "kill_switch"
    client.place("AAPL", "BUY", 1, strategy_id="rate2", limit_price=RESTING)  # other strategies trade on


def test_a_daily_loss_kills_the_strategy_until_an_operator_releases_it(
    client: Client, service: ServiceProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    resting = client.place("AAPL", "BUY", 1, strategy_id="loser", limit_price=RESTING)
    client.wait_for_order(resting, "submitted", timeout=10)
    client.wait_for_order(client.place("AAPL", "BUY", 10, strategy_id="loser"), "filled", timeout=10)
    for _ in range(5):  # each fill costs at least IB's minimum commission (1.00): the loss grows
        if "strategy:loser" in client.status().kill_scopes:
            break
        client.wait_for_order(client.place("AAPL", "SELL", 1, strategy_id="loser"), "filled", timeout=10)
        wait_until(lambda: all(f.commission for f in client.state().fills.values()), timeout=5, what="fees")
    wait_until(lambda: "strategy:loser" in client.status().kill_scopes, timeout=5, what="the kill")
    ib_daily = lambda: client.state().accounts["DU123456"].values.get("DailyPnL:BASE", "0")  # noqa: E731
    wait_until(lambda: Decimal(ib_daily()) <= -3, timeout=5, what="IB's daily P&L (reqPnL) to show the loss")
    status = client.status()
    assert status.kill_scopes["strategy:loser"].startswith("daily_loss_limit: daily P&L -")
    assert client.wait_for_order(resting, "cancelled", timeout=10).status == "cancelled"
    held = client.state().strategy_positions
    position = next(p.quantity for p in held.values() if p.strategy_id == "loser")
    assert position > 0
    for side, quantity in (("BUY", 1), ("SELL", int(position) + 1)):  # adds, flips: refused
        with pytest.raises(ServiceError) as refused:
            client.place("AAPL", side, quantity, strategy_id="loser")  # type: ignore[arg-type]
        assert refused.value.reason == "daily_loss_limit"
    client.wait_for_order(client.place("AAPL", "SELL", 1, strategy_id="loser"), "filled", timeout=10)

    data = ["--data-dir", str(service.data_dir)]
    assert main(["risk", "--strategy", "loser", "--json", *data]) == 0
    (scope,) = json.loads(capsys.readouterr().out)
    assert scope["scope"] == "strategy:loser" and scope["kill"].startswith("daily_loss_limit")
    loss = next(limit for limit in scope["limits"] if limit["limit"] == "daily_loss_limit")
    assert Decimal(loss["use"]) >= Decimal("2.5") and Decimal(loss["headroom"]) <= 0
    assert main(["risk", *data]) == 0
    table = capsys.readouterr().out
    assert "strategy:loser  daily P&L -" in table and "KILLED (daily_loss_limit" in table
    assert "account:DU123456  daily P&L" in table and "max_working_orders" in table  # working's limit
    assert main(["status", *data]) == 0
    assert "            strategy:loser: ENGAGED (daily_loss_limit: " in capsys.readouterr().out

    assert main(["kill", "--release", "--strategy", "loser", "--reason", "reviewed", *data]) == 0
    assert "strategy loser's kill switch released" in capsys.readouterr().out
    wait_until(lambda: "strategy:loser" not in client.state().kill_scopes, timeout=5, what="the release")
    client.wait_for_order(client.place("AAPL", "BUY", 1, strategy_id="loser"), "filled", timeout=10)
    _no_exposure_sent_while_killed(service.data_dir, "loser")


def _no_exposure_sent_while_killed(data_dir: Path, strategy: str) -> None:
    """Over the whole journal: while the strategy's kill switch was engaged, every order of it that was
    logged (and so sent) only reduced its position."""
    state = initial_state()
    killed = False
    reader = JournalReader(data_dir / "journal")
    checked: set[str] = set()  # the strategy's orders requested while killed, each checked to reduce
    for env in reader.read(1, reader.last_seq()):
        event = env.event
        if type(event) is KillSwitchChanged and event.strategy_id == strategy:
            killed = event.engaged
        if killed and type(event) is OrderRequested and event.strategy_id == strategy:
            held = sum(
                (p.quantity for p in state.strategy_positions.values() if p.strategy_id == strategy),
                Decimal(0),
            )
            signed = event.quantity if event.side == "BUY" else -event.quantity
            assert abs(held + signed) < abs(held), f"seq {env.seq} added exposure while killed"
            checked.add(event.client_order_id)
        if killed and type(event) is OrderSent:
            order = state.orders[event.client_order_id]
            assert order.strategy_id != strategy or order.client_order_id in checked, (
                f"seq {env.seq} sent {order.client_order_id} while killed, unchecked"
            )
        state, _ = step(state, env)
    assert checked  # at least one order was requested while killed


def test_a_loss_kill_ends_at_the_session_boundary(tmp_path: Path) -> None:
    """The boundary is moved instead of waited for: the second run's session began after the kill."""
    start = "2026-12-02T10:00-05:00"  # a Wednesday, markets open: the embedded simulator's clock
    now = datetime.fromisoformat(start).astimezone(UTC)  # the service's too (each run starts there)
    config = tmp_path / "oms.toml"
    data = tmp_path / "data"
    sim = tmp_path / "sim.toml"
    sim.write_text(f'clock_start = "{start}"\n')
    for minutes in (2, -2):  # the first run's session began yesterday, the second's 2 minutes ago
        reset = (now + timedelta(minutes=minutes)).strftime("%H:%M")
        config.write_text(f'[risk.strategies.loser]\ndaily_loss_limit = 0.5\nsession_reset = "{reset} UTC"\n')
        service = ServiceProcess(data, "--config", str(config), "--sim-config", str(sim))
        service.start()
        try:
            with Client.connect(data) as client:
                if minutes > 0:  # a fill's commission (1.00) crosses the limit
                    client.wait_for_order(
                        client.place("AAPL", "BUY", 1, strategy_id="loser"), "filled", timeout=10
                    )
                    wait_until(
                        lambda: "strategy:loser" in client.status().kill_scopes, timeout=5, what="kill"
                    )
                else:
                    wait_until(lambda: not client.status().kill_scopes, timeout=5, what="the session reset")
                    client.wait_for_order(
                        client.place("AAPL", "BUY", 1, strategy_id="loser"), "filled", timeout=10
                    )
        finally:
            service.stop()
    reader = JournalReader(data / "journal")
    codes = [
        (e.event.engaged, e.event.code)
        for e in reader.read(1, reader.last_seq())
        if type(e.event) is KillSwitchChanged
    ]
    # released by the new session; its own first fill's commission crosses the limit again
    assert codes == [(True, "daily_loss_limit"), (False, "session_reset"), (True, "daily_loss_limit")]


def test_counts_and_forex_units_without_any_loss_limit(tmp_path: Path) -> None:
    """Working orders are counted whatever else is configured; a standard 20,000 EUR.USD order (IB
    counts forex in units of the base currency) passes the default limits."""
    config = tmp_path / "oms.toml"
    config.write_text("[risk.strategies.working]\nmax_working_orders = 1\n")
    service = ServiceProcess(tmp_path / "data", "--config", str(config))
    service.start()
    try:
        with Client.connect(service.data_dir) as client:
            client.wait_for_order(
                client.place("AAPL", "BUY", 1, strategy_id="working", limit_price=RESTING),
                "submitted",
                timeout=10,
            )
            assert _refused(client, "working", 1, limit_price=RESTING) == "max_working_orders"
            eur = ContractSpec(symbol="EUR", sec_type="CASH", exchange="IDEALPRO", currency="USD")
            client.wait_for_order(client.place(eur, "BUY", 20_000), "filled", timeout=10)
    finally:
        service.stop()
