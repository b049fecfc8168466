"""Messages people read: numbers written plainly, validation errors as sentences naming the field."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from oms.protocol import AnyRequest
from oms.readable import plain, validation_message
from oms.service.risk import RiskLimits, check_size


def test_numbers_are_plain() -> None:
    assert [plain(1e9), plain(0.25), plain(10.0), plain(7), plain(Decimal("0.10"))] == [
        "1000000000", "0.25", "10", "7", "0.1",
    ]  # fmt: skip
    denial = check_size(Decimal(2 * 10**9), None, Decimal(1), RiskLimits(max_quantity=Decimal(10**9)), "A")
    assert denial is not None and denial.reason == "quantity 2000000000 > max_quantity 1000000000"


@pytest.mark.parametrize(
    ("request_map", "expected"),
    [
        ({"op": "place", "contract": {"symbol": "A"}, "side": "HOLD", "quantity": 1},
         "side: 'HOLD' is not one of the allowed values"),
        ({"op": "place", "contract": {"symbol": "A"}, "side": "BUY"},
         "the required field 'quantity' is missing"),
        ({"op": "place", "contract": {"symbol": "A", "x": 1}, "side": "BUY", "quantity": 1},
         "contract: unknown field 'x' (a typo?)"),
        ({"op": "place", "contract": {"symbol": "A"}, "side": "BUY", "quantity": "ten"},
         "quantity: expected a number (or a decimal number as text)"),
        ({"op": "cancel", "client_order_id": "a b"},
         "client_order_id: expected text with only letters, digits and _ . : -"),
        ({"op": "events", "limit": 10**7}, "limit: expected a whole number at most 5000"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_field_and_what_is_expected(request_map: dict, expected: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert(request_map, AnyRequest)  # type: ignore[call-overload]
    assert validation_message(refused.value) == expected


def test_money_maps_are_shown_per_currency_never_summed() -> None:
    from oms.client.render import money

    assert money({"USD": Decimal("-7.6"), "JPY": Decimal("120")}) == "-7.60 USD, 120 JPY"
    assert money({"USD": Decimal("0.005"), "EUR": Decimal("0")}) == "0.01 USD"  # the currency's cents
    assert money(-7.6) == "-7.60" and money(None) == "" and money({}) == ""
