"""The event schema: every fact the service records, as frozen msgspec Structs in one tagged union.

The log records what was said, never what was concluded: intents as the client sent them, broker facts
as IB reported them (normalized, every identifier kept), and the service's own facts. Order and position
state is recomputed from these by the fold in `oms.state.fold`.

Evolution rule (see docs/events.md): a stored field never changes meaning. New fields get defaults, so
old logs still decode; new facts get new kinds, so old readers decode them as `UnknownEvent`.
`SCHEMA_VERSION` is bumped with every such addition and written into every envelope.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Literal

from msgspec import Struct

SCHEMA_VERSION = 3  # 3: trailing, touch, on-close, GTD/FOK/OPG, OCA and algo order fields (defaults)
# 2: quantities are exact decimals (version 1 wrote floats; they decode exactly)

Side = Literal["BUY", "SELL"]
OrderType = Literal["MKT", "LMT", "STP", "STP LMT", "TRAIL", "TRAIL LIMIT", "MIT", "LIT", "MOC", "LOC"]
TimeInForce = Literal["DAY", "GTC", "IOC", "GTD", "FOK", "OPG"]
OcaType = Literal[0, 1, 2, 3]  # 0: no OCA group; 1 cancel with block, 2 reduce with block, 3 reduce without
AlgoPriority = Literal["", "Patient", "Normal", "Urgent"]
ErrorClass = Literal[
    "rejection", "cancel", "cancel_failed", "warning", "connectivity", "information", "error"
]
ConnectionState = Literal["connected", "lost", "restored", "restored_data_lost", "disconnected"]


class Contract(Struct, frozen=True, omit_defaults=True):
    """An instrument as IB describes it; `con_id` is 0 until IB has named it."""

    symbol: str
    sec_type: str = "STK"
    exchange: str = "SMART"
    currency: str = "USD"
    con_id: int = 0
    primary_exchange: str = ""
    last_trade_date: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    local_symbol: str = ""
    trading_class: str = ""


@lru_cache(maxsize=4096)
def symbol_key(c: Contract) -> str:
    """How an instrument is named before IB has given its conId (memoized: a pure function of a frozen,
    hashable value, asked for every order requested by symbol; bounded by instruments)."""
    strike = f"{c.strike:g}" if c.strike else ""
    return ":".join((c.sec_type, c.symbol, c.currency, c.last_trade_date, c.right, strike)).rstrip(":")


class Event(Struct, frozen=True, tag_field="kind", kw_only=True, omit_defaults=True):
    """Base of every event kind; the tag (`kind`) names it on disk and on the wire."""


# ---------------------------------------------------------------------------------------------------
# Intents: what a client asked for, logged (and made durable) before anything reaches IB.


class OrderRequested(Event, frozen=True, tag="order_requested"):
    client_order_id: str
    strategy_id: str
    account: str
    contract: Contract
    side: Side
    quantity: Decimal
    order_type: OrderType = "MKT"
    limit_price: float | None = None
    stop_price: float | None = None
    tif: TimeInForce = "DAY"
    outside_rth: bool = False
    parent_client_order_id: str | None = None
    transmit: bool = True
    reference_price: float | None = None  # what the notional check valued a market order at
    reference_source: str = ""  # where that price came from ("market data", "last fill", ...)
    trailing_amount: float | None = None  # TRAIL / TRAIL LIMIT: the stop trails the price by this much
    trailing_percent: float | None = None  # ... or by this percentage of it
    limit_offset: float | None = None  # TRAIL LIMIT: the limit is the stop minus (buy: plus) this
    touch_price: float | None = None  # MIT / LIT: the price that triggers it
    good_till: str = ""  # GTD: when it ends, ISO 8601 with its offset (or IB's "YYYYMMDD HH:MM:SS Zone")
    oca_group: str = ""
    oca_type: OcaType = 0
    algo: Literal["", "Adaptive"] = ""
    algo_priority: AlgoPriority = ""


class ModifyRequested(Event, frozen=True, tag="modify_requested"):
    client_order_id: str
    quantity: Decimal | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    trailing_amount: float | None = None
    trailing_percent: float | None = None
    limit_offset: float | None = None
    touch_price: float | None = None
    good_till: str = ""


class CancelRequested(Event, frozen=True, tag="cancel_requested"):
    client_order_id: str
    reason: str = ""


class OrderDenied(Event, frozen=True, tag="order_denied"):
    """Refused by a validation or risk check before it reached IB."""

    client_order_id: str
    code: str
    reason: str
    strategy_id: str = ""
    request: OrderRequested | None = None


class OrderSent(Event, frozen=True, tag="order_sent"):
    """The adapter handed the order to IB under this (clientId, orderId); joins IB's ids to ours."""

    client_order_id: str
    order_id: int
    client_id: int


# ---------------------------------------------------------------------------------------------------
# Broker facts: one kind per IB callback, with every identifier IB gave.


class OrderStatusReported(Event, frozen=True, tag="order_status"):
    order_id: int
    perm_id: int
    client_id: int
    status: str
    filled: Decimal
    remaining: Decimal
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    parent_id: int = 0
    why_held: str = ""
    mkt_cap_price: float = 0.0


class OpenOrderReported(Event, frozen=True, tag="open_order"):
    """An openOrder callback: also for orders this service did not place (TWS, other clientIds)."""

    order_id: int
    perm_id: int
    client_id: int
    order_ref: str
    account: str
    contract: Contract
    side: str
    quantity: Decimal
    order_type: str
    limit_price: float | None = None
    stop_price: float | None = None
    tif: str = ""
    outside_rth: bool = False
    parent_id: int = 0
    status: str = ""
    commission: float | None = None
    commission_currency: str = ""
    warning_text: str = ""
    completed: bool = False
    filled: Decimal | None = None  # IB's filled quantity: completed orders only (None where IB sent none)
    completed_time: str = ""  # completed orders: when IB completed it, as IB sent it
    completed_status: str = ""  # completed orders: IB's completion text
    trail_stop_price: float | None = None  # TRAIL / TRAIL LIMIT: where IB has the stop now
    trailing_amount: float | None = None  # IB's auxPrice of a TRAIL / TRAIL LIMIT
    trailing_percent: float | None = None
    limit_offset: float | None = None
    touch_price: float | None = None  # IB's auxPrice of an MIT / LIT
    good_till: str = ""  # IB's goodTillDate, as IB sent it
    oca_group: str = ""
    oca_type: int = 0


class ExecutionReported(Event, frozen=True, tag="execution"):
    exec_id: str
    order_id: int
    perm_id: int
    client_id: int
    order_ref: str
    account: str
    contract: Contract
    side: str  # IB's "BOT" / "SLD"
    shares: Decimal
    price: float
    cum_qty: Decimal = Decimal(0)
    avg_price: float = 0.0
    time: str = ""  # as IB sent it
    time_ns: int = 0  # IB's time parsed to UTC nanoseconds, 0 if it could not be parsed
    exchange: str = ""
    liquidation: int = 0
    last_liquidity: int = 0
    req_id: int = -1  # -1 live; a reqExecutions request id when it came from a sync


def exec_base(exec_id: str) -> str:
    """A correction shares the part before the last "." with the execution it replaces."""
    return exec_id.rpartition(".")[0] or exec_id


class CommissionReported(Event, frozen=True, tag="commission"):
    exec_id: str
    commission: float
    currency: str
    realized_pnl: float | None = None  # None where IB sent its "unset" value


class PositionReported(Event, frozen=True, tag="position"):
    account: str
    contract: Contract
    position: Decimal
    avg_cost: float


class AccountValueReported(Event, frozen=True, tag="account_value"):
    account: str
    key: str
    value: str
    currency: str = ""


class BrokerError(Event, frozen=True, tag="error"):
    req_id: int
    code: int
    message: str
    error_class: ErrorClass
    advanced_reject: str = ""


class ConnectionChanged(Event, frozen=True, tag="connection"):
    state: ConnectionState
    host: str = ""
    port: int = 0
    client_id: int = 0
    server_version: int = 0
    accounts: tuple[str, ...] = ()
    detail: str = ""


# ---------------------------------------------------------------------------------------------------
# Service facts.


class SessionStarted(Event, frozen=True, tag="session_started"):
    version: str
    config_digest: str
    schema_version: int = SCHEMA_VERSION


class ReconciliationStarted(Event, frozen=True, tag="reconciliation_started"):
    reason: str


class ReconciliationFinished(Event, frozen=True, tag="reconciliation_finished"):
    orders: int = 0
    executions: int = 0
    positions: int = 0
    new_events: int = 0
    ok: bool = True
    detail: str = ""


class PositionMismatch(Event, frozen=True, tag="position_mismatch"):
    """IB's position disagrees with the folded one: recorded, never applied."""

    account: str
    contract: Contract
    broker_position: Decimal
    folded_position: Decimal
    broker_avg_cost: float = 0.0


class KillSwitchChanged(Event, frozen=True, tag="kill_switch"):
    """The kill switch, for everything (no scope) or for one strategy or account. `code` says what
    moved it: `daily_loss_limit` (the scope's loss limit was crossed), `session_reset` (its session
    ended), or "" (an operator)."""

    engaged: bool
    reason: str = ""
    strategy_id: str = ""  # scope: this strategy's orders only
    account: str = ""  # scope: this account's orders only
    code: str = ""

    @property
    def scope(self) -> str:
        return kill_scope(self.strategy_id, self.account)


def kill_scope(strategy_id: str = "", account: str = "") -> str:
    """A kill switch's scope as the state keys it: "strategy:NAME", "account:ID", or "" (everything)."""
    if strategy_id:
        return f"strategy:{strategy_id}"
    return f"account:{account}" if account else ""


class UnknownEvent(Event, frozen=True, tag="unknown"):
    """A kind this code does not know (written by a newer version): kept verbatim, folded as a no-op.

    The codec writes `raw` back unchanged, so re-publishing or re-archiving never loses it."""

    original_kind: str
    raw: bytes


AnyEvent = (
    OrderRequested
    | ModifyRequested
    | CancelRequested
    | OrderDenied
    | OrderSent
    | OrderStatusReported
    | OpenOrderReported
    | ExecutionReported
    | CommissionReported
    | PositionReported
    | AccountValueReported
    | BrokerError
    | ConnectionChanged
    | SessionStarted
    | ReconciliationStarted
    | ReconciliationFinished
    | PositionMismatch
    | KillSwitchChanged
    | UnknownEvent
)

EVENT_TYPES: tuple[type[Event], ...] = AnyEvent.__args__  # type: ignore[attr-defined]
KINDS: dict[str, type[Event]] = {t.__struct_config__.tag: t for t in EVENT_TYPES}  # type: ignore[misc]


class Envelope(Struct, frozen=True):
    """One logged event: `seq` is contiguous from 1 and assigned by the journal; `ts` is the service's
    receive time in integer nanoseconds UTC; `v` is the schema version of the writer."""

    seq: int
    ts: int
    event: AnyEvent
    v: int = SCHEMA_VERSION


def kind_of(event: Event) -> str:
    """The kind as it was written: an unknown event keeps the name its writer gave it."""
    if isinstance(event, UnknownEvent):
        return event.original_kind
    return event.__struct_config__.tag  # type: ignore[return-value]
