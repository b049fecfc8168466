"""Quantities and prices beyond what IB takes are refused as `invalid`, naming the bound, at every entry
(the request itself, the ZeroMQ ROUTER, the client library, the command line, the web intake) against a
real `oms run`: never `internal`, a traceback or HTTP 500 (1e28 once overflowed the decimal context)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.reader import JournalReader
from oms.cli import main as oms_main
from oms.client import Client, ServiceError
from oms.protocol import MAX_PRICE, MAX_QUANTITY, QUANTITY_DIGITS, ContractSpec, ModifyRequest, PlaceRequest
from oms.readable import plain
from tests.client_helpers import ServiceProcess, running_service
from tests.test_service_support import Wire, place
from tests.web_helpers import WebProcess, http

# (quantity as sent, what the refusal says)
QUANTITIES = [
    ("1e28", "quantity 10000000000000000000000000000 is above 1000000000, the most an order may have"),
    ("1E+30", "quantity 1000000000000000000000000000000 is above 1000000000"),
    ("1e999999", "quantity 1E+999999 is above 1000000000"),
    ("1000000001", "quantity 1000000001 is above 1000000000"),
    ("1.00000000000000001", "quantity 1.00000000000000001 has 18 significant digits; IB takes at most 16"),
    ("-1e28", "quantity must be a positive number, not -10000000000000000000000000000"),
    ("NaN", "quantity must be a positive number, not NaN"),
    ("Infinity", "quantity must be a positive number, not Infinity"),
]
FLOATS = [1e28, 1e30, 1e300, -1e28, 2e9, math.inf, math.nan]  # as msgpack or JSON numbers
PRICES = [
    (1e13, "limit_price 10000000000000 is above 1000000000000, the most a price may be"),
    (1e300, "limit_price 1E+300 is above 1000000000000"),
    (math.inf, "limit_price must be a positive number, not Infinity"),
    (math.nan, "limit_price must be a positive number, not NaN"),
    (-1.0, "limit_price must be a positive number, not -1"),
]


def test_a_request_beyond_a_bound_cannot_be_made_or_decoded() -> None:
    for quantity, says in QUANTITIES:
        with pytest.raises(ValueError, match="^" + re.escape(says)):
            PlaceRequest(contract=ContractSpec(symbol="AAPL"), side="BUY", quantity=Decimal(quantity))
        with pytest.raises(msgspec.ValidationError, match="^" + re.escape(says)):
            msgspec.msgpack.decode(msgspec.msgpack.encode(place(quantity=quantity)), type=PlaceRequest)
        with pytest.raises(msgspec.ValidationError, match="^" + re.escape(says)):
            msgspec.json.decode(msgspec.json.encode(_modify(quantity)), type=ModifyRequest)
    for price, says in PRICES:
        request = place(order_type="LMT", limit_price=price)
        with pytest.raises(msgspec.ValidationError, match="^" + re.escape(says)):
            msgspec.msgpack.decode(msgspec.msgpack.encode(request), type=PlaceRequest)
        with pytest.raises(ValueError, match="^" + re.escape(says.replace("limit", "stop"))):
            ModifyRequest(client_order_id="c", stop_price=price)
    biggest = PlaceRequest(
        contract=ContractSpec(symbol="EUR", sec_type="CASH"),
        side="BUY",
        quantity=Decimal("999999999.9999999"),  # 16 digits, at the bound
        order_type="LMT",
        limit_price=MAX_PRICE,
    )
    assert biggest.quantity < MAX_QUANTITY and len(biggest.quantity.as_tuple().digits) == QUANTITY_DIGITS


def _modify(quantity: object) -> dict[str, object]:
    return {"op": "modify", "client_order_id": "c", "quantity": quantity}


@given(
    st.decimals(allow_nan=True, allow_infinity=True)
    | st.builds(Decimal, st.from_regex(r"-?[0-9]{1,40}(\.[0-9]{1,40})?[eE][+-]?[0-9]{1,7}", fullmatch=True))
)
def test_any_decimal_is_taken_or_refused_by_its_bound_and_always_shown(quantity: Decimal) -> None:
    """Never an arithmetic error, whatever the size: the check only compares and counts digits."""
    shown = plain(quantity)
    assert len(shown) <= 100
    try:
        msgspec.convert(_modify(str(quantity)), ModifyRequest)
    except msgspec.ValidationError as exc:
        assert "positive number" in str(exc) or "above 1000000000" in str(exc) or "significant" in str(exc)
    else:
        assert 0 < quantity <= MAX_QUANTITY
        significant = "".join(map(str, quantity.as_tuple().digits)).strip("0")  # 1000 has 1, 1.05 has 3
        assert len(significant) <= QUANTITY_DIGITS, f"{quantity} taken with {len(significant)} digits"


@dataclass
class Stack:
    service: ServiceProcess
    web: WebProcess


TOKEN = "tok-bounds-0123456789abc"
SECRET = "hook-secret-bounds-0123"
INTAKE = f"""
[[tokens]]
token = "{TOKEN}"
strategies = ["b"]

[webhooks.alerts]
secret = "{SECRET}"
strategy = "b"
fields = {{ symbol = "ticker", side = "action", quantity = "contracts", client_order_id = "id" }}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("bounds")
    intake = base / "intake.toml"
    intake.write_text(INTAKE)
    intake.chmod(0o600)
    with running_service(base / "data") as service:
        web = WebProcess(base, "--data-dir", str(service.data_dir), "--intake", str(intake)).start()
        try:
            yield Stack(service, web)
        finally:
            web.stop()


def _logged(stack: Stack) -> int:
    return sum(1 for _ in JournalReader(stack.service.data_dir / "journal").read())


def test_the_router_refuses_them_as_invalid_naming_the_bound(stack: Stack) -> None:
    wire = Wire(stack.service.endpoints.router)
    before = _logged(stack)
    try:
        for quantity, says in QUANTITIES:
            error = wire.request(msgspec.msgpack.encode(place(quantity=quantity)))["error"]  # decimal text
            assert error["code"] == "invalid" and error["message"].startswith(says), error
            error = wire.request(msgspec.msgpack.encode(_modify(quantity)))["error"]
            assert error["code"] == "invalid" and error["message"].startswith(says), (
                error
            )  # before the lookup
        for number in FLOATS:
            error = wire.request(msgspec.msgpack.encode(place(quantity=number)))["error"]
            assert error["code"] == "invalid" and error["message"].startswith("quantity "), error
        for price, says in PRICES:
            error = wire.request(msgspec.msgpack.encode(place(order_type="LMT", limit_price=price)))["error"]
            assert error["code"] == "invalid" and error["message"].startswith(says), error
            error = wire.request(msgspec.msgpack.encode({**_modify(1), "stop_price": price}))["error"]
            assert (error["code"], error["message"][:10]) == ("invalid", "stop_price"), error
        assert wire.ok({"op": "ping"})["ready"] is True
    finally:
        wire.close()
    assert _logged(stack) == before  # nothing changed


def test_the_client_and_the_command_line_refuse_them(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _logged(stack)
    with Client.connect(stack.service.data_dir, strategy_id="b") as client:
        for quantity, says in QUANTITIES:
            with pytest.raises(ServiceError, match="^invalid: " + re.escape(says)) as refused:
                client.place("AAPL", "BUY", quantity)
            assert refused.value.code == "invalid"
        for price, says in PRICES:
            with pytest.raises(ServiceError, match="^invalid: " + re.escape(says)):
                client.place("AAPL", "BUY", 1, limit_price=price)
        with pytest.raises(ServiceError, match=r"^invalid: quantity 10000000000000000000000000000 is above"):
            client.modify("any", quantity="1e28")
    data = ["--data-dir", str(stack.service.data_dir), "--strategy", "b"]
    assert oms_main(["order", "buy", "AAPL", "1e28", *data]) == 1
    err = capsys.readouterr().err
    assert "refused: invalid: quantity " in err and " is above 1000000000, the most an order" in err
    assert "Traceback" not in err
    assert oms_main(["order", "buy", "AAPL", "1", "--limit", "1e13", *data]) == 1
    assert "invalid: limit_price 10000000000000 is above 1000000000000" in capsys.readouterr().err
    assert _logged(stack) == before


def test_the_web_intake_refuses_them_with_400(stack: Stack) -> None:
    before = _logged(stack)
    url = stack.web.base + "api/orders"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for sent, says in [*QUANTITIES[:5], *((n, "quantity ") for n in FLOATS[:4])]:  # JSON text, numbers
        order = {"contract": {"symbol": "AAPL"}, "side": "BUY", "quantity": sent}
        status, body = http("POST", url, order, bearer)
        assert (status, body["error"]["code"]) == (400, "invalid"), (sent, body)
        assert body["error"]["message"].startswith(says), body
    order = {
        "contract": {"symbol": "AAPL"},
        "side": "BUY",
        "quantity": 1,
        "order_type": "LMT",
        "limit_price": 1e13,
    }
    status, body = http("POST", url, order, bearer)
    assert (status, body["error"]["code"]) == (400, "invalid") and "1000000000000" in body["error"]["message"]
    alert = {"ticker": "AAPL", "action": "buy", "contracts": "1e28", "id": "a-1", "secret": SECRET}
    status, body = http("POST", stack.web.base + "hooks/alerts", alert)
    assert (status, body["error"]["code"]) == (400, "invalid"), body
    assert "above 1000000000" in body["error"]["message"]
    assert _logged(stack) == before
