"""Order and money truth (issue 8): one test per case the fold got wrong against what real IB sends,
each named for the case (docs/state.md has the rules)."""

from __future__ import annotations

from decimal import Decimal

from msgspec.structs import replace

from events.schema import (
    AnyEvent,
    CancelRequested,
    CommissionReported,
    Contract,
    Envelope,
    ModifyRequested,
    ReconciliationFinished,
    ReconciliationStarted,
)
from oms.service.exposure import last_fill_reference
from oms.service.intake import cancellable
from oms.state.fold import copy_state, fold, step
from oms.state.model import FoldError
from tests.fold_strategies import (
    KEY,
    IbIds,
    commission,
    error,
    execution,
    log,
    open_order,
    placed,
    requested,
    sent,
    status,
    then,
)

# 1 ------------------------------------------------------------------------------------------------


def test_1_a_refused_modify_keeps_the_order_working_at_its_old_price() -> None:
    modify = ModifyRequested(client_order_id="c1", limit_price=99.0)
    state = placed(open_order(), modify, error(201, "rejection"))
    order = state.orders["c1"]
    assert (order.status, order.limit_price, order.pending_modify) == ("submitted", 100.0, None)
    assert order.modify_rejected == "error 201" and order.last_error_code == 201
    assert [o.client_order_id for o in cancellable(state)] == ["c1"]  # cancel-all still reaches it
    assert state.positions[KEY].status == "submitted" and state.positions[KEY].orders == ("c1",)
    # any other order error while the modify is pending refuses the modify only, too
    other = placed(open_order(), ModifyRequested(client_order_id="c1", quantity=Decimal(3)), error(110))
    assert (other.orders["c1"].status, other.orders["c1"].quantity) == ("submitted", 10)
    # and it can still fill at IB
    filled = then(state, execution("e1.01", 10))
    assert filled.orders["c1"].status == "filled" and filled.positions[KEY].quantity == 10


# 2 ------------------------------------------------------------------------------------------------


def test_2_orders_ib_never_accepted_end_rejected_and_a_late_cancel_changes_nothing() -> None:
    for code in (200, 103, 110, 10243):
        state = placed(error(code))
        order = state.orders["c1"]
        assert (order.status, order.reason) == ("rejected", f"error {code}"), code
        assert state.positions["DU111|STK:AAPL:USD"].status == "closed"
    pending_submit = placed(status("PendingSubmit"), error(200))
    assert pending_submit.orders["c1"].status == "rejected"  # sent is not accepted
    late = then(placed(error(200)), CancelRequested(client_order_id="c1"), error(10147, "cancel_failed"))
    assert late.orders["c1"].status == "rejected"
    # on an order IB accepted, 110 is a warning: recorded, the order keeps working
    working = placed(open_order(), error(110, "warning")).orders["c1"]
    assert (working.status, working.last_error_code) == ("submitted", 110)


# 3 ------------------------------------------------------------------------------------------------


def test_3_money_is_kept_per_currency_never_summed() -> None:
    toyota = Contract(symbol="7203", exchange="TSEJ", currency="JPY", con_id=777)
    jpy = CommissionReported(exec_id="j1.01", commission=800.0, currency="JPY")
    state = placed(
        execution("e1.01", 10, price=100.0),
        commission("e1.01", 1.0),
        execution("e2.01", 10, price=110.0, side="SLD"),
        execution("j1.01", 100, price=2_000.0, contract=toyota),
        jpy,
        execution("j2.01", 100, price=2_100.0, side="SLD", contract=toyota),
    )
    account = state.accounts["DU111"]
    assert account.commission == {"USD": 1, "JPY": 800}
    assert account.realized_pnl_gross == {"USD": 100, "JPY": 10_000}
    assert account.realized_pnl_net == {"USD": 99, "JPY": 9_200}
    assert state.positions["DU111|777"].realized_pnl_gross == {"JPY": 10_000}
    assert account.realized_pnl_net_base is None  # no ExchangeRate from IB: never guessed
    from events.schema import AccountValueReported

    rates = then(
        state,
        AccountValueReported(account="DU111", key="ExchangeRate", value="1.00", currency="USD"),
        AccountValueReported(account="DU111", key="ExchangeRate", value="0.0067", currency="JPY"),
    )
    assert rates.accounts["DU111"].realized_pnl_net_base == Decimal("99") + Decimal("9200") * Decimal(
        "0.0067"
    )


# 4 ------------------------------------------------------------------------------------------------


def test_4_a_price_only_correction_never_revives_a_cancelled_order() -> None:
    state = placed(
        open_order(),
        execution("e1.01", 4, price=100.0),
        CancelRequested(client_order_id="c1"),
        status("Cancelled", 4),
    )
    assert state.orders["c1"].status == "cancelled"
    corrected = then(state, execution("e1.02", 4, price=100.5))
    order = corrected.orders["c1"]
    assert (order.status, order.filled, order.avg_fill_price) == ("cancelled", 4, Decimal("100.5"))
    assert corrected.positions[KEY].status == "filled" and corrected.positions[KEY].quantity == 4


# 5 ------------------------------------------------------------------------------------------------


def test_5_a_correction_that_flips_the_sign_gives_the_lifecycle_of_the_final_fills() -> None:
    sell: list[AnyEvent] = [requested("c2", side="SELL", quantity=15), sent("c2", 102)]
    fills: list[AnyEvent] = [execution("e1.01", 10), *sell]
    first_sell = execution("e2.01", 5, side="SLD", coid="c2", order_id=102, perm_id=9002)
    corrected_sell = execution("e2.02", 15, side="SLD", coid="c2", order_id=102, perm_id=9002)
    with_correction = fold(log(requested(), sent(), *fills, first_sell, corrected_sell))
    direct = fold(log(requested(), sent(), *fills, corrected_sell))
    for state in (with_correction, direct):
        p = state.positions[KEY]
        assert (p.quantity, p.lifecycle, p.close_reason, p.status) == (-5, 2, "flipped", "filled")
    a, b = with_correction.positions[KEY], direct.positions[KEY]
    assert (a.avg_price, a.realized_pnl_gross) == (b.avg_price, b.realized_pnl_gross)


# 6 ------------------------------------------------------------------------------------------------


def test_6_an_order_known_only_by_its_executions_is_filled_and_does_not_pin_its_position() -> None:
    ext: IbIds = {"order_id": 0, "perm_id": 4242, "client_id": 0}
    state = fold(log(execution("t1.01", 3, coid="", **ext)))
    order = state.orders["ext:perm:4242"]
    # its quantity stays 0 ("not told"); what executed is taken as the whole order
    assert (order.status, order.filled, order.quantity, order.external) == ("filled", 3, 0, True)
    position = state.positions[KEY]
    assert (position.status, position.orders, position.quantity) == ("filled", (), 3)
    # IB later tells its real quantity: the order is working again for the rest
    told = then(state, open_order("Submitted", coid="", quantity=5, **ext))
    assert (told.orders["ext:perm:4242"].status, told.orders["ext:perm:4242"].remaining) == (
        "partially_filled",
        2,
    )


# 7 ------------------------------------------------------------------------------------------------


def test_7_a_commission_for_a_superseded_execution_is_dropped() -> None:
    state = placed(commission("e1.01", 1.0), execution("e1.02", 4), commission("e1.02", 0.5))
    assert state.pending_commissions == {}
    assert state.orders["c1"].commission == {"USD": Decimal("0.5")}
    assert state.accounts["DU111"].commission == {"USD": Decimal("0.5")}  # the 1.0 never counted
    replayed = placed(execution("e1.02", 4), commission("e1.01", 1.0), execution("e1.01", 4))
    assert replayed.pending_commissions == {}
    # dropped, not joined: the late original changes neither the fill nor the money
    assert (replayed.fills["e1"].exec_id, replayed.orders["c1"].filled) == ("e1.02", Decimal(4))
    assert replayed.orders["c1"].commission == {}
    assert all(not a.commission for a in replayed.accounts.values())


# 8 ------------------------------------------------------------------------------------------------


def test_8_filled_without_executions_becomes_an_inferred_fill_that_real_ones_replace() -> None:
    ib_says = replace(status("Filled", 10), avg_fill_price=101.0)
    state = placed(open_order(), ReconciliationStarted(reason="connect"), ib_says)
    assert state.orders["c1"].status == "submitted" and state.orders["c1"].filled == 0  # not yet
    state = then(state, ReconciliationFinished())
    order, position = state.orders["c1"], state.positions[KEY]
    assert (order.status, order.filled, order.inferred, order.avg_fill_price) == ("filled", 10, 10, 101)
    assert (position.quantity, position.avg_price, position.status) == (10, 101, "filled")
    (fill,) = state.fills.values()
    assert fill.inferred and fill.exec_id == "inferred:c1"
    # a real execution arriving later replaces part of it, never adds to it
    state = then(state, execution("e1.01", 4, price=100.0))
    order = state.orders["c1"]
    assert (order.filled, order.inferred, order.overfill, order.avg_fill_price) == (10, 6, 0, 101)
    assert state.positions[KEY].quantity == 10
    state = then(state, execution("e2.01", 6, price=101.0))
    assert (state.orders["c1"].inferred, "inferred:c1" in state.fills) == (0, False)
    assert state.positions[KEY].quantity == 10 and state.orders["c1"].filled == 10


# 9 ------------------------------------------------------------------------------------------------


def test_9_quantities_are_exact_decimals() -> None:
    fx = Contract(symbol="EUR", sec_type="CASH", exchange="IDEALPRO", currency="USD", con_id=12087792)
    fills = [execution(f"f{i}.01", Decimal("0.1"), price=1.1, contract=fx) for i in range(3)]
    state = placed(*fills)
    assert state.positions["DU111|12087792"].quantity == Decimal("0.3")  # not 0.30000000000000004
    assert state.orders["c1"].filled == Decimal("0.3")
    old_log_float = replace(fills[0], shares=0.1)  # what a version-1 journal holds
    from events.codec import decode, encode

    decoded = decode(encode(Envelope(1, 1, old_log_float)))
    assert decoded.event.shares == Decimal("0.1")  # type: ignore[union-attr]


# 10 -----------------------------------------------------------------------------------------------


def test_10_a_market_orders_reference_is_its_own_conid_never_the_symbols() -> None:
    option = Contract(symbol="AAPL", sec_type="OPT", con_id=5555, multiplier="100")
    state = placed(execution("o1.01", 1, price=2.5, contract=option))
    prices = {5555: Decimal("2.5")}
    assert last_fill_reference(state, Contract(symbol="AAPL", con_id=265598), prices) is None
    reference = last_fill_reference(state, option, prices)
    assert reference is not None and (reference.price, reference.source) == (Decimal("2.5"), "last fill")


# 11 -----------------------------------------------------------------------------------------------


def test_11_an_event_the_fold_cannot_apply_is_skipped_whole_live_and_in_replay() -> None:
    bad = replace(execution("bad.01", 10), shares=Decimal("NaN"))
    envs = log(requested(), sent(), open_order(), bad, execution("e1.01", 4))
    live = fold(envs[:4])  # the connection, the order, its send, its openOrder
    before = copy_state(live)
    live, changes = step(live, envs[4])
    assert changes == (FoldError(seq=5, kind="execution", error=changes[0].error),)  # type: ignore[union-attr]
    assert "InvalidOperation" in changes[0].error  # type: ignore[union-attr]
    assert live.orders == before.orders and live.positions == before.positions and live.fills == before.fills
    assert live.fold_errors == {5: changes[0]}
    live, _ = step(live, envs[5])
    assert live.orders["c1"].filled == 4  # the service goes on
    assert fold(envs) == live  # and replay skips it the same way
