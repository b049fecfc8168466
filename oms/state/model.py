"""The folded state: every entity as a frozen msgspec Struct, held in plain dicts by one `State`.

Entities (Order, Position, Fill, Account, ...) are frozen and replaced on change, so any reader may keep
a reference to one forever. `State` itself is a mutable accumulator owned by the fold (see
`oms.state.fold` for the ownership rule); `oms.state.fold.copy_state` gives a version a caller may keep.
Entities are encoded with every field present (no `omit_defaults`): clients in any language read them
from snapshots and the PUB socket without knowing our defaults (docs/protocol.md). Quantities, prices
and money are `Decimal` (msgpack: decimal strings); money is a `{currency: amount}` map.
See docs/state.md for the meaning of every field and the rules that set it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from msgspec import Struct, field

from events.schema import Contract, ModifyRequested
from oms.state.money import ZERO, Money

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
OrderSide = Literal["BUY", "SELL", ""]  # "" for an external order first seen by its status
FillSide = Literal["BUY", "SELL"]

TERMINAL: frozenset[str] = frozenset({"filled", "cancelled", "rejected", "inactive"})
WORKING: frozenset[str] = frozenset({"pending", "submitted", "partially_filled", "pending_cancel"})
EXTERNAL_STRATEGY = "external"


class Order(Struct, frozen=True, kw_only=True, gc=False):
    """One client order (ours or external). `filled` never exceeds `quantity`: any excess executed
    quantity is in `overfill` (IB over-reported), so executed = filled + overfill. `inferred` is the part
    of `filled` that no execution explains (IB reported it filled; see docs/state.md, inferred fills)."""

    client_order_id: str
    strategy_id: str
    account: str
    contract: Contract
    side: OrderSide
    quantity: Decimal  # 0 for an external order whose quantity IB has not told us yet
    order_type: str = "MKT"
    limit_price: float | None = None
    stop_price: float | None = None
    tif: str = "DAY"
    outside_rth: bool = False
    parent: str | None = None
    status: OrderStatus = "pending"
    filled: Decimal = ZERO
    overfill: Decimal = ZERO
    remaining: Decimal = ZERO
    avg_fill_price: Decimal = ZERO  # fill_value / executed, to 10 places
    fill_value: Decimal = ZERO  # sum of shares x price over its fills, exact
    inferred: Decimal = ZERO
    broker_filled: Decimal = ZERO  # IB's own filled (orderStatus, completed order): a cross-check
    broker_avg_price: Decimal = ZERO  # IB's avgFillPrice with it
    broker_seq: int = 0  # when IB last reported them (every report during a reconciliation counts)
    broker_status: str = ""  # the raw IB status string last reported
    order_id: int = 0
    client_id: int = 0
    perm_ids: tuple[int, ...] = ()
    external: bool = False
    last_error_code: int = 0
    last_error_message: str = ""
    reason: str = ""  # why it was rejected or cancelled
    commission: Money = field(default_factory=dict)
    pre_cancel_status: OrderStatus | Literal[""] = ""  # the status to return to if the cancel fails
    pending_modify: ModifyRequested | None = None  # requested, not yet shown by an openOrder
    modify_rejected: str = ""  # IB's message for the last modify it refused
    trailing_amount: float | None = None  # the order's terms beyond prices (docs/protocol.md, "place")
    trailing_percent: float | None = None
    limit_offset: float | None = None
    touch_price: float | None = None
    good_till: str = ""
    oca_group: str = ""
    oca_type: int = 0
    algo: str = ""
    algo_priority: str = ""
    trail_stop_price: float | None = None  # TRAIL / TRAIL LIMIT: the last stop IB reported (openOrder)
    created_seq: int = 0
    created_ts: int = 0
    updated_seq: int = 0
    updated_ts: int = 0


class Fill(Struct, frozen=True, kw_only=True, gc=False):
    """One execution, deduped by execId; a correction replaces it (same entry, later execId). An
    `inferred` fill stands for quantity IB reported filled whose executions it no longer returns."""

    exec_id: str
    client_order_id: str
    strategy_id: str
    account: str
    position_key: str
    contract: Contract
    side: FillSide
    shares: Decimal
    price: Decimal
    time_ns: int = 0
    commission: Money = field(default_factory=dict)  # empty until its commission report is joined
    broker_realized_pnl: Money = field(default_factory=dict)  # IB's realizedPNL from that report
    seq: int = 0  # where the execution was first seen: its place in the position's history
    ts: int = 0
    updated_seq: int = 0  # its latest correction or commission
    corrects: str = ""  # the execId this one replaced, if a correction
    inferred: bool = False


class Commission(Struct, frozen=True, kw_only=True, gc=False):
    """A commission report whose execution has not been seen yet (kept by execId, joined later)."""

    exec_id: str
    commission: Decimal
    currency: str
    realized_pnl: Decimal | None = None


class Position(Struct, frozen=True, kw_only=True, gc=False):
    """Per (account, instrument), or per (strategy, account, instrument) when `strategy_id` is set.
    `close_reason` and `closed_seq` describe the most recent lifecycle that ended. Realized P&L is in
    the instrument's currency; net = gross minus commissions, currency by currency."""

    key: str
    account: str
    contract: Contract
    strategy_id: str = ""
    quantity: Decimal = ZERO  # signed
    avg_price: Decimal = ZERO
    realized_pnl_gross: Money = field(default_factory=dict)
    commission: Money = field(default_factory=dict)
    realized_pnl_net: Money = field(default_factory=dict)
    status: PositionStatus = "closed"
    close_reason: str = ""
    lifecycle: int = 0
    opened_seq: int = 0
    closed_seq: int = 0
    orders: tuple[str, ...] = ()  # working orders on this key
    working: int = 0  # what the working orders are (positions.BUYING | SELLING | ACKED), for the reducer
    updated_seq: int = 0


class Account(Struct, frozen=True, kw_only=True, gc=False):
    """IB's latest value per key, and money from our fills per currency. `realized_pnl_net_base` is the
    net realized P&L converted with IB's `ExchangeRate` values; None while a currency has no rate."""

    account: str
    values: dict[str, str] = field(default_factory=dict)  # "Key" or "Key:CUR" -> latest value
    commission: Money = field(default_factory=dict)
    realized_pnl_gross: Money = field(default_factory=dict)
    realized_pnl_net: Money = field(default_factory=dict)
    broker_realized_pnl: Money = field(default_factory=dict)  # IB's realizedPNL in commission reports
    realized_pnl_net_base: Decimal | None = None
    updated_seq: int = 0


class BrokerPosition(Struct, frozen=True, kw_only=True, gc=False):
    """IB's own position report: kept beside the folded one as a cross-check, never applied."""

    account: str
    contract: Contract
    position: Decimal
    avg_cost: float
    seq: int


class Mismatch(Struct, frozen=True, kw_only=True, gc=False):
    position_key: str
    broker_position: Decimal
    folded_position: Decimal
    broker_avg_cost: float
    seq: int
    ts: int


class FoldError(Struct, frozen=True, kw_only=True, gc=False):
    """An event the fold could not apply: skipped whole, the same way live and in replay."""

    seq: int
    kind: str
    error: str


class Removed(Struct, frozen=True, gc=False):
    """A change meaning "this position key is gone": it moved to `moved_to` (its conId key, or its
    account's key once an order's account became known)."""

    key: str
    moved_to: str


Changed = Order | Position | Account | Removed | FoldError

# A position's history, for the reducer: a fill's key in `State.fills`, what its working orders were
# (an int: seq, the reason a lifecycle would close, the working bits; see positions.working_entry), or,
# at its head only, the position its retired fills led to (a checkpoint, see oms.state.history).
PositionInput = int | str | Position


class Sealed(Struct, frozen=True, gc=False):
    """A block of tombstones: sorted 64-bit hashes (u64, little-endian), the newest buried at `until_ts`."""

    until_ts: int
    hashes: bytes


class History(Struct, kw_only=True):
    """What stays of retired orders (oms.state.history): counts, and tombstones of their identifiers."""

    orders: int = 0
    fills: int = 0
    swept_ts: int = 0  # event time of the last sweep
    recent: dict[int, int] = field(default_factory=dict)  # tombstone -> when it was buried
    sealed: list[Sealed] = field(default_factory=list)  # oldest first


# Bumped when the fold's rules change what a state holds: a snapshot of another version is ignored and
# the journal folded instead (the journal is the truth). 2: finished orders retire to history.
FOLD_VERSION = 2


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
    position_inputs: dict[str, list[PositionInput]] = field(default_factory=dict)  # key -> its history
    fold_errors: dict[int, FoldError] = field(default_factory=dict)  # seq -> what could not be applied
    connection: str = "disconnected"
    client_id: int = 0
    kill_switch: bool = False
    kill_reason: str = ""
    # Scoped kill switches: "strategy:NAME" or "account:ID" -> (code, reason); see KillSwitchChanged.
    kill_scopes: dict[str, tuple[str, str]] = field(default_factory=dict)
    reconciling: bool = False
    reconciliation_seq: int = 0  # where the latest reconciliation started
    history: History = field(default_factory=History)
    fold_version: int = 0  # FOLD_VERSION for a state this code folded; 0 in an older snapshot


def initial_state() -> State:
    return State(fold_version=FOLD_VERSION)
