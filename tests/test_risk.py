"""Pre-trade risk checks (pure) and the intake decisions built on them."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from events.schema import (
    AccountValueReported,
    CancelRequested,
    Contract,
    Envelope,
    KillSwitchChanged,
    ModifyRequested,
    OrderDenied,
    OrderRequested,
)
from oms.protocol import CancelRequest, ErrorInfo, ModifyRequest, PlaceRequest
from oms.service.intake import Duplicate, decide_cancel, decide_modify, decide_place, unsent
from oms.service.risk import (
    Exposure,
    Reference,
    RiskLimits,
    Standing,
    Trade,
    check_order,
    check_size,
    projected,
)
from oms.state.fold import fold
from oms.state.model import State
from tests.fold_strategies import execution, requested, sent, status

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
    limits = RiskLimits(max_quantity=Decimal(100), max_notional=None)
    assert code(order(100), limits) is None
    assert code(order(100.5), limits) == "max_quantity"


def test_max_notional_uses_limit_stop_or_last_fill_price() -> None:
    limits = RiskLimits(max_quantity=None, max_notional=Decimal(10_000))
    assert code(order(100, order_type="LMT", limit_price=100.0), limits) is None
    assert code(order(100, order_type="LMT", limit_price=100.01), limits) == "max_notional"
    assert code(order(100, order_type="STP", stop_price=101.0), limits) == "max_notional"
    assert code(order(100, order_type="STP LMT", limit_price=99.0, stop_price=200.0), limits) is None
    priced = Exposure(multiplier=Decimal(1), reference=Reference(Decimal(150), "market data"))
    assert code(order(100), limits, priced) == "max_notional"


def test_a_market_order_nothing_can_value_is_denied_unless_allowed() -> None:
    limits = RiskLimits(max_quantity=None, max_notional=Decimal(10_000))
    assert code(order(1), limits) == "no_reference_price"
    denial = check_order(order(1), limits, UNIT)
    assert denial is not None and "no earlier fill" in denial.reason and "AAPL" in denial.reason
    allowed = RiskLimits(max_quantity=None, max_notional=Decimal(10_000), allow_market_without_price=True)
    assert code(order(1), allowed) is None


def test_notional_counts_ibs_multiplier_never_the_requests() -> None:
    option = Contract(symbol="AAPL", sec_type="OPT", multiplier="1")  # the request understates it
    limits = RiskLimits(max_quantity=None, max_notional=Decimal(10_000))
    ib = Exposure(multiplier=Decimal(100))  # what IB's contract details say
    assert code(order(10, order_type="LMT", limit_price=9.0, contract=option), limits, ib) is None
    assert code(order(10, order_type="LMT", limit_price=11.0, contract=option), limits, ib) == "max_notional"
    unknown = Exposure(multiplier=None)  # IB has not described it: fail closed
    assert code(order(1, order_type="LMT", limit_price=1.0, contract=option), limits, unknown) == (
        "unknown_multiplier"
    )


def test_max_position_counts_working_orders_on_the_side() -> None:
    limits = RiskLimits(max_quantity=None, max_notional=None, max_position=Decimal(100))
    held = Exposure(account=Standing(position=Decimal(60), working_buy=Decimal(30), working_sell=Decimal(50)))
    assert code(order(10), limits, held) is None  # 60 + 30 + 10 = 100
    assert code(order(11), limits, held) == "max_position"
    assert code(order(100, side="SELL"), limits, held) is None  # 60 - 50 - 100 = -90
    assert code(order(111, side="SELL"), limits, held) == "max_position"


def test_allowed_symbols_and_kill_switch_first() -> None:
    limits = RiskLimits(max_quantity=Decimal(1), max_notional=None, allowed_symbols=("MSFT",))
    assert code(order(1), limits) == "symbol_not_allowed"
    assert code(order(5, contract=Contract(symbol="MSFT")), limits) == "max_quantity"
    assert (
        code(order(1, contract=Contract(symbol="MSFT")), limits, Exposure(kill_switch=True)) == "kill_switch"
    )


@settings(max_examples=300, deadline=None)
@given(
    quantity=st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10**7), places=6),
    price=st.none() | st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10**5), places=6),
    max_quantity=st.none() | st.decimals(min_value=1, max_value=10**6, places=4),
    max_notional=st.none() | st.decimals(min_value=1, max_value=10**9, places=2),
)
def test_check_size_is_exactly_the_two_limits(
    quantity: Decimal, price: Decimal | None, max_quantity: Decimal | None, max_notional: Decimal | None
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
    denied = decide_place(_place(quantity=50), state, RiskLimits(max_quantity=Decimal(20)), "DU1", "n5", None)
    assert isinstance(denied, OrderDenied) and denied.code == "max_quantity" and denied.request is not None
    assert decide_cancel(CancelRequest(client_order_id="zzz"), state).code == "unknown_order"  # type: ignore[union-attr]
    assert isinstance(decide_cancel(CancelRequest(client_order_id="c"), state), CancelRequested)
    big = decide_modify(
        ModifyRequest(client_order_id="c", quantity=Decimal(50)),
        state,
        RiskLimits(max_quantity=Decimal(20)),
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


# --- per strategy and per account, failing closed -----------------------------------------------------

NLV = Decimal(100_000)
PRICED = Exposure(multiplier=Decimal(1), nlv=NLV, rate=Decimal(1))


def test_aggregate_limits_hold_for_the_strategy_and_for_the_account() -> None:
    account = RiskLimits(max_quantity=None, max_notional=None, max_working_orders=3, max_orders_per_minute=5)
    strategy = msgspec.structs.replace(account, max_working_orders=1)
    busy = Exposure(strategy=Standing(working_orders=1), multiplier=Decimal(1))
    assert code_of(order(1), strategy, busy, account) == "max_working_orders"
    full = Exposure(account=Standing(working_orders=3, recent_orders=0), multiplier=Decimal(1))
    assert code_of(order(1), strategy, full, account) == "max_working_orders"
    hurried = Exposure(account=Standing(recent_orders=5), multiplier=Decimal(1))
    assert code_of(order(1), strategy, hurried, account) == "max_orders_per_minute"


def code_of(o: OrderRequested, limits: RiskLimits, exposure: Exposure, account: RiskLimits) -> str | None:
    denial = check_order(o, limits, exposure, account)
    return denial.code if denial else None


def test_position_value_and_share_of_net_liquidation() -> None:
    limits = RiskLimits(max_quantity=None, max_notional=None, max_position_value=Decimal(10_000))
    assert code(order(100, order_type="LMT", limit_price=100.0), limits) is None
    assert code(order(101, order_type="LMT", limit_price=100.0), limits) == "max_position_value"
    pct = RiskLimits(max_quantity=None, max_notional=None, max_position_pct_nlv=Decimal(10))
    assert code(order(100, order_type="LMT", limit_price=100.0), pct, PRICED) is None  # 10,000 = 10%
    assert code(order(101, order_type="LMT", limit_price=100.0), pct, PRICED) == "max_position_pct_nlv"
    euro = msgspec.structs.replace(PRICED, rate=Decimal("1.1"))  # the instrument's currency is worth more
    assert code(order(100, order_type="LMT", limit_price=100.0), pct, euro) == "max_position_pct_nlv"


def test_limits_in_net_liquidation_fail_closed_without_it() -> None:
    pct = RiskLimits(max_quantity=None, max_notional=None, max_position_pct_nlv=Decimal(10))
    lmt = order(1, order_type="LMT", limit_price=1.0)
    assert code(lmt, pct, Exposure(multiplier=Decimal(1), rate=Decimal(1))) == "no_net_liquidation"
    assert code(lmt, pct, Exposure(multiplier=Decimal(1), nlv=NLV)) == "no_exchange_rate"
    assert code(order(1), pct, PRICED) == "no_reference_price"  # a market order nothing values


def test_risk_per_trade_counts_the_brackets_stop_and_refuses_an_opening_order_without_one() -> None:
    limits = RiskLimits(max_quantity=None, max_notional=None, max_risk_per_trade_pct_nlv=Decimal(1))
    child = order(100, side="SELL", order_type="STP", stop_price=95.0)
    ok = msgspec.structs.replace(PRICED, trade=Trade(Decimal(100), Decimal(90), Decimal(100)))
    assert code(child, limits, ok) is None  # |100 - 90| x 100 = 1,000 = 1% of 100,000
    over = msgspec.structs.replace(PRICED, trade=Trade(Decimal(100), Decimal(89), Decimal(100)))
    assert code(child, limits, over) == "max_risk_per_trade_pct_nlv"
    assert code(order(1, order_type="LMT", limit_price=1.0), limits, PRICED) == "no_stop"
    waiting = msgspec.structs.replace(PRICED, stop_pending=True)  # a parent held for its stop child
    assert code(order(1, order_type="LMT", limit_price=1.0), limits, waiting) is None
    closing = msgspec.structs.replace(PRICED, strategy=Standing(position=Decimal(5)))
    assert code(order(5, side="SELL", order_type="LMT", limit_price=1.0), limits, closing) is None
    unpriced = msgspec.structs.replace(PRICED, trade=Trade(None, Decimal(90), Decimal(1)))
    assert code(child, limits, unpriced) == "no_reference_price"


def test_a_scopes_kill_switch_refuses_only_what_adds_exposure() -> None:
    killed = Exposure(
        strategy=Standing(position=Decimal(10), killed="daily_loss_limit"), multiplier=Decimal(1)
    )
    assert code(order(10, side="SELL"), OFF, killed) is None
    assert code(order(11, side="SELL"), OFF, killed) == "daily_loss_limit"
    assert code(order(1), OFF, killed) == "daily_loss_limit"
    unknown = Exposure(account=Standing(loss_unknown="no price for AAPL"), multiplier=Decimal(1))
    with_loss_limit = RiskLimits(max_quantity=None, max_notional=None, daily_loss_limit=Decimal(100))
    assert code(order(1), with_loss_limit, unknown) == "no_pnl"
    assert code(order(1), OFF, unknown) is None


standings = st.builds(
    Standing,
    position=st.integers(-50, 50).map(Decimal),
    working_buy=st.integers(0, 30).map(Decimal),
    working_sell=st.integers(0, 30).map(Decimal),
    killed=st.sampled_from(["daily_loss_limit", ""]),
)


@settings(max_examples=400, deadline=None)
@given(
    strategy=standings, account=standings, side=st.sampled_from(["BUY", "SELL"]), quantity=st.integers(1, 60)
)
def test_no_order_that_adds_exposure_passes_a_loss_limit_kill(
    strategy: Standing, account: Standing, side: str, quantity: int
) -> None:
    """Whatever the positions and working orders: while a scope is killed, an order it lets through
    brings that scope's position, with its working orders on that side, nearer to flat."""
    exposure = Exposure(strategy=strategy, account=account, multiplier=Decimal(1))
    o = order(quantity, side=side)
    if check_order(o, OFF, exposure) is not None:
        return
    for standing in (strategy, account):
        if standing.killed:
            after, now = projected(o, standing), standing.position
            assert 0 <= after < now if now > 0 else now < after <= 0


def test_a_modify_may_not_add_exposure_to_a_killed_scope() -> None:
    state = fold(
        Envelope(i + 1, i + 1, e)  # type: ignore[arg-type]
        for i, e in enumerate(
            [
                requested(),
                sent(),
                execution("e1.01", 10),  # strategy s1 holds 10 AAPL
                KillSwitchChanged(engaged=True, strategy_id="s1", code="daily_loss_limit"),
                requested("c2", "SELL", 5),
                sent("c2", 102),
            ]
        )
    )
    assert isinstance(decide_modify(ModifyRequest(client_order_id="c2", quantity=Decimal(10)), state, OFF),
                      ModifyRequested)  # fmt: skip
    refused = decide_modify(ModifyRequest(client_order_id="c2", quantity=Decimal(11)), state, OFF)
    assert isinstance(refused, ErrorInfo) and refused.reason == "daily_loss_limit"


def test_a_trailing_stop_child_risks_its_distance_from_the_parents_entry() -> None:
    nlv = AccountValueReported(account="DU111", key="NetLiquidation", value="100000", currency="USD")
    rate = AccountValueReported(account="DU111", key="ExchangeRate", value="1", currency="USD")
    events = [nlv, rate, requested(quantity=100)]
    state = fold(Envelope(i + 1, i + 1, e) for i, e in enumerate(events))  # type: ignore[arg-type]
    limits = RiskLimits(max_quantity=None, max_notional=None, max_risk_per_trade_pct_nlv=Decimal(1))

    def child(**terms: object) -> str | None:
        req = _place(side="SELL", quantity=100, order_type="TRAIL", parent_client_order_id="c1", **terms)
        decision = decide_place(req, state, limits, "DU111", "t", None)
        return decision.code if isinstance(decision, OrderDenied) else None

    assert child(trailing_amount=10.0) is None  # |100 - 90| x 100 = 1,000: 1% of 100,000
    assert child(trailing_amount=10.5) == "max_risk_per_trade_pct_nlv"
    assert child(trailing_percent=5.0) is None  # 5% of 100 = 5 a share
    assert child(trailing_percent=11.0) == "max_risk_per_trade_pct_nlv"


def test_a_strategy_may_not_join_another_strategys_oca_group() -> None:
    state = _state_with(order(5, "BUY", "LMT", limit_price=10.0, oca_group="g1"))  # strategy s's group
    lmt = {"order_type": "LMT", "limit_price": 11.0, "oca_group": "g1"}
    theirs = decide_place(_place(strategy_id="t", **lmt), state, OFF, "DU1", "t1", None)
    assert isinstance(theirs, ErrorInfo) and theirs.code == "invalid"
    assert "oca_group 'g1' is used by a working order of another strategy" in theirs.message
    ours = decide_place(_place(strategy_id="s", **lmt), state, OFF, "DU1", "s2", None)
    assert isinstance(ours, OrderRequested) and ours.oca_group == "g1"
    elsewhere = decide_place(
        _place(strategy_id="t", **{**lmt, "oca_group": "g2"}), state, OFF, "DU1", "t2", None
    )
    assert isinstance(elsewhere, OrderRequested)
    ended = order(5, "BUY", "LMT", limit_price=10.0, oca_group="g1")
    done = _state_with(ended, sent("c", 101), status("Cancelled", order_id=101))
    assert done.orders["c"].status == "cancelled"  # a finished order's group is free again
    again = decide_place(_place(strategy_id="t", **lmt), done, OFF, "DU1", "t3", None)
    assert isinstance(again, OrderRequested)


def test_a_bracket_child_without_a_stop_counts_its_working_stop_sibling() -> None:
    nlv = AccountValueReported(account="DU111", key="NetLiquidation", value="100000", currency="USD")
    rate = AccountValueReported(account="DU111", key="ExchangeRate", value="1", currency="USD")
    stop = msgspec.structs.replace(
        requested("s1", "SELL", 100), order_type="STP", limit_price=None, stop_price=95.0,
        parent_client_order_id="c1", transmit=False,
    )  # fmt: skip
    limits = RiskLimits(max_quantity=None, max_notional=None, max_risk_per_trade_pct_nlv=Decimal(1))
    take = _place(side="SELL", quantity=100, order_type="LMT", limit_price=110.0, parent_client_order_id="c1")
    state = _state_with(nlv, rate, requested(quantity=100), stop)
    assert isinstance(decide_place(take, state, limits, "DU111", "t", None), OrderRequested)
    gone = _state_with(
        nlv, rate, requested(quantity=100), stop, sent("s1", 102), status("Cancelled", order_id=102)
    )
    denied = decide_place(take, gone, limits, "DU111", "t", None)
    assert isinstance(denied, OrderDenied) and denied.code == "no_stop"
