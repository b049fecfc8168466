"""Every instrument the simulator lists, and every command, from the command line against a real service
(`oms run` with the embedded simulator, one per module): issue 18, items 6, 7, 9 and 10."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal

import pytest

from oms.cli import main as oms_main
from oms.client import AsyncClient, ContractSpec, ServiceError
from tests.client_helpers import REPO, ServiceProcess, running_service
from tests.waiting import wait_until

Capture = pytest.CaptureFixture[str]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_service(tmp_path_factory.mktemp("cli-instruments") / "data") as running:
        yield running


def oms(capsys: Capture, *args: str) -> tuple[int, str, str]:
    code = oms_main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def row(table: str, name: str) -> str:
    """The table line naming `name` (instrument names hold spaces: matched between the borders)."""
    found = [line for line in table.splitlines() if f" {name} " in line]
    assert len(found) == 1, table
    return found[0]


def avg_prices(capsys: Capture, data: list[str]) -> dict[str, Decimal]:
    """Each position's average price by security type (the simulator's prices move)."""
    out = oms(capsys, "positions", "--json", *data)[1]
    return {p["contract"]["sec_type"]: Decimal(p["avg_price"]) for p in json.loads(out)}


def cost(quantity: int, price: Decimal, multiplier: int) -> str:
    """The amount the table shows: quantity x price x multiplier, to the cent."""
    return f"{(quantity * price * multiplier).quantize(Decimal('0.01'), ROUND_HALF_UP)}"


def test_an_es_future_an_aapl_option_and_eur_usd_are_placed_filled_and_shown_with_the_multiplier(
    service: ServiceProcess, capsys: Capture
) -> None:
    data = ["--data-dir", str(service.data_dir), "--strategy", "kinds"]
    future = ["ES", "1", "--sec-type", "FUT", "--exchange", "CME", "--expiry", "202612"]
    option = ["AAPL", "2", "--sec-type", "OPT", "--expiry", "20261218", "--strike", "200", "--right", "C"]
    for what in (future, option, ["EUR.USD", "10000"]):
        code, out, err = oms(capsys, "order", "buy", *what, "--wait", *data)
        assert code == 0, out + err
    code, table, _ = oms(capsys, "positions", *data)
    assert code == 0
    es, call, fx = row(table, "ESZ6"), row(table, "AAPL 20261218 200 C"), row(table, "EUR.USD")
    price = avg_prices(capsys, data)
    assert f" {cost(1, price['FUT'], 50)} USD " in es  # 1 x price x 50
    assert f" {cost(2, price['OPT'], 100)} USD " in call  # 2 x price x 100
    assert " 10000 " in fx and f" {cost(10000, price['CASH'], 1)} USD " in fx
    instruments = {line.split("│")[2].strip() for line in table.splitlines() if line.startswith("│")}
    assert instruments == {"ESZ6", "AAPL 20261218 200 C", "EUR.USD"}  # never a bare `ES` or `AAPL`
    fills = oms(capsys, "fills", *data)[1]
    assert f" {cost(1, price['FUT'], 50)} USD " in row(fills, "ESZ6")
    assert f" {cost(2, price['OPT'], 100)} USD " in row(fills, "AAPL 20261218 200 C")
    code, out, _ = oms(capsys, "fills", "--json", *data)
    by_type = {f["contract"]["sec_type"]: f for f in json.loads(out)}
    assert set(by_type) == {"FUT", "OPT", "CASH"}
    assert (by_type["FUT"]["shares"], by_type["FUT"]["contract"]["multiplier"]) == ("1", "50")
    assert Decimal(by_type["FUT"]["price"]) == price["FUT"]
    assert by_type["CASH"]["shares"] == "10000" and by_type["CASH"]["contract"]["currency"] == "USD"
    code, out, _ = oms(capsys, "positions", "--json", *data)
    assert {p["contract"]["sec_type"]: p["quantity"] for p in json.loads(out)} == {
        "FUT": "1", "OPT": "2", "CASH": "10000"
    }  # fmt: skip


def test_a_future_named_by_con_id_or_by_local_symbol(service: ServiceProcess, capsys: Capture) -> None:
    data = ["--data-dir", str(service.data_dir), "--strategy", "named"]
    fut = ["--sec-type", "FUT", "--exchange", "CME", "--currency", "USD", "--multiplier", "50"]
    assert oms(capsys, "order", "buy", "ES", "1", *fut, "--con-id", "649180695", "--wait", *data)[0] == 0
    code, out, err = oms(capsys, "order", "buy", "ES", "2", *fut, "--local-symbol", "ESH7", "--wait", *data)
    assert code == 0, out + err  # ES + ESH7: one contract (the symbol alone lists two expiries)
    code, out, _ = oms(capsys, "positions", "--json", *data)
    assert {p["contract"]["con_id"]: p["quantity"] for p in json.loads(out)} == {
        649180695: "1", 649180702: "2"
    }  # fmt: skip
    table = oms(capsys, "positions", *data)[1]
    by_con_id = {p["contract"]["con_id"]: Decimal(p["avg_price"]) for p in json.loads(out)}
    assert f" {cost(2, by_con_id[649180702], 50)} USD " in row(table, "ESH7")  # 2 x price x 50


def test_an_unknown_or_ambiguous_contract_is_refused_as_ib_refuses_it(
    service: ServiceProcess, capsys: Capture
) -> None:
    data = ["--data-dir", str(service.data_dir)]
    code, _, err = oms(capsys, "order", "buy", "ZZZZNOTREAL", "1", "--id", "zz-unknown", *data)
    assert code == 1 and "unknown_contract" in err and "No security definition" in err, err
    assert "no price" not in err
    code, out, _ = oms(capsys, "orders", "--json", *data)
    assert "zz-unknown" not in out  # nothing logged

    async def ambiguous() -> None:
        async with await AsyncClient.connect(service.data_dir, follow=False) as client:
            es = ContractSpec(symbol="ES", sec_type="FUT", exchange="CME")  # two expiries listed
            with pytest.raises(ServiceError) as refused:
                await client.place(es, "BUY", 1, client_order_id="zz-ambiguous")
            assert refused.value.code == "unknown_contract" and "matches 2" in str(refused.value)

    asyncio.run(ambiguous())


def test_modify_cancel_all_of_a_strategy_and_the_kill_switch(
    service: ServiceProcess, capsys: Capture
) -> None:
    data = ["--data-dir", str(service.data_dir)]
    far = ["sell", "AAPL", "1", "--limit", "100000"]
    assert oms(capsys, "order", *far, "--strategy", "mod", "--id", "mod-1", *data)[0] == 0
    assert oms(capsys, "order", *far, "--strategy", "other", "--id", "other-1", *data)[0] == 0

    def order(coid: str) -> dict[str, object]:
        out = oms(capsys, "orders", "--json", *data)[1]
        return next(o for o in json.loads(out) if o["client_order_id"] == coid)

    wait_until(lambda: order("mod-1")["status"] == "submitted", what="mod-1 working")
    code, out, _ = oms(capsys, "modify", "mod-1", "--limit", "99999.5", "--quantity", "2", *data)
    assert code == 0 and "modify requested for mod-1" in out
    wait_until(lambda: (order("mod-1")["limit_price"], order("mod-1")["quantity"]) == (99999.5, "2"),
               what="the modify shown by IB")  # fmt: skip
    assert oms(capsys, "modify", "mod-1", *data)[0] == 2  # nothing to change
    code, out, _ = oms(capsys, "cancel", "--all", "--strategy", "mod", *data)
    assert code == 0 and "mod-1" in out and "other-1" not in out
    wait_until(lambda: order("mod-1")["status"] == "cancelled", what="the cancel")
    assert order("other-1")["status"] == "submitted"
    assert oms(capsys, "cancel", "mod-1", "--all", *data)[0] == 2  # an ID or --all

    code, out, _ = oms(capsys, "kill", "--reason", "cli test", *data)
    try:
        assert code == 0 and "ENGAGED" in out and "other-1" in out
        code, _, err = oms(capsys, "order", "buy", "AAPL", "1", *data)
        assert code == 1 and "kill_switch" in err
        code, out, _ = oms(capsys, "status", "--json", *data)
        assert json.loads(out)["kill_switch"] is True
    finally:
        code, out, _ = oms(capsys, "kill", "--release", *data)
    assert code == 0 and "released" in out
    assert oms(capsys, "order", "buy", "AAPL", "1", "--strategy", "after", "--wait", *data)[0] == 0


def test_account_shows_values_per_currency_and_in_base(service: ServiceProcess, capsys: Capture) -> None:
    data = ["--data-dir", str(service.data_dir)]
    assert oms(capsys, "order", "buy", "MSFT", "1", "--strategy", "acct", "--wait", *data)[0] == 0
    code, out, _ = oms(capsys, "account", "--json", *data)
    assert code == 0
    (account,) = json.loads(out)
    assert account["values"]["NetLiquidation:USD"] and account["commission"]["USD"]
    assert all(isinstance(v, str) and "E" not in v for v in account["commission"].values())
    table = oms(capsys, "account", *data)[1]
    header = next(line for line in table.splitlines() if " value " in line)
    assert " USD " in header and " BASE " in header
    cash = row(table, "CashBalance")
    assert cash.count(".") >= 2 and all(
        len(cell.strip().split(".")[-1]) == 2 for cell in cash.split("│")[2:4]
    )


def test_a_rejected_orders_empty_lifecycle_is_listed_only_with_all(
    service: ServiceProcess, capsys: Capture
) -> None:
    data = ["--data-dir", str(service.data_dir), "--strategy", "rej"]
    off_tick = ["buy", "AAPL", "1", "--limit", "100.001"]  # IB's error 110: rejected
    assert oms(capsys, "order", *off_tick, "--wait", "--wait-timeout", "10", *data)[0] == 1
    code, out, _ = oms(capsys, "positions", "--json", *data)
    assert code == 0 and json.loads(out) == []  # the lifecycle stays in the state, not in the listing
    assert "AAPL" not in oms(capsys, "positions", *data)[1]
    out = oms(capsys, "positions", "--json", "--all", *data)[1]
    (entry,) = json.loads(out)
    assert (entry["status"], entry["close_reason"]) == ("closed", "rejected")
    assert "closed (rejected)" in oms(capsys, "positions", "--all", *data)[1]


def test_status_into_a_closed_pipe_stays_silent(service: ServiceProcess) -> None:
    read, write = os.pipe()
    os.close(read)  # `oms status | head`: the reader is gone before anything is written
    try:
        done = subprocess.run(
            [sys.executable, "-m", "oms", "status", "--data-dir", str(service.data_dir)],
            cwd=REPO, stdout=write, stderr=subprocess.PIPE, text=True, timeout=30,
        )  # fmt: skip
    finally:
        os.close(write)
    assert done.stderr == "" and done.returncode == 141
