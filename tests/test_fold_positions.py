"""Position lifecycle, accounts and the session facts of docs/state.md, each rule named by its test."""

from __future__ import annotations

from decimal import Decimal

import pytest

from events.schema import (
    AccountValueReported,
    AnyEvent,
    CancelRequested,
    ConnectionChanged,
    Contract,
    Envelope,
    KillSwitchChanged,
    OrderDenied,
    PositionMismatch,
    PositionReported,
    ReconciliationFinished,
    ReconciliationStarted,
    UnknownEvent,
)
from oms.state.codec import decode_state, encode_state
from oms.state.fold import copy_state, fold, step
from oms.state.model import Position, Removed, State
from tests.fold_strategies import (
    AAPL,
    AAPL_IB,
    KEY,
    IbIds,
    commission,
    error,
    execution,
    log,
    open_order,
    requested,
    sent,
    status,
)


def position(state: State, key: str = KEY) -> Position:
    return state.positions[key]


def test_lifecycle_pending_submitted_filled_closing_closed() -> None:
    seen = []
    state = fold(log())
    sell: list[AnyEvent] = [requested("c2", side="SELL"), sent("c2", order_id=102)]
    events: list[AnyEvent] = [
        requested(contract=AAPL_IB),
        sent(),
        open_order(),
        execution("e1.01", 10),
        *sell,
        execution("e2.01", 10, side="SLD", coid="c2", order_id=102, perm_id=9002),
    ]
    for env in log(*events)[1:]:
        state, _ = step(state, env)
        seen.append(position(state).status)
    assert seen == ["pending", "pending", "submitted", "filled", "closing", "closing", "closed"]
    p = position(state)
    assert (p.quantity, p.close_reason, p.lifecycle, p.opened_seq, p.closed_seq) == (0.0, "flat", 1, 2, 8)


@pytest.mark.parametrize(
    ("end", "reason"),
    [
        (status("Cancelled"), "cancelled"),
        (error(202, "cancel"), "cancelled"),
        (error(201, "rejection"), "rejected"),
        (status("Inactive"), "inactive"),
        (OrderDenied(client_order_id="c1", code="risk", reason="no"), "rejected"),
    ],
)
def test_entry_that_ends_without_a_fill_closes_the_lifecycle_with_its_reason(
    end: object, reason: str
) -> None:
    state = fold(log(requested(contract=AAPL_IB), sent(), end))  # type: ignore[arg-type]
    assert (position(state).status, position(state).close_reason, position(state).lifecycle) == (
        "closed",
        reason,
        1,
    )


def test_new_entry_after_a_closed_lifecycle_opens_the_next() -> None:
    state = fold(
        log(requested(contract=AAPL_IB), sent(), status("Cancelled"), requested("c2", contract=AAPL_IB))
    )
    assert (position(state).status, position(state).lifecycle) == ("pending", 2)


def test_fill_that_flips_the_sign_closes_one_lifecycle_and_opens_the_next() -> None:
    state = fold(
        log(
            requested(),
            sent(),
            execution("e1.01", 10, price=100.0),
            requested("c2", side="SELL", quantity=15),
            sent("c2", order_id=102),
            execution("e2.01", 15, price=110.0, side="SLD", coid="c2", order_id=102, perm_id=9002),
        )
    )
    p = position(state)
    assert (p.quantity, p.avg_price, p.realized_pnl_gross, p.status) == (-5, 110, {"USD": 100}, "filled")
    assert (p.lifecycle, p.close_reason, p.closed_seq, p.opened_seq) == (2, "flipped", 7, 7)


def test_order_by_symbol_and_its_fills_land_on_one_conid_key() -> None:
    state = fold(log(requested(contract=AAPL), sent()))
    assert list(state.positions) == ["DU111|STK:AAPL:USD"]
    state, changes = step(state, Envelope(4, 4, open_order()))
    assert Removed("DU111|STK:AAPL:USD", KEY) in changes
    assert list(state.positions) == [KEY] and position(state).orders == ("c1",)
    assert state.orders["c1"].contract.con_id == 265598
    assert set(state.position_inputs) == {KEY, "s1|" + KEY}  # the histories moved with their positions
    assert decode_state(encode_state(state)) == state
    state = fold(
        log(execution("e1.01", 10), requested("c2", contract=AAPL), sent("c2", order_id=102))[1:], state
    )
    assert list(state.positions) == [KEY]
    assert list(state.strategy_positions) == ["s1|" + KEY]
    assert (position(state).quantity, position(state).orders) == (10.0, ("c2",))


def test_fill_before_any_open_order_joins_the_symbol_position_to_its_conid() -> None:
    state = fold(log(requested(contract=AAPL), sent(), execution("e1.01", 4)))
    assert list(state.positions) == [KEY]
    assert (position(state).quantity, position(state).status, position(state).orders) == (
        4.0,
        "filled",
        ("c1",),
    )


def test_external_order_seen_status_first_then_executed_before_its_open_order() -> None:
    """Its account comes with the execution: no position under an empty account keeps it working."""
    ext: IbIds = {"order_id": 55, "perm_id": 777, "client_id": 0}
    state = fold(
        log(
            status("Submitted", **ext),
            execution("X.01", 5, coid="", **ext),
            open_order("Filled", coid="", quantity=5, **ext),
        )
    )
    order = state.orders["ext:perm:777"]
    assert (order.status, order.account, order.side, order.filled) == ("filled", "DU111", "BUY", 5.0)
    assert list(state.positions) == [KEY]
    assert list(state.strategy_positions) == ["external|" + KEY]
    for p in (position(state), state.strategy_positions["external|" + KEY]):
        assert (p.quantity, p.status, p.orders) == (5.0, "filled", ())


def test_position_under_an_empty_account_moves_to_the_account_once_ib_names_it() -> None:
    state = fold(log(requested(contract=AAPL_IB, account=""), sent()))
    assert list(state.positions) == ["|265598"] and position(state, "|265598").orders == ("c1",)
    state, changes = step(state, Envelope(4, 4, open_order(account="DU111")))
    assert Removed("|265598", KEY) in changes and Removed("s1||265598", "s1|" + KEY) in changes
    assert position(state) in changes and state.strategy_positions["s1|" + KEY] in changes
    assert list(state.positions) == [KEY] and list(state.strategy_positions) == ["s1|" + KEY]
    p = position(state)
    assert (p.account, p.status, p.orders, p.lifecycle, p.opened_seq) == ("DU111", "submitted", ("c1",), 1, 2)
    state = fold(log(execution("e1.01", 10))[1:], state)
    assert list(state.positions) == [KEY]
    assert (position(state).quantity, position(state).status, position(state).orders) == (10.0, "filled", ())


def test_order_leaving_a_shared_empty_account_position_only_takes_its_membership() -> None:
    state = fold(
        log(
            requested(contract=AAPL_IB, account=""),
            sent(),
            requested("c2", contract=AAPL_IB, account=""),
            sent("c2", order_id=102),
            open_order(account="DU111"),
        )
    )
    assert position(state, "|265598").orders == ("c2",)
    assert position(state).orders == ("c1",)


def test_position_report_is_a_cross_check_that_never_changes_the_quantity() -> None:
    report = PositionReported(account="DU111", contract=AAPL_IB, position=Decimal(99), avg_cost=1.0)
    before = fold(log(requested(), sent(), execution("e1.01", 10)))
    after, changes = step(copy_state(before), Envelope(9, 9, report))
    assert changes == ()
    assert after.positions == before.positions
    assert after.broker_positions[KEY].position == 99.0


def test_position_mismatch_is_recorded_not_applied() -> None:
    mismatch = PositionMismatch(
        account="DU111", contract=AAPL_IB, broker_position=Decimal(7), folded_position=Decimal(10)
    )
    state = fold(log(requested(), sent(), execution("e1.01", 10), mismatch))
    assert state.mismatches[KEY].broker_position == 7.0
    assert position(state).quantity == 10.0


def test_closing_means_an_order_on_the_closing_side_is_working() -> None:
    state = fold(
        log(requested(), sent(), execution("e1.01", 10), requested("c2", quantity=5), sent("c2", 102))
    )
    assert position(state).status == "filled"  # adding, not closing
    state = fold(log(requested("c3", side="SELL"), sent("c3", 103))[1:], state)
    assert position(state).status == "closing"
    state = fold(
        log(CancelRequested(client_order_id="c3"), status("Cancelled", order_id=103, perm_id=0))[1:], state
    )
    assert position(state).status == "filled"


def test_strategy_positions_come_from_which_strategy_orders_made_the_fills() -> None:
    state = fold(
        log(
            requested(strategy="a"),
            sent(),
            execution("e1.01", 10),
            requested("c2", strategy="b", side="SELL", quantity=4),
            sent("c2", 102),
            execution("e2.01", 4, side="SLD", coid="c2", order_id=102, perm_id=9002),
        )
    )
    assert state.strategy_positions["a|" + KEY].quantity == 10.0
    assert state.strategy_positions["b|" + KEY].quantity == -4.0
    assert position(state).quantity == 6.0


def test_correction_adjusts_position_and_realized_pnl() -> None:
    state = fold(
        log(
            requested(),
            sent(),
            execution("e1.01", 10, price=100.0),
            requested("c2", side="SELL"),
            sent("c2", 102),
            execution("e2.01", 10, price=110.0, side="SLD", coid="c2", order_id=102, perm_id=9002),
            execution("e1.02", 8, price=100.0),
        )
    )
    p = position(state)
    assert state.orders["c1"].status == "partially_filled"  # the correction left 2 to buy
    assert (p.quantity, p.realized_pnl_gross, p.status) == (-2, {"USD": 80}, "closing")
    assert state.accounts["DU111"].realized_pnl_gross == {"USD": 80}


def test_realized_pnl_uses_the_contract_multiplier() -> None:
    es = Contract(symbol="ES", sec_type="FUT", con_id=11, multiplier="50", last_trade_date="20261218")
    state = fold(
        log(
            execution("f1.01", 2, price=5000.0, contract=es, coid="", client_id=0, order_id=0, perm_id=1),
            execution(
                "f2.01", 2, price=5010.0, side="SLD", contract=es, coid="", client_id=0, order_id=0, perm_id=2
            ),
        )
    )
    assert state.positions["DU111|11"].realized_pnl_gross == {"USD": 1000}


def test_account_keeps_the_latest_value_per_key_and_currency() -> None:
    values = [
        AccountValueReported(account="DU111", key="TotalCashValue", value=v, currency=c)
        for v, c in (("1", "USD"), ("2", "EUR"), ("3", "USD"))
    ]
    state = fold(log(*values, AccountValueReported(account="DU111", key="AccountType", value="INDIVIDUAL")))
    assert state.accounts["DU111"].values == {
        "TotalCashValue:USD": "3",
        "TotalCashValue:EUR": "2",
        "AccountType": "INDIVIDUAL",
    }


def test_account_sums_commissions_and_realized_pnl_from_fills() -> None:
    state = fold(
        log(
            requested(),
            sent(),
            execution("e1.01", 10, price=100.0),
            commission("e1.01", 1.0),
            requested("c2", side="SELL"),
            sent("c2", 102),
            execution("e2.01", 10, price=101.0, side="SLD", coid="c2", order_id=102, perm_id=9002),
            commission("e2.01", 1.0, realized=8.0),
        )
    )
    acct = state.accounts["DU111"]
    usd = {"USD": Decimal(2)}, {"USD": Decimal(10)}, {"USD": Decimal(8)}, {"USD": Decimal(8)}
    assert (acct.commission, acct.realized_pnl_gross, acct.broker_realized_pnl, acct.realized_pnl_net) == usd


def test_connection_kill_switch_and_reconciliation_are_recorded() -> None:
    state = fold(
        log(
            ConnectionChanged(state="lost"),
            KillSwitchChanged(engaged=True, reason="drawdown"),
            ReconciliationStarted(reason="reconnect"),
        )
    )
    assert (state.connection, state.client_id, state.kill_switch, state.kill_reason) == (
        "lost",
        7,
        True,
        "drawdown",
    )
    assert state.reconciling
    assert not fold(log(ReconciliationFinished())[1:], state).reconciling


def test_a_scoped_kill_switch_is_kept_apart_from_the_global_one() -> None:
    loss = KillSwitchChanged(engaged=True, reason="lost 3", strategy_id="mom", code="daily_loss_limit")
    state = fold(log(loss, KillSwitchChanged(engaged=True, reason="margin", account="DU1")))
    assert not state.kill_switch
    assert state.kill_scopes == {
        "strategy:mom": ("daily_loss_limit", "lost 3"),
        "account:DU1": ("", "margin"),
    }
    kept = state.kill_scopes
    state = fold(log(KillSwitchChanged(engaged=False, strategy_id="mom", code="session_reset"))[1:], state)
    assert state.kill_scopes == {"account:DU1": ("", "margin")}
    assert "strategy:mom" in kept  # replaced, never changed in place


def test_unknown_event_kind_is_a_no_op() -> None:
    before = fold(log(requested()))
    after, changes = step(
        copy_state(before), Envelope(5, 5, UnknownEvent(original_kind="future", raw=b"\x80"))
    )
    assert changes == () and after.orders == before.orders and after.seq == 5
