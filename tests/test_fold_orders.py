"""Each order rule of docs/state.md (design §4, ib-semantics §1.3, §2.2-2.5), named by its test."""

from __future__ import annotations

from decimal import Decimal

import pytest
from msgspec.structs import replace

from events.schema import AnyEvent, CancelRequested, Envelope, ModifyRequested, OrderDenied
from oms.state.fold import copy_state, fold, step
from oms.state.model import Order
from tests.fold_strategies import (
    AAPL_IB,
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


def order_after(*events: object, coid: str = "c1") -> Order:
    return fold(log(*events)).orders[coid]  # type: ignore[arg-type]


# --- no ordering between openOrder, orderStatus and execDetails ------------------------------------


def test_fill_before_acknowledgement_is_applied() -> None:
    o = order_after(requested(), sent(), execution("e1.01", 4), open_order(), status("Submitted", 4))
    assert (o.status, o.filled, o.remaining) == ("partially_filled", 4.0, 6.0)
    assert o.perm_ids == (9001,)


def test_fill_before_order_sent_joins_by_order_ref() -> None:
    o = order_after(requested(), execution("e1.01", 10), sent())
    assert (o.status, o.filled, o.order_id) == ("filled", 10.0, 101)


def test_missing_order_status_still_fills_from_executions() -> None:
    o = order_after(requested(), sent(), execution("e1.01", 3), execution("e2.01", 7))
    assert (o.status, o.filled, o.broker_status) == ("filled", 10.0, "")


def test_repeated_order_status_changes_nothing() -> None:
    state = placed(status("Submitted"))
    again, changes = step(copy_state(state), Envelope(99, 1, status("Submitted")))
    assert changes == ()
    assert again.orders == state.orders


# --- fills come from executions, deduped by execId -----------------------------------------------


def test_duplicate_exec_id_is_ignored() -> None:
    o = order_after(requested(), sent(), execution("e1.01", 4), execution("e1.01", 4), execution("e1.01", 4))
    assert o.filled == 4.0


def test_duplicate_from_a_sync_is_ignored() -> None:
    replay = replace(execution("e1.01", 4), req_id=42)
    assert order_after(requested(), sent(), execution("e1.01", 4), replay).filled == 4.0


def test_execution_correction_replaces_the_earlier_one() -> None:
    state = placed(execution("e1.01", 6, price=100.0), execution("e1.02", 4, price=101.0))
    o = state.orders["c1"]
    assert (o.filled, o.avg_fill_price, o.status) == (4.0, 101.0, "partially_filled")
    assert state.positions["DU111|265598"].quantity == 4.0
    assert state.fills["e1"].exec_id == "e1.02" and state.fills["e1"].corrects == "e1.01"


@pytest.mark.parametrize(
    ("ib_says", "ends"),
    [
        ((status("Cancelled", 10),), "cancelled"),  # IB confirmed the cancel while it stood filled
        ((error(10148, "cancel_failed"),), "partially_filled"),  # IB refused it: working again
        ((), "pending_cancel"),  # neither yet: still cancelling
    ],
)
def test_a_correction_of_an_order_filled_while_its_cancel_was_pending(ib_says: tuple, ends: str) -> None:
    """Folding corrections gives what folding the corrected fills directly gives (found by the
    property test of that name): filled while cancelling, then a correction takes 4 of 10 back."""
    cancel = CancelRequested(client_order_id="c1")
    o = order_after(requested(), sent(), cancel, execution("e1.01", 10), *ib_says, execution("e1.02", 6))
    assert (o.filled, o.status) == (6, ends)


def test_a_correction_never_revives_an_order_that_ended_part_filled() -> None:
    cancelled = (CancelRequested(client_order_id="c1"), execution("e1.01", 4), status("Cancelled", 4))
    o = order_after(requested(), sent(), *cancelled, execution("e1.02", 3))
    assert (o.filled, o.status) == (3, "cancelled")


def test_correction_before_original_ignores_the_late_original() -> None:
    o = order_after(requested(), sent(), execution("e1.02", 4), execution("e1.01", 6))
    assert o.filled == 4.0


def test_order_status_filled_is_a_cross_check_never_a_fill() -> None:
    o = order_after(requested(), sent(), status("Filled", 10))
    assert (o.filled, o.broker_filled, o.status, o.broker_status) == (0.0, 10.0, "submitted", "Filled")


def test_overfill_is_recorded_and_remaining_clamped() -> None:
    o = order_after(requested(), sent(), execution("e1.01", 8), execution("e2.01", 5))
    assert (o.filled, o.overfill, o.remaining, o.status) == (10.0, 3.0, 0.0, "filled")


# --- commissions join executions by execId, in either order --------------------------------------


@pytest.mark.parametrize("commission_first", [True, False])
def test_commission_joins_its_execution_before_or_after(commission_first: bool) -> None:
    pair = [commission("e1.01", 1.5, realized=2.0), execution("e1.01", 4)]
    state = placed(*(pair if commission_first else reversed(pair)))
    usd = {"USD": Decimal("1.5")}
    assert state.fills["e1"].commission == usd
    assert state.orders["c1"].commission == usd
    account = state.accounts["DU111"]
    assert (account.commission, account.broker_realized_pnl) == (usd, {"USD": Decimal(2)})
    assert state.pending_commissions == {}


def test_resent_commission_replaces_not_adds() -> None:
    state = placed(execution("e1.01", 4), commission("e1.01", 1.0), commission("e1.01", 1.25))
    usd = {"USD": Decimal("1.25")}
    assert (state.orders["c1"].commission, state.accounts["DU111"].commission) == (usd, usd)


def test_commission_of_a_corrected_execution_is_replaced_by_the_correction() -> None:
    state = placed(
        execution("e1.01", 4), commission("e1.01", 1.0), execution("e1.02", 3), commission("e1.02", 0.7)
    )
    assert state.orders["c1"].commission == {"USD": Decimal("0.7")}
    late = placed(execution("e1.01", 4), execution("e1.02", 3), commission("e1.01", 1.0))
    assert late.orders["c1"].commission == {} and late.pending_commissions == {}


# --- status mapping of IB's strings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("ib_status", "expected"),
    [
        ("ApiPending", "pending"),  # sent, not yet accepted: an error can still refuse it
        ("PendingSubmit", "pending"),
        ("PreSubmitted", "submitted"),
        ("Submitted", "submitted"),
        ("Filled", "submitted"),
        ("PendingCancel", "pending_cancel"),
        ("ApiCancelled", "cancelled"),
        ("Cancelled", "cancelled"),
        ("Inactive", "inactive"),
        ("ValidationError", "pending"),
    ],
)
def test_ib_status_strings_map_to_order_states(ib_status: str, expected: str) -> None:
    assert placed(status(ib_status)).orders["c1"].status == expected


def test_inactive_while_locating_shares_is_a_hold_not_an_end() -> None:
    assert placed(status("Inactive", why_held="locate")).orders["c1"].status == "submitted"


def test_order_status_resolved_through_order_sent() -> None:
    assert placed(status("Submitted", perm_id=0)).orders["c1"].status == "submitted"


def test_order_status_resolved_through_perm_id_in_a_later_session() -> None:
    later = status("Cancelled", order_id=555, client_id=8)  # same permId, another session's orderId
    state = placed(open_order(), later)
    assert state.orders["c1"].status == "cancelled"
    assert not any(o.external for o in state.orders.values())


def test_one_order_can_acquire_several_perm_ids() -> None:
    state = placed(
        open_order(), status("Submitted", perm_id=9999), status("Cancelled", perm_id=9999, order_id=0)
    )
    assert state.orders["c1"].perm_ids == (9001, 9999)
    assert state.orders["c1"].status == "cancelled"


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [201, 203, 10289, 10293])
def test_rejection_codes_reject(code: int) -> None:
    o = placed(status("PendingSubmit"), error(code, "rejection")).orders["c1"]
    assert (o.status, o.reason, o.last_error_code) == ("rejected", f"error {code}", code)


def test_error_202_cancels() -> None:
    o = placed(open_order(), CancelRequested(client_order_id="c1"), error(202, "cancel")).orders["c1"]
    assert (o.status, o.reason) == ("cancelled", "error 202")


@pytest.mark.parametrize("code", [103, 104, 105, 110, 321, 399, 404, 434])
def test_other_error_codes_never_end_an_order(code: int) -> None:
    o = placed(open_order(), error(code)).orders["c1"]
    assert (o.status, o.last_error_code) == ("submitted", code)


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        (10349, "error"),
        (2104, "error"),
        (2100, "error"),
        (2199, "error"),
        (1, "information"),
        (1100, "connectivity"),
    ],
)
def test_informational_codes_change_nothing(code: int, error_class: str) -> None:
    before = placed(open_order())
    after, changes = step(copy_state(before), log(error(code, error_class))[-1])
    assert changes == ()
    assert after.orders == before.orders


@pytest.mark.parametrize("code", [399, 404, 110])
def test_warnings_on_a_working_order_are_recorded_and_change_no_status(code: int) -> None:
    o = placed(open_order(), error(code, "warning")).orders["c1"]
    assert (o.status, o.last_error_code, o.pending_modify) == ("submitted", code, None)


def test_error_req_id_is_an_order_id_of_this_session_client_id() -> None:
    state = placed(open_order(order_id=101, client_id=7))
    other = fold(log(error(201, "rejection", req_id=101))[-1:], copy_state(replace(state, client_id=8)))
    assert other.orders["c1"].status == "submitted"


@pytest.mark.parametrize("code", [10147, 10148, 161])
@pytest.mark.parametrize("before", ["pending", "submitted", "partially_filled"])
def test_failed_cancel_returns_the_state_before_the_cancel(code: int, before: str) -> None:
    setup: dict[str, list[AnyEvent]] = {
        "pending": [],
        "submitted": [open_order()],
        "partially_filled": [open_order(), execution("e1.01", 2)],
    }
    state = placed(*setup[before], CancelRequested(client_order_id="c1"))
    assert state.orders["c1"].status == "pending_cancel"
    state = fold(log(error(code, "cancel_failed"))[-1:], state)
    # 10147 ("not found") for an order IB never accepted: IB does not have it, so it ends
    expected = "rejected" if (code, before) == (10147, "pending") else before
    assert state.orders["c1"].status == expected
    assert state.orders["c1"].pre_cancel_status == ""


def test_fill_while_cancelling_then_failed_cancel_returns_partially_filled() -> None:
    state = placed(open_order(), CancelRequested(client_order_id="c1"), execution("e1.01", 3))
    assert state.orders["c1"].status == "pending_cancel"
    state = fold(log(error(10148, "cancel_failed"))[-1:], state)
    assert state.orders["c1"].status == "partially_filled"


def test_fill_while_cancelling_that_completes_the_order_fills_it() -> None:
    o = placed(open_order(), CancelRequested(client_order_id="c1"), execution("e1.01", 10)).orders["c1"]
    assert o.status == "filled"


# --- terminal states ------------------------------------------------------------------------------


def test_fill_after_cancel_is_applied() -> None:
    state = placed(open_order(), status("Cancelled"), execution("e1.01", 3))
    assert (state.orders["c1"].status, state.orders["c1"].filled) == ("partially_filled", 3.0)
    state = fold(log(execution("e2.01", 7))[-1:], state)
    assert state.orders["c1"].status == "filled"


@pytest.mark.parametrize("terminal", ["filled", "cancelled", "rejected", "inactive"])
def test_terminal_states_ignore_statuses_errors_and_requests(terminal: str) -> None:
    reach = {
        "filled": execution("e1.01", 10),
        "cancelled": status("Cancelled"),
        "rejected": error(201, "rejection"),
        "inactive": status("Inactive"),
    }
    state = placed(open_order(), reach[terminal])
    for later in (
        status("Submitted"),
        status("Cancelled"),
        error(202),
        error(201),
        CancelRequested(client_order_id="c1"),
        error(10148),
        open_order(quantity=20),
        ModifyRequested(client_order_id="c1", quantity=Decimal(3)),
    ):
        state = fold(log(later)[-1:], state)
        assert state.orders["c1"].status == terminal
        assert state.orders["c1"].quantity == 10.0


# --- intents --------------------------------------------------------------------------------------


def test_order_denied_is_rejected_with_its_reason_and_never_reaches_ib() -> None:
    o = order_after(requested(), OrderDenied(client_order_id="c1", code="max_qty", reason="too big"))
    assert (o.status, o.reason, o.order_id, o.perm_ids) == ("rejected", "too big", 0, ())
    alone = order_after(
        OrderDenied(client_order_id="c1", code="kill", reason="kill switch", request=requested())
    )
    assert (alone.status, alone.reason, alone.quantity) == ("rejected", "kill switch", 10.0)


def test_duplicate_client_order_id_never_makes_a_second_order() -> None:
    o = order_after(requested(quantity=10), requested(quantity=99))
    assert o.quantity == 10.0


def test_modify_applies_when_ib_acknowledges_it_with_an_open_order() -> None:
    modify = ModifyRequested(client_order_id="c1", quantity=Decimal(15), limit_price=99.0)
    state = placed(open_order(), modify)
    o = state.orders["c1"]
    assert (o.quantity, o.limit_price, o.pending_modify is not None) == (10.0, 100.0, True)
    o = fold(log(open_order(quantity=15, limit=99.0))[-1:], state).orders["c1"]
    assert (o.quantity, o.limit_price, o.remaining, o.pending_modify) == (15.0, 99.0, 15.0, None)


def test_a_trailing_stop_keeps_what_ib_shows_working_and_its_modify_waits_for_it() -> None:
    """IB's openOrder is the truth of a TRAIL's terms: the stop it moved to, and a modified trailing
    amount only once IB shows it (until then the modify is pending and the old amount stands)."""
    trail = replace(open_order(), order_type="TRAIL", limit_price=None, trailing_amount=1.0)
    state = placed(trail, replace(trail, trail_stop_price=98.5))
    assert (state.orders["c1"].trailing_amount, state.orders["c1"].trail_stop_price) == (1.0, 98.5)
    state = then(state, ModifyRequested(client_order_id="c1", trailing_amount=2.0))
    state = then(state, replace(trail, trail_stop_price=99.0))  # the stop moved; the amount not yet
    o = state.orders["c1"]
    assert (o.trailing_amount, o.trail_stop_price, o.pending_modify is not None) == (1.0, 99.0, True)
    state = then(state, replace(trail, trailing_amount=2.0, trail_stop_price=98.0))
    o = state.orders["c1"]
    assert (o.trailing_amount, o.trail_stop_price, o.pending_modify) == (2.0, 98.0, None)


def test_modify_down_to_the_filled_quantity_fills_the_order() -> None:
    modify = ModifyRequested(client_order_id="c1", quantity=Decimal(4))
    state = placed(open_order(), execution("e1.01", 4), modify)
    assert fold(log(open_order(quantity=4))[-1:], state).orders["c1"].status == "filled"


# --- external orders ------------------------------------------------------------------------------


def test_open_order_of_another_client_is_tracked_as_external() -> None:
    state = fold(log(open_order(coid="theirs", client_id=3, order_id=55, perm_id=777)))
    o = state.orders["ext:perm:777"]
    assert (o.external, o.strategy_id, o.quantity, o.status, o.contract) == (
        True,
        "external",
        10.0,
        "submitted",
        AAPL_IB,
    )


def test_manual_tws_order_fill_is_tracked_as_external_with_its_position() -> None:
    state = fold(log(execution("x1.01", 5, coid="", client_id=0, order_id=0, perm_id=4242)))
    o = state.orders["ext:perm:4242"]
    assert (o.external, o.filled) == (True, 5.0)
    assert state.positions["DU111|265598"].quantity == 5.0
    assert state.strategy_positions["external|DU111|265598"].quantity == 5.0


def test_external_order_keeps_its_synthetic_id_when_its_perm_id_arrives() -> None:
    state = fold(
        log(
            status("Submitted", order_id=55, client_id=3, perm_id=0),
            open_order(coid="theirs", order_id=55, client_id=3, perm_id=777),
            execution("x1.01", 2, coid="theirs", order_id=55, client_id=3, perm_id=777),
        )
    )
    assert list(state.orders) == ["ext:3:55"]
    o = state.orders["ext:3:55"]
    assert (o.perm_ids, o.filled, o.quantity, o.account) == ((777,), 2.0, 10.0, "DU111")
