"""Properties of the fold over generated IB-like sessions (tests/fold_strategies.py)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from hypothesis import Phase, assume, find, given, settings
from hypothesis import strategies as st

from events.codec import decode, encode
from events.schema import (
    CancelRequested,
    CommissionReported,
    Envelope,
    ExecutionReported,
    ModifyRequested,
    OpenOrderReported,
    OrderStatusReported,
    ReconciliationFinished,
)
from oms.state.codec import decode_state, encode_state
from oms.state.fold import copy_state, fold, step
from oms.state.history import MINUTE_NS, RETIRE_AFTER_NS
from oms.state.links import instrument_key
from oms.state.model import TERMINAL, WORKING, Account, Order, Position, Removed, State, initial_state
from oms.state.tombstones import TOMBSTONE_NS
from tests.fold_strategies import CLIENT_ID, Session, sessions

PROPS = settings(max_examples=150, deadline=None)


@PROPS
@given(sessions())
def test_filled_never_exceeds_ordered_and_equals_deduped_executions(session: Session) -> None:
    state = fold(session.envelopes)
    for coid, quantity in session.quantities.items():
        order = state.orders[coid]
        assert order.quantity == quantity
        assert order.filled <= order.quantity
        assert order.remaining == order.quantity - order.filled
        executed = sum(abs(f.signed) for f in session.fills.values() if f.client_order_id == coid)
        assert order.filled == executed
        assert order.overfill == 0.0


def _true_positions(session: Session) -> dict[str, Decimal]:
    """The signed sum of the fills IB finally stands by, by position key (account|conId)."""
    positions: dict[str, Decimal] = defaultdict(Decimal)
    for f in session.fills.values():
        positions[f"{f.account}|{f.con_id}"] += f.signed
    return positions


@PROPS
@given(sessions())
def test_position_is_the_signed_sum_of_deduped_corrected_fills(session: Session) -> None:
    state = fold(session.envelopes)
    expected = _true_positions(session)
    assert {k: p.quantity for k, p in state.positions.items() if p.quantity} == {
        k: q for k, q in expected.items() if q
    }
    by_strategies: dict[str, Decimal] = defaultdict(Decimal)
    for p in state.strategy_positions.values():
        by_strategies[f"{p.account}|{p.key.split('|')[-1]}"] += p.quantity
    assert {k: q for k, q in by_strategies.items() if q} == {k: q for k, q in expected.items() if q}


@PROPS
@given(sessions())
def test_terminal_orders_change_only_by_late_fills_or_corrections(session: Session) -> None:
    state = initial_state()
    for env in session.envelopes:
        before = {
            c: (o.status, o.filled)
            for c, o in state.orders.items()
            # an external order seen only by its executions is taken as complete until IB tells its
            # quantity: that openOrder may reopen it
            if o.status in TERMINAL and not (o.external and o.quantity == 0)
        }
        state, _ = step(state, env)
        if isinstance(env.event, ExecutionReported | ReconciliationFinished):  # fills, real or inferred
            continue
        for coid, was in before.items():
            assert (state.orders[coid].status, state.orders[coid].filled) == was, env


def _account_commissions(state: State) -> dict[tuple[str, str], Decimal]:
    """Each account's commissions as the fold keeps them, by (account, currency)."""
    return {(a, c): amount for a, acct in state.accounts.items() for c, amount in acct.commission.items()}


@PROPS
@given(sessions())
def test_account_commission_is_the_sum_of_joined_commissions(session: Session) -> None:
    state = fold(session.envelopes)
    total: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for f in state.fills.values():
        for currency, amount in f.commission.items():
            total[f.account, currency] += amount
    assert _account_commissions(state) == {k: v for k, v in total.items() if v}
    for exec_id in state.pending_commissions:  # only waiting for an execution not seen yet
        fill = state.fills.get(exec_id.rpartition(".")[0])
        assert fill is None or fill.exec_id != exec_id


def _check_memberships(state: State) -> None:
    for table, strategy_key in ((state.positions, False), (state.strategy_positions, True)):
        for key, pos in table.items():
            prefix = f"{pos.strategy_id}|" if strategy_key else ""
            assert key == pos.key and key.startswith(f"{prefix}{pos.account}|"), key
            assert pos.account, f"{key}: every generated order is keyed once its account is known"
            for coid in pos.orders:
                order = state.orders[coid]
                assert order.status in WORKING, f"{key} keeps {coid} ({order.status}) as working"
                instrument = instrument_key(order.contract, state.con_ids)
                assert key == f"{prefix}{order.account}|{instrument}", f"{coid} listed under {key}"
                assert order.strategy_id == pos.strategy_id or not strategy_key, key


@PROPS
@given(sessions())
def test_positions_list_only_working_orders_of_their_own_key(session: Session) -> None:
    """When an order's key changes (its account or conId becomes known, e.g. an external order seen
    status-first), its membership moves with it: no position keeps a terminal order as working, none
    stays under an empty account."""
    state = initial_state()
    for env in session.envelopes:
        state, _ = step(state, env)
        _check_memberships(state)


@PROPS
@given(sessions())
def test_a_positions_status_follows_from_its_quantity_and_its_working_orders(session: Session) -> None:
    """After every step a position's working orders say which sides work and whether IB acknowledged
    any: pending (none acknowledged) or submitted while flat, closing while one works against the
    quantity. The fold keeps this up to date order by order, without re-reading every working order."""
    state = initial_state()
    for env in session.envelopes:
        state, _ = step(state, env)
        for pos in [*state.positions.values(), *state.strategy_positions.values()]:
            working = [state.orders[coid] for coid in pos.orders]
            sides = {o.side for o in working}
            acked = any(o.status != "pending" for o in working)
            if pos.quantity:
                against = "SELL" if pos.quantity > 0 else "BUY"
                expected = "closing" if against in sides else "filled"
            else:
                expected = ("submitted" if acked else "pending") if working else "closed"
            assert pos.status == expected, (pos.key, pos.status, pos.quantity, sides, acked)


def _external_status_then_execution_then_open_order(session: Session) -> bool:
    """Whether an external order is first seen by its status, and executes before its openOrder."""
    letters = {OrderStatusReported: "S", ExecutionReported: "E", OpenOrderReported: "O"}
    seen: dict[tuple[int, int], str] = {}  # the order's IB ids -> its callbacks so far, one letter each
    for env in session.envelopes:
        ev = env.event
        if (
            isinstance(ev, (OrderStatusReported, ExecutionReported, OpenOrderReported))
            and ev.client_id != CLIENT_ID
        ):
            ids = (ev.client_id, ev.order_id or ev.perm_id)
            seen[ids] = seen.get(ids, "") + letters[type(ev)]
    return any(kinds.startswith("SE") and "O" in kinds for kinds in seen.values())


def test_sessions_show_external_orders_status_first_executed_before_their_open_order() -> None:
    # a witness is all this needs: generated, not shrunk (shrinking a session took most of two minutes)
    found = find(
        sessions(),
        _external_status_then_execution_then_open_order,
        settings=settings(max_examples=2000, phases=[Phase.generate]),
    )
    assert _external_status_then_execution_then_open_order(found)


QUIET_SPELLS = (RETIRE_AFTER_NS + MINUTE_NS, TOMBSTONE_NS + MINUTE_NS)  # orders retire; tombstones expire


@settings(max_examples=60, deadline=None)
@given(st.one_of(sessions(max_orders=4), sessions(max_orders=4, gaps=QUIET_SPELLS)))
def test_snapshot_at_every_seq_plus_tail_equals_the_whole_fold(session: Session) -> None:
    envs = session.envelopes
    whole = fold(envs)
    state = initial_state()
    for k, env in enumerate(envs, start=1):
        state, _ = step(state, env)
        resumed = fold(envs[k:], decode_state(encode_state(state)))
        assert resumed == whole, f"snapshot at seq {k}"
        state = decode_state(encode_state(state))  # keep going from the decoded copy too


def _entities(state: State) -> dict[tuple[str, str], object]:
    found: dict[tuple[str, str], object] = {}
    found.update({("o", k): v for k, v in state.orders.items()})
    found.update({("p", k): v for k, v in state.positions.items()})
    found.update({("s", k): v for k, v in state.strategy_positions.items()})
    found.update({("a", k): v for k, v in state.accounts.items()})
    return found


def _identity(change: object) -> tuple[str, str]:
    if isinstance(change, Order):
        return ("o", change.client_order_id)
    if isinstance(change, Position):
        return ("s" if change.strategy_id else "p", change.key)
    if isinstance(change, Account):
        return ("a", change.account)
    assert isinstance(change, Removed)
    return ("removed", change.key)


@PROPS
@given(sessions())
def test_step_returns_exactly_the_entities_that_changed(session: Session) -> None:
    state = initial_state()
    for env in session.envelopes:
        before = _entities(copy_state(state))
        state, changes = step(state, env)
        after = _entities(state)
        differ = {k: v for k, v in after.items() if before.get(k) != v}
        gone = {k[1] for k in before if k not in after}
        reported = {_identity(c): c for c in changes}
        assert len(reported) == len(changes), "an entity reported twice"
        assert {k: v for k, v in reported.items() if k[0] != "removed"} == differ, env
        assert {k[1] for k in reported if k[0] == "removed"} == gone


@settings(max_examples=50, deadline=None)
@given(sessions(), st.integers(0, 10_000))
def test_copy_state_is_a_version_later_steps_do_not_touch(session: Session, cut: int) -> None:
    envs = session.envelopes
    k = cut % (len(envs) + 1)
    kept = copy_state(fold(envs[:k]))
    snapshot = encode_state(kept)
    fold(envs[k:], copy_state(kept))
    assert encode_state(kept) == snapshot


@PROPS
@given(sessions())
def test_same_log_folded_twice_gives_equal_states(session: Session) -> None:
    first = fold(session.envelopes)
    second = fold(session.envelopes)
    from_bytes = fold(decode(encode(env)) for env in session.envelopes)
    assert first == second == from_bytes
    assert encode_state(first) == encode_state(second)


def _direct(session: Session) -> list[Envelope]:
    """The same session as if IB had sent each execution right the first time: its final version at the
    place of the first, later versions, replays and superseded commissions gone."""
    final: dict[str, str] = {}
    for env in session.envelopes:
        if isinstance(env.event, ExecutionReported):
            base = env.event.exec_id.rpartition(".")[0]
            final[base] = max(final.get(base, ""), env.event.exec_id)
    versions = {
        env.event.exec_id: env.event for env in session.envelopes if isinstance(env.event, ExecutionReported)
    }
    out: list[Envelope] = []
    placed: set[str] = set()
    for env in session.envelopes:
        event = env.event
        if isinstance(event, ExecutionReported):
            base = event.exec_id.rpartition(".")[0]
            if base in placed:
                continue
            placed.add(base)
            event = versions[final[base]]
        elif isinstance(event, CommissionReported) and event.exec_id != final.get(
            event.exec_id.rpartition(".")[0], event.exec_id
        ):
            continue
        out.append(Envelope(len(out) + 1, env.ts, event))
    return out


def _position_view(state: State) -> dict[str, tuple[object, ...]]:
    return {
        key: (p.quantity, p.avg_price, p.realized_pnl_gross, p.realized_pnl_net, p.status, p.lifecycle,
              p.close_reason)
        for table in (state.positions, state.strategy_positions)
        for key, p in table.items()
    }  # fmt: skip


@PROPS
@given(sessions())
def test_folding_fills_with_corrections_equals_folding_the_final_fills_directly(session: Session) -> None:
    corrected = initial_state()
    for env in session.envelopes:
        event = env.event
        if isinstance(event, CancelRequested | ModifyRequested):  # intake refuses both for a done order:
            order = corrected.orders.get(event.client_order_id)  # a fill that a correction takes back
            assume(order is None or order.status not in TERMINAL)  # cannot make it refused after the fact
        corrected, _ = step(corrected, env)
    direct = fold(_direct(session))
    assert _position_view(corrected) == _position_view(direct)
    assert {c: (o.filled, o.avg_fill_price, o.status) for c, o in corrected.orders.items()} == {
        c: (o.filled, o.avg_fill_price, o.status) for c, o in direct.orders.items()
    }


@PROPS
@given(sessions())
def test_money_per_currency_equals_the_sum_of_that_currencys_fills(session: Session) -> None:
    state = fold(session.envelopes)
    commissions: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for f in session.fills.values():
        if f.commission:
            commissions[f.account, f.currency] += f.commission
    assert _account_commissions(state) == {k: v for k, v in commissions.items() if v}
    for acct in state.accounts.values():  # the account's P&L is its positions', currency by currency
        gross: dict[str, Decimal] = defaultdict(Decimal)
        for p in state.positions.values():
            if p.account == acct.account:
                for currency, amount in p.realized_pnl_gross.items():
                    gross[currency] += amount
                assert set(p.realized_pnl_gross) <= {p.contract.currency}  # P&L in the instrument's currency
        assert acct.realized_pnl_gross == {c: v for c, v in gross.items() if v}


@PROPS
@given(sessions())
def test_no_quantity_is_ever_inexact(session: Session) -> None:
    state = fold(session.envelopes)
    for order in state.orders.values():
        for value in (order.quantity, order.filled, order.remaining, order.overfill, order.fill_value):
            assert type(value) is Decimal
    for f in state.fills.values():
        assert type(f.shares) is Decimal and type(f.price) is Decimal
    exact = _true_positions(session)
    for key, p in state.positions.items():
        assert type(p.quantity) is Decimal and p.quantity == exact.get(key, Decimal(0)), key
