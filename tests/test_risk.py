"""Pre-trade risk checks (pure) and the intake decisions built on them."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from events.schema import CancelRequested, Contract, Envelope, OrderDenied, OrderRequested
from oms.protocol import CancelRequest, ErrorInfo, ModifyRequest, PlaceRequest
from oms.service.intake import Duplicate, decide_cancel, decide_modify, decide_place, unsent
from oms.service.risk import Exposure, Reference, RiskLimits, check_order, check_size
from oms.state.fold import fold
from oms.state.model import State

OFF = RiskLimits(max_quantity=None, max_notional=None)


def order(quantity: float = 10, side: str = "BUY", order_type: str = "MKT", **kw: object) -> OrderRequested:
    return OrderRequested(
        client_order_id="c",
        strategy_id="s",
        account="DU1",
        contract=kw.pop("contract", Contract(symbol="AAPL")),  # type: ignore[arg-type]
        side=side,  # type: ignore[arg-type]
        quantity=Decimal(str(quantity)),
        order_type=order_type,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


UNIT = Exposure(multiplier=Decimal(1))  # IB described it: multiplier 1 (a stock)


def code(o: OrderRequested, limits: RiskLimits, exposure: Exposure = UNIT) -> str | None:
    denial = check_order(o, limits, exposure)
    return denial.code if denial else None


def test_all_checks_off_allow_anything() -> None:
    assert code(order(1e9), OFF) is None


def test_max_quantity() -> None:
    limits = RiskLimits(max_quantity=100, max_notional=None)
    assert code(order(100), limits) is None
    assert code(order(100.5), limits) == "max_quantity"


def test_max_notional_uses_limit_stop_or_last_fill_price() -> None:
    limits = RiskLimits(max_quantity=None, max_notional=10_000)
    assert code(order(100, order_type="LMT", limit_price=100.0), limits) is None
    assert code(order(100, order_type="LMT", limit_price=100.01), limits) == "max_notional"
    assert code(order(100, order_type="STP", stop_price=101.0), limits) == "max_notional"
    assert code(order(100, order_type="STP LMT", limit_price=99.0, stop_price=200.0), limits) is None
    priced = Exposure(multiplier=Decimal(1), reference=Reference(Decimal(150), "market data"))
    assert code(order(100), limits, priced) == "max_notional"


def test_a_market_order_nothing_can_value_is_denied_unless_allowed() -> None:
    limits = RiskLimits(max_quantity=None, max_notional=10_000)
    assert code(order(1), limits) == "no_reference_price"
    denial = check_order(order(1), limits, UNIT)
    assert denial is not None and "no earlier fill" in denial.reason and "AAPL" in denial.reason
    allowed = RiskLimits(max_quantity=None, max_notional=10_000, allow_market_without_price=True)
    assert code(order(1), allowed) is None


def test_notional_counts_ibs_multiplier_never_the_requests() -> None:
    option = Contract(symbol="AAPL", sec_type="OPT", multiplier="1")  # the request understates it
    limits = RiskLimits(max_quantity=None, max_notional=10_000)
    ib = Exposure(multiplier=Decimal(100))  # what IB's contract details say
    assert code(order(10, order_type="LMT", limit_price=9.0, contract=option), limits, ib) is None
    assert code(order(10, order_type="LMT", limit_price=11.0, contract=option), limits, ib) == "max_notional"
    unknown = Exposure(multiplier=None)  # IB has not described it: fail closed
    assert code(order(1, order_type="LMT", limit_price=1.0, contract=option), limits, unknown) == (
        "unknown_multiplier"
    )


def test_max_position_counts_working_orders_on_the_side() -> None:
    limits = RiskLimits(max_quantity=None, max_notional=None, max_position=100)
    held = Exposure(position=Decimal(60), working_buy=Decimal(30), working_sell=Decimal(50))
    assert code(order(10), limits, held) is None  # 60 + 30 + 10 = 100
    assert code(order(11), limits, held) == "max_position"
    assert code(order(100, side="SELL"), limits, held) is None  # 60 - 50 - 100 = -90
    assert code(order(111, side="SELL"), limits, held) == "max_position"


def test_allowed_symbols_and_kill_switch_first() -> None:
    limits = RiskLimits(max_quantity=1, max_notional=None, allowed_symbols=("MSFT",))
    assert code(order(1), limits) == "symbol_not_allowed"
    assert code(order(5, contract=Contract(symbol="MSFT")), limits) == "max_quantity"
    assert (
        code(order(1, contract=Contract(symbol="MSFT")), limits, Exposure(kill_switch=True)) == "kill_switch"
    )


@settings(max_examples=300, deadline=None)
@given(
    quantity=st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10**7), places=6),
    price=st.none() | st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10**5), places=6),
    max_quantity=st.none() | st.floats(min_value=1, max_value=1e6),
    max_notional=st.none() | st.floats(min_value=1, max_value=1e9),
)
def test_check_size_is_exactly_the_two_limits(
    quantity: Decimal, price: Decimal | None, max_quantity: float | None, max_notional: float | None
) -> None:
    limits = RiskLimits(max_quantity=max_quantity, max_notional=max_notional)
    denial = check_size(quantity, price, Decimal(1), limits, "X")
    over_quantity = max_quantity is not None and quantity > max_quantity
    unpriced = max_notional is not None and price is None  # fails closed
    over_notional = max_notional is not None and price is not None and quantity * price > max_notional
    over_notional = over_notional or unpriced
    assert (denial is None) == (not over_quantity and not over_notional)
    if over_quantity:
        assert denial is not None and denial.code == "max_quantity"


def _state_with(*events: object) -> State:
    return fold(Envelope(seq=i + 1, ts=i + 1, event=e) for i, e in enumerate(events))  # type: ignore[arg-type]


def _place(**kw: object) -> PlaceRequest:
    fields: dict[str, object] = {"contract": {"symbol": "AAPL"}, "side": "BUY", "quantity": 10, "op": "place"}
    return msgspec.convert({**fields, **kw}, PlaceRequest)


def test_intake_decisions() -> None:
    state = _state_with(order(5))
    same = _place(quantity=5, strategy_id="s")  # a retry of the order(5) above
    assert isinstance(decide_place(same, state, OFF, "DU1", "c", None), Duplicate)
    other = decide_place(_place(), state, OFF, "DU1", "c", None)
    assert isinstance(other, ErrorInfo) and other.code == "duplicate_client_order_id"
    assert "strategy_id: s, not default" in other.message and "quantity: 5, not 10" in other.message
    fresh = decide_place(_place(), state, OFF, "DU1", "new", None)
    assert isinstance(fresh, OrderRequested) and fresh.account == "DU1"
    assert decide_place(_place(order_type="LMT"), state, OFF, "DU1", "n2", None).code == "invalid"  # type: ignore[union-attr]
    assert decide_place(_place(), state, OFF, "", "n3", None).code == "invalid"  # type: ignore[union-attr]
    orphan = decide_place(_place(parent_client_order_id="ghost"), state, OFF, "DU1", "n4", None)
    assert isinstance(orphan, ErrorInfo) and orphan.code == "unknown_order"
    denied = decide_place(_place(quantity=50), state, RiskLimits(max_quantity=20), "DU1", "n5", None)
    assert isinstance(denied, OrderDenied) and denied.code == "max_quantity" and denied.request is not None
    assert decide_cancel(CancelRequest(client_order_id="zzz"), state).code == "unknown_order"  # type: ignore[union-attr]
    assert isinstance(decide_cancel(CancelRequest(client_order_id="c"), state), CancelRequested)
    big = decide_modify(
        ModifyRequest(client_order_id="c", quantity=Decimal(50)), state, RiskLimits(max_quantity=20)
    )
    assert isinstance(big, ErrorInfo) and big.code == "risk_denied" and big.reason == "max_quantity"
    done = _state_with(order(5), OrderDenied(client_order_id="c", code="x", reason="y"))
    assert decide_cancel(CancelRequest(client_order_id="c"), done).code == "order_done"  # type: ignore[union-attr]
    assert [o.client_order_id for o in unsent(state, before_seq=2)] == ["c"]
    assert unsent(state, before_seq=1) == []


def test_quantities_are_exact_and_whole_increments_at_intake() -> None:
    state = _state_with()
    for bad, says in (
        (Decimal("5E-324"), "not a multiple of 1"),
        (Decimal("1.5"), "not a multiple of 1, the size increment of STK AAPL"),
    ):  # NaN, zero, negatives and sizes beyond IB's cannot even be requested: tests/test_bounds.py
        refused = decide_place(_place(quantity=bad), state, OFF, "DU1", "q", None)
        assert isinstance(refused, ErrorInfo) and refused.code == "invalid" and says in refused.message, bad
    forex = _place(quantity="0.1", contract={"symbol": "EUR", "sec_type": "CASH", "currency": "USD"})
    placed = decide_place(forex, state, OFF, "DU1", "fx", None)
    assert isinstance(placed, OrderRequested) and placed.quantity == Decimal("0.1")
