"""Issue 19's order types from every surface of a real service (`oms run`, embedded simulator, its price
tick off): the command line's flags, the Python client, the web intake; and the simulator's control
channel (`oms sim price|clock|restart`) found through the data directory."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from adapters.tws_sim import control as channel
from adapters.tws_sim.control import CONTROL_FILE
from events.reader import JournalReader
from events.schema import ModifyRequested, OrderDenied, OrderRequested
from oms.cli import main as oms_main
from oms.client import Client, ServiceError
from tests.client_helpers import ServiceProcess, running_service
from tests.waiting import wait_until
from tests.web_helpers import WebProcess, http

Capture = pytest.CaptureFixture[str]
TOKEN = "tok-ordertypes-0123456789"
INTAKE = f"""
[[tokens]]
token = "{TOKEN}"
strategies = ["w"]
"""


@dataclass
class Stack:
    service: ServiceProcess
    web: WebProcess

    @property
    def data(self) -> list[str]:
        return ["--data-dir", str(self.service.data_dir)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("ordertypes")
    intake = base / "intake.toml"
    intake.write_text(INTAKE)
    intake.chmod(0o600)
    with running_service(base / "data", "--sim-tick-ms", "0") as service:
        web = WebProcess(base, "--data-dir", str(service.data_dir), "--intake", str(intake)).start()
        try:
            yield Stack(service, web)
        finally:
            web.stop()


def oms(capsys: Capture, *args: str) -> tuple[int, str, str]:
    code = oms_main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def status(client: Client, coid: str) -> str:
    order = client.order(coid)
    return order.status if order else ""


def test_a_trailing_stop_from_the_command_line_follows_the_price_set_through_the_control_channel(
    stack: Stack, capsys: Capture
) -> None:
    assert oms(capsys, "sim", "price", "AAPL", "100", *stack.data)[0] == 0
    code, out, err = oms(
        capsys, "order", "sell", "AAPL", "10", "--type", "TRAIL", "--trail-amount", "1", "--id", "cli-tr",
        "--strategy", "w", *stack.data,
    )  # fmt: skip
    assert code == 0, out + err
    with Client.connect(stack.service.data_dir, strategy_id="w") as client:

        def stop() -> float | None:
            order = client.order("cli-tr")
            return order.trail_stop_price if order else None

        wait_until(lambda: stop() == 99.0, what="the first stop")
        code, out, _ = oms(capsys, "sim", "price", "AAPL", "103", *stack.data)
        assert code == 0 and out.startswith("AAPL 103 at ")
        wait_until(lambda: stop() == 102.0, what="the stop moved up")
        code, table, _ = oms(capsys, "orders", "--strategy", "w", *stack.data)
        (row,) = [line for line in table.splitlines() if "cli-tr" in line]
        assert code == 0 and " TRAIL " in row and " 102 " in row  # the stop column: where IB has it
        oms(capsys, "sim", "price", "AAPL", "101.9", *stack.data)
        wait_until(lambda: status(client, "cli-tr") == "filled", what="triggered")


def test_the_flags_carry_every_term(stack: Stack, capsys: Capture) -> None:
    till = (datetime.now(ZoneInfo("America/New_York")) + timedelta(days=3)).replace(microsecond=0)
    lit = [
        "order", "buy", "AAPL", "10", "--type", "LIT", "--touch", "90", "--limit", "90.5", "--tif", "GTD",
        "--good-till", till.isoformat(), "--oca-group", "cg", "--oca-type", "2", "--id", "cli-lit",
    ]  # fmt: skip
    algo = ["order", "buy", "AAPL", "5", "--limit", "50", "--algo", "adaptive:patient", "--id", "cli-alg"]
    tl = [
        "order", "sell", "AAPL", "3", "--type", "TRAIL LIMIT", "--trail-percent", "2", "--limit-offset",
        "0.25", "--id", "cli-tl",
    ]  # fmt: skip
    for args in (lit, algo, tl):
        code, out, err = oms(capsys, *args, "--strategy", "w", *stack.data)
        assert code == 0, out + err
    with Client.connect(stack.service.data_dir, strategy_id="w") as client:
        wait_until(lambda: all(client.order(c) for c in ("cli-lit", "cli-alg", "cli-tl")), what="orders")
        lit_order, alg, trail = (client.order(c) for c in ("cli-lit", "cli-alg", "cli-tl"))
        assert lit_order is not None and alg is not None and trail is not None
        assert (lit_order.order_type, lit_order.touch_price, lit_order.limit_price) == ("LIT", 90.0, 90.5)
        assert (lit_order.tif, lit_order.good_till, lit_order.oca_group, lit_order.oca_type) == (
            "GTD", till.isoformat(), "cg", 2,
        )  # fmt: skip
        assert (alg.algo, alg.algo_priority) == ("Adaptive", "Patient")
        assert (trail.order_type, trail.trailing_percent, trail.limit_offset) == ("TRAIL LIMIT", 2.0, 0.25)
        wait_until(lambda: status(client, "cli-lit") == "submitted", what="IB has it")
    code, out, err = oms(capsys, "modify", "cli-lit", "--touch", "91", *stack.data)
    assert code == 0, out + err
    asked = [
        e.event for e in JournalReader(stack.service.data_dir / "journal").read()
        if isinstance(e.event, ModifyRequested) and e.event.client_order_id == "cli-lit"
    ]  # fmt: skip
    assert [m.touch_price for m in asked] == [91.0]


def test_what_ib_would_refuse_is_refused_before_anything_is_logged(stack: Stack, capsys: Capture) -> None:
    journal = stack.service.data_dir / "journal"
    before = max(env.seq for env in JournalReader(journal).read())
    refusals = [
        (["--type", "LIT", "--limit", "90"], "invalid: LIT order needs touch_price"),
        (["--type", "TRAIL", "--trail-amount", "1", "--trail-percent", "1"], "not both"),
        (["--limit", "90", "--tif", "GTD"], "a GTD order needs good_till"),
        (["--limit", "90", "--tif", "GTD", "--good-till", "2026-12-07T15:30"], "needs its zone"),
        (["--type", "MOC", "--tif", "GTC"], "MOC order is a DAY order"),
        (
            [
                "--type",
                "LOC",
                "--limit",
                "90",
                "--sec-type",
                "OPT",
                "--expiry",
                "20261218",
                "--strike",
                "200",
                "--right",
                "C",
            ],
            "IB error 387: Unsupported order type",
        ),
        (
            ["--type", "STP", "--stop", "90", "--tif", "OPG"],
            "OPG (on the opening auction) is for MKT and LMT",
        ),
        (["--type", "STP", "--stop", "90", "--algo", "Adaptive"], "the Adaptive algo is for MKT and LMT"),
    ]
    for flags, says in refusals:
        code, _out, err = oms(capsys, "order", "buy", "AAPL", "1", *flags, "--strategy", "w", *stack.data)
        assert code == 1 and says in err, (flags, err)
    with pytest.raises(SystemExit) as usage:
        oms_main(["order", "buy", "AAPL", "1", "--algo", "Fast", *stack.data])
    assert usage.value.code == 2 and "Adaptive:Patient|Normal|Urgent" in capsys.readouterr().err
    intents = (OrderRequested, OrderDenied, ModifyRequested)
    logged = [env.event for env in JournalReader(journal).read() if env.seq > before]
    assert not [e for e in logged if isinstance(e, intents)]  # nothing logged, so nothing sent
    with Client.connect(stack.service.data_dir, strategy_id="w") as client:
        client.place("AAPL", "BUY", 1, limit_price=10.0, client_order_id="cli-lmt")
        with pytest.raises(ServiceError, match="a LMT order has no trailing_amount or trailing_percent"):
            client.modify("cli-lmt", trailing_amount=1.0)
        with pytest.raises(ServiceError, match="good_till is for GTD orders, not DAY"):
            client.modify("cli-lmt", good_till="2026-12-31T16:00:00-05:00")
    logged = [e.event for e in JournalReader(journal).read()]
    assert not [e for e in logged if isinstance(e, ModifyRequested) and e.client_order_id == "cli-lmt"]


def test_the_web_intake_takes_the_new_types(stack: Stack) -> None:
    url = stack.web.base + "api/orders"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    order = {
        "contract": {"symbol": "AAPL"}, "side": "SELL", "quantity": 4, "strategy_id": "w",
        "client_order_id": "web-tl", "order_type": "TRAIL LIMIT", "trailing_amount": 1.5, "limit_offset": 0.1,
    }  # fmt: skip
    status, body = http("POST", url, order, bearer)
    assert status == 201, body
    with Client.connect(stack.service.data_dir, strategy_id="w") as client:
        wait_until(lambda: (o := client.order("web-tl")) is not None and o.trail_stop_price, what="a stop")
        placed = client.order("web-tl")
        assert placed is not None and (placed.trailing_amount, placed.limit_offset) == (1.5, 0.1)
    status, body = http("POST", url, {**order, "client_order_id": "web-bad", "order_type": "MIT"}, bearer)
    assert (status, body["error"]["code"]) == (400, "invalid") and "MIT order needs touch_price" in str(body)


def test_the_control_channel_is_the_owners_alone_and_refuses_a_wrong_token(
    stack: Stack, capsys: Capture
) -> None:
    path = stack.service.data_dir / CONTROL_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    endpoint = json.loads(path.read_text())
    assert endpoint["host"] == "127.0.0.1"

    async def forged() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", endpoint["port"])
        writer.write(b'{"type": "price", "token": "not-it", "symbol": "AAPL", "price": 1}\n')
        await writer.drain()
        line = await reader.readline()
        writer.close()
        return line

    assert b"wrong token" in asyncio.run(forged())
    code, _out, err = oms(capsys, "sim", "price", "AAPL", "-5", *stack.data)
    assert code == 1 and "bad request" in err
    code, _out, err = oms(capsys, "sim", "clock", "soon", *stack.data)
    assert code == 1 and "neither +DURATION, HH:MM (New York) nor an ISO 8601 time" in err
    elsewhere = stack.service.data_dir.parent / "nothing-here"
    code, _out, err = oms(capsys, "sim", "restart", "--data-dir", str(elsewhere))
    assert code == 1 and "no simulator is running" in err
    price = asyncio.run(channel.send(stack.service.data_dir, "price", {"symbol": "MSFT", "price": 400.0}))
    assert price.ok and price.price == 400.0


def test_a_nightly_restart_drops_the_api_socket_and_the_service_comes_back(
    stack: Stack, capsys: Capture
) -> None:
    with Client.connect(stack.service.data_dir, strategy_id="w") as client:
        started = client.status().reconciled_seq
        code, out, err = oms(capsys, "sim", "restart", *stack.data)
        assert code == 0, out + err
        wait_until(lambda: client.status().reconciled_seq > started, timeout=20, what="reconciled again")
        assert client.status().ready
