"""What is new: which callbacks are facts the log does not hold yet, and where IB's positions disagree.

Every live callback is logged (duplicates included: the fold dedupes them). Callbacks that answer a
synchronisation request (the client library's own start-up sync, and the adapter's reconcile after
every (re)connect) restate what IB already said, so during a sync only what is new is logged:
- an execution is recognized by its execId (a correction `X.02` also covers `X.01`), against the log's
  fills and what this session already logged;
- a commission by its execId, when the log already has one for that execution;
- an open order / order status by permId, when the log's order already shows that raw status and
  quantity (or this session already logged the same report);
- a completed order (reqCompletedOrders: no orderId / clientId) by permId, when the log's order is
  already in that end state with IB's filled quantity; while IB says more was filled than the log's
  fills explain (executions IB no longer returns), it stays a new fact;
- a position by (account, conId), when this session already logged the same report;
- an account value, whenever it equals the last one logged (two subscriptions report the same values).
A report of an order the fold has retired to history (oms.state.history: its execution, commission or
status, by the fold's tombstones) is never new. What this session remembers of orders serves one sync
and is forgotten when it closes: between syncs the fold holds it (live, or as tombstones), so the
adapter's memory does not grow with every order ever placed.
`LogView` is the one place that reads the fold's `State`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from events.schema import (
    AccountValueReported,
    CommissionReported,
    Contract,
    Event,
    ExecutionReported,
    OpenOrderReported,
    OrderStatusReported,
    PositionMismatch,
    PositionReported,
)
from oms.state.model import Order, State
from oms.state.tombstones import retired

LIVE_REQ_ID = -1
OrderKey = tuple[int, int, int]  # (permId, clientId, orderId): permId when IB gave one
PositionKey = tuple[str, int | str]  # (account, conId or symbol)


def exec_prefix(exec_id: str) -> str:
    """The part a correction shares with the execution it corrects."""
    return exec_id.rsplit(".", 1)[0]


def exec_suffix(exec_id: str) -> tuple[int, str]:
    """Orders corrections: `.02` after `.01`, `.10` after `.9`."""
    part = exec_id.rpartition(".")[2]
    return (len(part), part)


def order_key(perm_id: int, client_id: int, order_id: int) -> OrderKey:
    return (perm_id, 0, 0) if perm_id else (0, client_id, order_id)


def position_key(account: str, contract: Contract) -> PositionKey:
    return (account, contract.con_id or contract.symbol)


class LogView:
    """Answers "does the log already hold this?" from the folded state (read on each question)."""

    def __init__(self, state_provider: Callable[[], State]) -> None:
        self._state = state_provider

    def has_execution(self, exec_id: str) -> bool:
        state = self._state()
        fill = state.fills.get(exec_prefix(exec_id))
        if fill is None:
            return retired(state.history, "e", exec_id)
        return exec_suffix(fill.exec_id) >= exec_suffix(exec_id)

    def has_commission(self, exec_id: str) -> bool:
        state = self._state()
        fill = state.fills.get(exec_prefix(exec_id))
        if fill is not None and fill.exec_id == exec_id and fill.commission:
            return True
        return exec_id in state.pending_commissions or retired(state.history, "b", exec_prefix(exec_id))

    def retired(self, perm_id: int) -> bool:
        """Whether the fold has retired the order with this permId (its reports are history)."""
        return perm_id > 0 and retired(self._state().history, "p", perm_id)

    def order(self, perm_id: int) -> Order | None:
        state = self._state()
        client_order_id = state.perm_ids.get(perm_id) if perm_id else None
        return state.orders.get(client_order_id) if client_order_id else None

    def order_by_client_id(self, client_order_id: str) -> Order | None:
        return self._state().orders.get(client_order_id)

    def positions(self) -> dict[PositionKey, tuple[Contract, Decimal]]:
        """Folded positions per (account, conId), falling back to the symbol before IB named the conId."""
        return {
            position_key(p.account, p.contract): (p.contract, p.quantity)
            for p in self._state().positions.values()
        }


class NewFacts:
    """Session memory plus the log's view: `admit(event, syncing)` says whether to log a callback."""

    def __init__(self, log: LogView) -> None:
        self._log = log
        self._execs: set[str] = set()
        self._replayed: set[str] = set()  # sync executions recognized as known
        self._commissions: dict[str, CommissionReported] = {}
        self._orders: dict[tuple[type[Event], OrderKey], Event] = {}
        self._positions: dict[PositionKey, PositionReported] = {}
        self._values: dict[tuple[str, str, str], str] = {}
        self._rules: dict[type[Event], Callable[[Any, bool], bool]] = {
            ExecutionReported: self._execution,
            CommissionReported: self._commission,
            OrderStatusReported: self._order,
            OpenOrderReported: self._order,
            PositionReported: self._position,
            AccountValueReported: self._account_value,
        }

    def admit(self, event: Event, syncing: bool) -> bool:
        rule = self._rules.get(type(event))
        return True if rule is None else rule(event, syncing)

    def sync_closed(self) -> None:
        """What this session remembered of orders served the sync that just closed; from here the
        fold's state answers (what was logged is folded before the next sync's answers arrive)."""
        self._execs.clear()
        self._replayed.clear()
        self._commissions.clear()
        self._orders.clear()

    def _execution(self, event: ExecutionReported, _syncing: bool) -> bool:
        if event.req_id == LIVE_REQ_ID:
            return True
        if event.exec_id in self._execs or self._log.has_execution(event.exec_id):
            self._replayed.add(event.exec_id)
            return False
        self._execs.add(event.exec_id)
        return True

    def _commission(self, event: CommissionReported, syncing: bool) -> bool:
        if not (syncing or event.exec_id in self._replayed):
            return True
        if self._commissions.get(event.exec_id) == event or self._log.has_commission(event.exec_id):
            return False
        self._commissions[event.exec_id] = event
        return True

    def _order(self, event: OrderStatusReported | OpenOrderReported, syncing: bool) -> bool:
        if not syncing:
            return True
        key = (type(event), order_key(event.perm_id, event.client_id, event.order_id))
        if (
            self._orders.get(key) == event
            or self._log.retired(event.perm_id)
            or _log_shows(self._log.order(event.perm_id), event)
        ):
            return False
        self._orders[key] = event
        return True

    def _position(self, event: PositionReported, syncing: bool) -> bool:
        key = position_key(event.account, event.contract)
        if syncing and self._positions.get(key) == event:
            return False
        self._positions[key] = event
        return True

    def _account_value(self, event: AccountValueReported, _syncing: bool) -> bool:
        key = (event.account, event.key, event.currency)
        if self._values.get(key) == event.value:
            return False
        self._values[key] = event.value
        return True


def _log_shows(order: Order | None, event: OrderStatusReported | OpenOrderReported) -> bool:
    if order is not None and isinstance(event, OpenOrderReported) and event.completed:
        done = event.status.lower() in (order.status, order.broker_status.lower())
        return done and order.filled == (event.filled or 0)
    if order is None or order.broker_status != event.status:
        return False
    if isinstance(event, OrderStatusReported):
        return order.broker_filled == event.filled
    return (order.quantity, order.limit_price, order.stop_price) == (
        event.quantity,
        event.limit_price,
        event.stop_price,
    ) and event.trail_stop_price in (None, order.trail_stop_price)


def position_mismatches(
    broker: Iterable[PositionReported], folded: dict[PositionKey, tuple[Contract, Decimal]]
) -> list[PositionMismatch]:
    """IB's complete position list vs the folded one: each disagreement, including a folded position IB
    does not report at all (IB omits flat positions). Only call with a list that is known complete."""
    by_id = {position_key(p.account, p.contract): p for p in broker}
    by_symbol: dict[PositionKey, PositionReported] = {
        (p.account, p.contract.symbol): p for p in by_id.values()
    }
    matched: set[PositionKey] = set()
    found: list[PositionMismatch] = []
    for key, (contract, quantity) in folded.items():
        report = by_id.get(key) or by_symbol.get(key)
        if report is not None:
            matched.add(position_key(report.account, report.contract))
        broker_qty = report.position if report else Decimal(0)
        if broker_qty != quantity:
            found.append(_mismatch(report, key[0], contract, quantity))
    found.extend(
        _mismatch(p, p.account, p.contract, Decimal(0))
        for k, p in by_id.items()
        if k not in matched and p.position
    )
    return found


def _mismatch(
    report: PositionReported | None, account: str, contract: Contract, folded: Decimal
) -> PositionMismatch:
    return PositionMismatch(
        account=account,
        contract=report.contract if report else contract,
        broker_position=report.position if report else Decimal(0),
        folded_position=folded,
        broker_avg_cost=report.avg_cost if report else 0.0,
    )
