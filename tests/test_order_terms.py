"""The table of terms each order type and time in force takes (oms/service/terms.py): every type with
its required terms passes, without one of them or with a term it does not take it is refused, naming it."""

from __future__ import annotations

from typing import Any

import pytest

from oms.service.terms import REQUIRED, Terms, modify_error, terms_error

VALUES: dict[str, dict[str, Any]] = {
    "limit_price": {"limit_price": 10.0},
    "stop_price": {"stop_price": 9.0},
    "trailing": {"trailing_amount": 0.5},
    "limit_offset": {"limit_offset": 0.1},
    "touch_price": {"touch_price": 9.5},
}


def minimal(order_type: str) -> dict[str, Any]:
    need, _ = REQUIRED[order_type]
    terms: dict[str, Any] = {}
    for term in need:
        terms.update(VALUES[term])
    if order_type == "TRAIL LIMIT":
        terms.update(VALUES["limit_offset"])
    return terms


@pytest.mark.parametrize("order_type", sorted(REQUIRED))
def test_each_type_takes_exactly_its_terms(order_type: str) -> None:
    assert terms_error(Terms(order_type=order_type, **minimal(order_type))) is None
    need, may = REQUIRED[order_type]
    for term in need:
        without = {k: v for k, v in minimal(order_type).items() if k not in VALUES[term]}
        assert "needs" in (terms_error(Terms(order_type=order_type, **without)) or ""), term
    for term in set(VALUES) - need - may:
        extra = {**minimal(order_type), **VALUES[term]}
        assert "takes no" in (terms_error(Terms(order_type=order_type, **extra)) or ""), term


@pytest.mark.parametrize(
    ("terms", "says"),
    [
        ({"order_type": "TRAIL", "trailing_amount": 1.0, "trailing_percent": 1.0}, "not both"),
        ({"order_type": "TRAIL LIMIT", "trailing_amount": 1.0}, "limit_offset or limit_price"),
        (
            {"order_type": "TRAIL LIMIT", "trailing_amount": 1.0, "limit_offset": 0.1, "limit_price": 9.0},
            "one of",
        ),
        ({"order_type": "LMT", "limit_price": 1.0, "tif": "GTD"}, "needs good_till"),
        (
            {"order_type": "LMT", "limit_price": 1.0, "good_till": "2026-12-07T15:30:00-05:00"},
            "for GTD orders",
        ),
        ({"order_type": "MOC", "tif": "GTC"}, "a DAY order"),
        ({"order_type": "MOC", "sec_type": "CASH"}, "387"),
        ({"order_type": "STP", "stop_price": 1.0, "tif": "OPG"}, "MKT and LMT"),
        ({"order_type": "MKT", "oca_type": 2}, "needs an oca_group"),
        ({"order_type": "MKT", "algo_priority": "Urgent"}, "needs an algo"),
        ({"order_type": "MIT", "touch_price": 1.0, "algo": "Adaptive"}, "MKT and LMT"),
    ],
)
def test_what_ib_refuses_is_named(terms: dict[str, Any], says: str) -> None:
    assert says in (terms_error(Terms(**terms)) or "")


def test_a_modify_changes_only_what_the_type_has() -> None:
    assert modify_error("TRAIL", "DAY", {"trailing"}) is None
    assert modify_error("MIT", "DAY", {"touch_price"}) is None
    assert modify_error("LMT", "GTD", {"good_till", "limit_price"}) is None
    assert "no touch_price" in (modify_error("LMT", "DAY", {"touch_price"}) or "")
    assert "no trailing_amount or trailing_percent" in (modify_error("STP", "DAY", {"trailing"}) or "")
    assert "for GTD orders" in (modify_error("LMT", "DAY", {"good_till"}) or "")
