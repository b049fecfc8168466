"""The folded state: every entity as a frozen msgspec Struct, held in plain dicts by one `State`.

Entities (Order, Position, Fill, Account, ...) are frozen and replaced on change, so any reader may keep
a reference to one forever. `State` itself is a mutable accumulator owned by the fold (see `oms.state.fold`
for the ownership rule); `oms.state.fold.copy_state` gives a version a caller may keep.
Entities are encoded with every field present (no `omit_defaults`): clients in any language read them
from snapshots and the PUB socket without knowing our defaults (docs/protocol.md).
See docs/state.md for the meaning of every field and the rules that set it.
"""

from __future__ import annotations

from typing import Literal

from msgspec import Struct, field

from events.schema import Contract, ModifyRequested

OrderStatus = Literal[
    "pending",
    "submitted",
    "partially_filled",
    "filled",
    "pending_cancel",
    "cancelled",
    "rejected",
    "inactive",
]
PositionStatus = Literal["pending", "submitted", "filled", "closing", "closed"]

TERMINAL: frozenset[str] = frozenset({"filled", "cancelled", "rejected", "inactive"})
WORKING: frozenset[str] = frozenset({"pending", "submitted", "partially_filled", "pending_cancel"})
EXTERNAL_STRATEGY = "external"


class Order(Struct, frozen=True, kw_only=True, gc=False):
    """One client order (ours or external). `filled` never exceeds `quantity`: any excess executed
    quantity is in `overfill` (IB over-reported), so executed = filled + overfill."""

    client_order_id: str
    strategy_id: str
    account: str
    contract: Contract
    side: str
    quantity: float  # 0.0 for an external order whose quantity IB has not told us yet
    order_type: str = "MKT"
    limit_price: float | None = None
    stop_price: float | None = None
    tif: str = "DAY"
    outside_rth: bool = False
    parent: str | None = None
    status: OrderStatus = "pending"
    filled: float = 0.0
    overfill: float = 0.0
    avg_fill_price: float = 0.0
    remaining: float = 0.0
    broker_filled: float = 0.0  # orderStatus' filled: a cross-check, never added to `filled`
    broker_status: str = ""  # the raw IB status string last reported
    order_id: int = 0
    client_id: int = 0
    perm_ids: tuple[int, ...] = ()
    external: bool = False
    last_error_code: int = 0
    last_error_message: str = ""
    reason: str = ""  # why it was rejected or cancelled
    commission: float = 0.0
    pre_cancel_status: str = ""  # the status to return to if the cancel fails
    pending_modify: ModifyRequested | None = None  # requested, not yet acknowledged by an openOrder
    created_seq: int = 0
    created_ts: int = 0
    updated_seq: int = 0
    updated_ts: int = 0


class Fill(Struct, frozen=True, kw_only=True, gc=False):
    """One execution, deduped by execId; a correction replaces it (same entry, later execId)."""

    exec_id: str
    client_order_id: str
    strategy_id: str
    account: str
    position_key: str
    contract: Contract
    side: str  # BUY / SELL
    shares: float
    price: float
    time_ns: int = 0
    commission: float | None = None  # None until its commission report is joined
    commission_currency: str = ""
    realized_pnl: float | None = None  # as IB reported it in the commission report
    seq: int = 0
    ts: int = 0
    corrects: str = ""  # the execId this one replaced, if a correction


class Commission(Struct, frozen=True, kw_only=True, gc=False):
    """A commission report whose execution has not been seen yet (kept by execId, joined later)."""

    exec_id: str
    commission: float
    currency: str
    realized_pnl: float | None = None


class Position(Struct, frozen=True, kw_only=True, gc=False):
    """Per (account, instrument), or per (strategy, account, instrument) when `strategy_id` is set.
    `close_reason` and `closed_seq` describe the most recent lifecycle that ended."""

    key: str
    account: str
    contract: Contract
    strategy_id: str = ""
    quantity: float = 0.0  # signed
    avg_price: float = 0.0
    realized_pnl: float = 0.0
    status: PositionStatus = "pending"
    close_reason: str = ""
    lifecycle: int = 0
    opened_seq: int = 0
    closed_seq: int = 0
    orders: tuple[str, ...] = ()  # working orders on this key
    updated_seq: int = 0


class Account(Struct, frozen=True, kw_only=True, gc=False):
    account: str
    values: dict[str, str] = field(default_factory=dict)  # "Key" or "Key:CUR" -> latest value
    commission: float = 0.0  # sum of joined commissions
    realized_pnl: float = 0.0  # from our fills (positions' realized P&L)
    broker_realized_pnl: float = 0.0  # sum of IB's realizedPNL in commission reports
    updated_seq: int = 0


class BrokerPosition(Struct, frozen=True, kw_only=True, gc=False):
    """IB's own position report: kept beside the folded one as a cross-check, never applied."""

    account: str
    contract: Contract
    position: float
    avg_cost: float
    seq: int


class Mismatch(Struct, frozen=True, kw_only=True, gc=False):
    position_key: str
    broker_position: float
    folded_position: float
    broker_avg_cost: float
    seq: int
    ts: int


class Removed(Struct, frozen=True, gc=False):
    """A change meaning "this position key is gone": it moved to `moved_to` (its conId key, or its
    account's key once an order's account became known)."""

    key: str
    moved_to: str


Changed = Order | Position | Account | Removed


class State(Struct, kw_only=True):
    seq: int = 0
    ts: int = 0
    orders: dict[str, Order] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)  # "account|instrument"
    strategy_positions: dict[str, Position] = field(default_factory=dict)  # "strategy|account|instrument"
    accounts: dict[str, Account] = field(default_factory=dict)
    fills: dict[str, Fill] = field(default_factory=dict)  # execId before its last "." -> latest fill
    pending_commissions: dict[str, Commission] = field(default_factory=dict)  # execId -> report
    order_ids: dict[str, str] = field(default_factory=dict)  # "clientId:orderId" -> client order id
    perm_ids: dict[int, str] = field(default_factory=dict)  # permId -> client order id
    con_ids: dict[str, int] = field(default_factory=dict)  # symbol key -> conId, learned from IB
    instruments: dict[int, Contract] = field(default_factory=dict)  # conId -> IB's first description
    broker_positions: dict[str, BrokerPosition] = field(default_factory=dict)  # position key -> latest
    mismatches: dict[str, Mismatch] = field(default_factory=dict)  # position key -> latest recorded
    connection: str = "disconnected"
    client_id: int = 0
    kill_switch: bool = False
    kill_reason: str = ""
    reconciling: bool = False


def initial_state() -> State:
    return State()
