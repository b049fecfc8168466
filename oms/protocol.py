"""The ZeroMQ wire contract: every request, reply and published message, as msgspec Structs.

Everything on the wire is a msgpack map, so a client in any language can speak it (docs/protocol.md).
Requests are validated by decoding into these Structs (types, ranges, unknown fields refused); a request
that does not decode gets an error reply with one of the stable `ERROR_CODES` and changes nothing.

ROUTER: a client (DEALER or REQ) sends ONE frame, a msgpack map with `op` (and an optional `id` echoed
back); it gets exactly one reply frame: `OkReply` or `ErrorReply`.

PUB: multipart `[topic, payload]`; payload is a `Published` map (`type`, `seq`, `ts`, `data`) or a
`Heartbeat`. Topics are prefix-matchable strings built by the `*_topic` functions below.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta, Struct

from events.schema import AlgoPriority, Contract, OrderType, Side, TimeInForce
from oms.readable import plain

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024  # larger requests get `too_large` (and ZMQ_MAXMSGSIZE is set a bit above)
MAX_EVENTS_BATCH = 5000  # most envelopes one `events` reply carries
HEARTBEAT_INTERVAL_S = 0.5  # the service publishes a heartbeat at least this often (contract: <= 1 s)

# ---------------------------------------------------------------------------------------------------
# Error codes: stable strings a client can switch on.

ERROR_CODES: dict[str, str] = {
    "malformed": "the frame is not msgpack, or not a msgpack map",
    "invalid": "a field has the wrong type or value (NaN, inf, negative or zero quantity/price, a "
    "quantity or price beyond its bound, unknown field, missing field, inconsistent order type and prices)",
    "unknown_op": "`op` names no known request",
    "too_large": f"the request is larger than {MAX_MESSAGE_BYTES} bytes",
    "bad_frames": "the request had more than one frame after the routing envelope",
    "unknown_order": "no order has this client order id",
    "unknown_contract": "IB knows no instrument by the contract given, or several (IB's error 200, \"No "
    'security definition has been found for the request"); nothing was logged or sent',
    "risk_denied": "a risk check refused the order; `error.reason` names the check",
    "not_ready": "commands are not accepted right now: start-up reconciliation has not finished, the IB "
    "connection is lost or being reconciled, or the service is shutting down; retry",
    "order_done": "cancel or modify of an order in a terminal state",
    "duplicate_client_order_id": "the client order id is taken by an order with other parameters (the "
    "message says which differ); a retry with the same parameters gets the existing order instead",
    "not_authorized": "this CURVE client key may not act for that strategy, or the op is for admin keys",
    "internal": "the service failed while handling the request; the request may not have been logged",
}

RISK_REASONS: dict[str, str] = {
    "max_quantity": "order quantity above the configured maximum",
    "max_notional": "quantity x price x multiplier above the configured maximum",
    "no_reference_price": "a market order with a notional limit set, and no price to value it by (no market "
    "data from IB, no earlier fill of that contract); allowed only with allow_market_without_price",
    "unknown_multiplier": "a notional limit is set and IB has not described the contract's multiplier",
    "max_position": "position + working orders on that side + this order would exceed the maximum",
    "symbol_not_allowed": "symbol not in the allow-list",
    "kill_switch": "the kill switch is engaged (for everything, or for the order's strategy or account: "
    "then orders that only reduce a position still pass)",
    "max_position_value": "|position after this order and the working ones| x price x multiplier above the "
    "maximum (the instrument's currency)",
    "max_position_pct_nlv": "that position value, in the account's base currency, above this % of "
    "NetLiquidation",
    "max_risk_per_trade_pct_nlv": "|entry - stop| x quantity x multiplier above this % of NetLiquidation",
    "no_stop": "max_risk_per_trade_pct_nlv is set and an order that opens a position has no stop (a "
    "bracket's stop child counts)",
    "max_orders_per_minute": "the strategy or account placed this many orders in the last 60 seconds",
    "max_working_orders": "the strategy or account has this many working orders",
    "daily_loss_limit": "the strategy's or account's loss since the session began crossed its daily loss "
    "limit: its kill switch is engaged until the next session or an operator releases it; only orders "
    "that reduce a position pass",
    "no_net_liquidation": "a limit in % of NetLiquidation is set and IB has not reported it",
    "no_exchange_rate": "a limit in the base currency is set and IB has given no exchange rate for the "
    "instrument's currency",
    "no_pnl": "a daily loss limit is set and the scope's P&L cannot be told (no price for a position, no "
    "exchange rate, no UnrealizedPnL from IB)",
}

ErrorCode = Literal[
    "malformed",
    "invalid",
    "unknown_op",
    "too_large",
    "bad_frames",
    "unknown_order",
    "unknown_contract",
    "risk_denied",
    "not_ready",
    "order_done",
    "duplicate_client_order_id",
    "not_authorized",
    "internal",
]

# ---------------------------------------------------------------------------------------------------
# Field constraints. Quantities and prices: bounded by what IB takes (docs/protocol.md, "Constraints
# shared by the ops"), checked by `check_bounds` when a `place` or `modify` request is made or decoded,
# before anything computes with, rounds or shows them: so the ROUTER, the client library, the web intake
# and the command line refuse the same values, as `invalid`, naming the bound. (msgspec has no bounds
# for Decimal; a Struct's `__post_init__` runs on decoding and on construction alike.)

MAX_QUANTITY = Decimal(10) ** 9  # a sane maximum: IB's own size limits (precautionary settings) are lower
QUANTITY_DIGITS = 16  # IB's decimal quantities carry 16 significant digits (its Java client: DECIMAL64)
MAX_PRICE = 1e12  # a sane maximum; IB's prices are doubles, and Double.MAX_VALUE means "unset" to it
Quantity = Decimal  # exact: a msgpack number or a decimal string
Price = float


def quantity_problem(quantity: Decimal) -> str | None:
    """Why `quantity` is beyond what IB takes (None: it is not): finite, > 0, at most MAX_QUANTITY, at
    most QUANTITY_DIGITS significant digits. Compares and counts digits only, so no decimal context can
    overflow on any value (1e28, 1e999999)."""
    if not quantity.is_finite() or quantity <= 0:
        return f"quantity must be a positive number, not {plain(quantity)}"
    if quantity > MAX_QUANTITY:
        return f"quantity {plain(quantity)} is above {plain(MAX_QUANTITY)}, the most an order may have"
    significant = len(bytes(quantity.as_tuple().digits).rstrip(b"\0"))  # 1000 has 1, 1.05 has 3
    if significant > QUANTITY_DIGITS:
        return (
            f"quantity {plain(quantity)} has {significant} significant digits; IB takes at most "
            f"{QUANTITY_DIGITS}"
        )
    return None


def price_problem(field: str, price: float) -> str | None:
    """Why a price is beyond what IB takes (None: it is not): finite, > 0, at most MAX_PRICE."""
    if not math.isfinite(price) or price <= 0:
        return f"{field} must be a positive number, not {plain(price)}"
    if price > MAX_PRICE:
        return f"{field} {plain(price)} is above {plain(MAX_PRICE)}, the most a price may be"
    return None


def check_bounds(quantity: Decimal | None, limit_price: float | None, stop_price: float | None) -> None:
    """ValueError naming the first quantity or price beyond its bound (msgspec makes it a validation
    error when decoding)."""
    problem = (
        (quantity_problem(quantity) if quantity is not None else None)
        or (price_problem("limit_price", limit_price) if limit_price is not None else None)
        or (price_problem("stop_price", stop_price) if stop_price is not None else None)
    )
    if problem:
        raise ValueError(problem)


def terms_problem(
    trailing_amount: float | None = None,
    trailing_percent: float | None = None,
    limit_offset: float | None = None,
    touch_price: float | None = None,
    good_till: str = "",
) -> str | None:
    """Why a trailing amount / percent, limit offset, touch price or good-till time is beyond what IB
    takes (None: it is not): amounts and prices as `price_problem`; a percentage in (0, 100); an offset
    finite and >= 0; a good-till time that names its zone."""
    if trailing_percent is not None and not (math.isfinite(trailing_percent) and 0 < trailing_percent < 100):
        return f"trailing_percent must be above 0 and below 100, not {plain(trailing_percent)}"
    if limit_offset is not None and not (math.isfinite(limit_offset) and 0 <= limit_offset <= MAX_PRICE):
        return f"limit_offset must be a number from 0 to {plain(MAX_PRICE)}, not {plain(limit_offset)}"
    for name, value in (("trailing_amount", trailing_amount), ("touch_price", touch_price)):
        if value is not None and (problem := price_problem(name, value)):
            return problem
    if good_till:
        try:
            good_till_instant(good_till)
        except ValueError as exc:
            return str(exc)
    return None


def good_till_instant(text: str) -> datetime:
    """A good-till time as an aware datetime: ISO 8601 with its offset (`2026-12-07T15:30:00-05:00`) or
    IB's own form with a zone name (`20261207 15:30:00 America/New_York`). A time without a zone is
    refused: IB would read it in TWS's zone, which the client cannot see."""
    head, _, zone = text.strip().rpartition(" ")
    if head and ("/" in zone or zone in ("UTC", "GMT")):
        try:
            moment = datetime.strptime(head, "%Y%m%d %H:%M:%S").replace(tzinfo=ZoneInfo(zone))
        except (ValueError, ZoneInfoNotFoundError) as exc:
            raise ValueError(f"good_till {text!r}: {exc}") from exc
        return moment
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(
            f"good_till {text!r} is not a date and time with its zone (2026-12-07T15:30:00-05:00, or "
            "20261207 15:30:00 America/New_York)"
        ) from exc
    if moment.tzinfo is None:
        raise ValueError(f"good_till {text!r} needs its zone (e.g. 2026-12-07T15:30:00-05:00)")
    return moment


ClientOrderId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
StrategyId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
Account = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")]
Symbol = Annotated[str, Meta(min_length=1, max_length=32)]
Short = Annotated[str, Meta(max_length=64)]
Reason = Annotated[str, Meta(max_length=256)]
RequestId = int | str | None


class ContractSpec(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The instrument of a `place` request: the fields of `events.schema.Contract`, validated."""

    symbol: Symbol
    sec_type: Short = "STK"
    exchange: Short = "SMART"
    currency: Short = "USD"
    con_id: Annotated[int, Meta(ge=0)] = 0
    primary_exchange: Short = ""
    last_trade_date: Short = ""
    strike: Annotated[float, Meta(ge=0, le=1e12)] = 0.0
    right: Short = ""
    multiplier: Short = ""
    local_symbol: Short = ""
    trading_class: Short = ""

    def to_contract(self) -> Contract:
        return msgspec.convert(msgspec.structs.asdict(self), Contract)


class Request(Struct, frozen=True, tag_field="op", forbid_unknown_fields=True, kw_only=True):
    """Base of every request; `id` (int or string) is echoed in the reply so a client can match them."""

    id: RequestId = None


class PingRequest(Request, frozen=True, tag="ping"):
    pass


class SnapshotRequest(Request, frozen=True, tag="snapshot"):
    """The whole folded state and the seq it reflects (the Clone pattern's snapshot)."""


class PlaceRequest(Request, frozen=True, tag="place"):
    """A new order. `client_order_id` is generated if absent; `account` defaults from the config."""

    contract: ContractSpec
    side: Side
    quantity: Quantity
    strategy_id: StrategyId = "default"
    client_order_id: ClientOrderId | None = None
    account: Account | None = None
    order_type: OrderType = "MKT"
    limit_price: Price | None = None
    stop_price: Price | None = None
    tif: TimeInForce = "DAY"
    outside_rth: bool = False
    parent_client_order_id: ClientOrderId | None = None
    transmit: bool = True
    trailing_amount: Price | None = None
    trailing_percent: float | None = None
    limit_offset: Price | None = None
    touch_price: Price | None = None
    good_till: Annotated[str, Meta(max_length=64)] = ""
    oca_group: Short = ""
    oca_type: Literal[1, 2, 3] | None = None  # with an oca_group; 1 when left out
    algo: Literal["Adaptive"] | None = None
    algo_priority: AlgoPriority = ""

    def __post_init__(self) -> None:
        _check_order_terms(self)


class ModifyRequest(Request, frozen=True, tag="modify"):
    """New quantity and/or prices for a working order; fields left out keep their value."""

    client_order_id: ClientOrderId
    quantity: Quantity | None = None
    limit_price: Price | None = None
    stop_price: Price | None = None
    trailing_amount: Price | None = None
    trailing_percent: float | None = None
    limit_offset: Price | None = None
    touch_price: Price | None = None
    good_till: Annotated[str, Meta(max_length=64)] = ""

    def __post_init__(self) -> None:
        _check_order_terms(self)


def _check_order_terms(req: PlaceRequest | ModifyRequest) -> None:
    """Bounds on quantity and prices, and the order terms' own checks: refused as `invalid` on decode."""
    check_bounds(req.quantity, req.limit_price, req.stop_price)
    problem = terms_problem(
        req.trailing_amount, req.trailing_percent, req.limit_offset, req.touch_price, req.good_till
    )
    if problem:
        raise ValueError(problem)


class CancelRequest(Request, frozen=True, tag="cancel"):
    client_order_id: ClientOrderId


class CancelAllRequest(Request, frozen=True, tag="cancel_all"):
    """Cancel every working order this service placed (of one strategy if `strategy_id` is given).
    `account_wide` also sends IB's global cancel: every order of the account, including those a person
    placed in TWS or another client placed."""

    strategy_id: StrategyId | None = None
    account_wide: bool = False


class OrdersRequest(Request, frozen=True, tag="orders"):
    strategy_id: StrategyId | None = None
    open_only: bool = False


class OrderRequest(Request, frozen=True, tag="order"):
    """One order by client order id: live, or finished and retired from the live state (then rebuilt
    from the journal, through its segment indexes)."""

    client_order_id: ClientOrderId


class PositionsRequest(Request, frozen=True, tag="positions"):
    """Account positions, or one strategy's view of them if `strategy_id` is given."""

    strategy_id: StrategyId | None = None
    open_only: bool = False


class EventsRequest(Request, frozen=True, tag="events"):
    """Logged envelopes from `from_seq` on, at most `limit` (gap repair)."""

    from_seq: Annotated[int, Meta(ge=1)] = 1
    limit: Annotated[int, Meta(ge=1, le=MAX_EVENTS_BATCH)] = 1000


class StatusRequest(Request, frozen=True, tag="status"):
    """How the service is doing: IB connection, journal seqs, last reconciliation, subscribers."""


class KillSwitchRequest(Request, frozen=True, tag="kill_switch"):
    """Engaging cancels every working order this service placed and refuses new ones until disengaged;
    `account_wide` also sends IB's global cancel (orders placed in TWS or by other clients too). With
    `strategy_id` or `account`, only that scope: its working orders are cancelled and its orders that
    add exposure refused; releasing a scope a loss limit engaged keeps it released for the session."""

    engaged: bool
    reason: Reason = ""
    account_wide: bool = False
    strategy_id: StrategyId | None = None
    account: Account | None = None

    def __post_init__(self) -> None:
        if self.strategy_id and self.account:  # one scope per switch: neither may be silently dropped
            raise ValueError(
                "a kill switch is for one scope: name strategy_id or account, not both (send one request "
                "for each)"
            )


class RiskRequest(Request, frozen=True, tag="risk"):
    """Every risk limit of every strategy and account (or of one strategy): its use and headroom."""

    strategy_id: StrategyId | None = None


AnyRequest = (
    PingRequest
    | SnapshotRequest
    | PlaceRequest
    | ModifyRequest
    | CancelRequest
    | CancelAllRequest
    | OrdersRequest
    | OrderRequest
    | PositionsRequest
    | EventsRequest
    | KillSwitchRequest
    | StatusRequest
    | RiskRequest
)

REQUEST_TYPES: tuple[type[Request], ...] = AnyRequest.__args__  # type: ignore[attr-defined]
OPS: dict[str, type[Request]] = {t.__struct_config__.tag: t for t in REQUEST_TYPES}  # type: ignore[misc]


def op_of(request: Request) -> str:
    return request.__struct_config__.tag  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------
# Results (the `result` of an OkReply, per op). Entities (orders, positions, the state) are the fold's
# own Structs, encoded as msgpack maps with the field names of oms/state/model.py.


class PingResult(Struct, frozen=True):
    ready: bool  # commands are accepted now (IB connected and reconciled); queries always are
    version: str
    protocol: int = PROTOCOL_VERSION


class StatusResult(Struct, frozen=True):
    """`status`: `connection` is the IB connection state (`connected`, `lost`, ...); `journal_seq` the
    last logged seq, `durable_seq` the last fsynced one; `reconciled_seq`/`reconciled_ts` the last
    reconciliation with IB finished in this session (0: none yet); `subscribers` the PUB peers now."""

    ready: bool
    version: str
    pid: int
    ib: str
    connection: str
    journal_seq: int
    durable_seq: int
    reconciled_seq: int
    reconciled_ts: int
    reconciliation_ok: bool
    subscribers: int
    open_orders: int
    kill_switch: bool
    started_ts: int
    live_orders: int = 0  # working and finished not yet retired (docs/state.md, "History")
    retired_orders: int = 0  # finished orders moved to history since the journal began
    time_zone: str = ""  # the IANA zone of the service's clock (its host's), for pages that show times
    simulator: bool = False  # IB is the embedded TWS simulator: its execution times run on its own clock
    kill_scopes: dict[str, str] = {}  # engaged scoped kill switches: "strategy:S" -> "code: reason"


class SnapshotResult(Struct, frozen=True):
    """`state` is the folded state at `seq` (oms.state.State as a map; `oms.state.codec` reads it)."""

    seq: int
    state: Any


class PlaceResult(Struct, frozen=True):
    """`duplicate` is true when the client order id already existed: `order` is that order, unchanged,
    and nothing was sent. `seq` is the seq of the logged OrderRequested (or of the original one)."""

    client_order_id: str
    seq: int
    duplicate: bool = False
    order: Any = None


class CommandResult(Struct, frozen=True):
    """Reply to modify / cancel: the intent is logged and durable at `seq`; follow the order on PUB."""

    client_order_id: str
    seq: int


class CancelAllResult(Struct, frozen=True):
    client_order_ids: list[str]
    seq: int


class OrdersResult(Struct, frozen=True):
    orders: list[Any]


class OrderResult(Struct, frozen=True):
    """`retired`: the order has left the live state (docs/state.md, "History"); `order` is its last
    value, from the journal."""

    order: Any
    retired: bool = False


class PositionsResult(Struct, frozen=True):
    positions: list[Any]


class EventsResult(Struct, frozen=True):
    """`events` are envelopes (seq, ts, event, v) in seq order; ask again from `next_seq` while
    `next_seq <= last_seq`."""

    events: list[Any]
    next_seq: int
    last_seq: int


class LimitUse(Struct, frozen=True):
    """One limit of one scope: `use` and `headroom` are None where there is nothing to measure, or
    `unknown` says which figure is missing."""

    limit: str
    value: Decimal | None  # None: the check is off
    use: Decimal | None = None
    headroom: Decimal | None = None
    unknown: str = ""


class ScopeRisk(Struct, frozen=True):
    """A strategy ("strategy:NAME") or an account ("account:ID"): its kill switch, its P&L of the day
    (None when it cannot be told: `limits` says why), and its limits."""

    scope: str
    kill: str
    daily_pnl: Decimal | None
    session_start_ts: int
    limits: list[LimitUse]


class RiskResult(Struct, frozen=True):
    """`risk`: one entry per scope; decimals are text on the wire, as everywhere."""

    scopes: list[ScopeRisk]


class KillSwitchResult(Struct, frozen=True):
    engaged: bool
    seq: int
    cancelled: list[str] = []


# ---------------------------------------------------------------------------------------------------
# Replies.


class ErrorInfo(Struct, frozen=True, omit_defaults=True):
    """`reason` is the risk check's code for `risk_denied`; `client_order_id` when an order is named."""

    code: ErrorCode
    message: str
    reason: str | None = None
    client_order_id: str | None = None


class OkReply(Struct, frozen=True):
    id: RequestId
    op: str
    seq: int  # the latest logged seq when the reply was made
    result: Any
    ok: bool = True


class ErrorReply(Struct, frozen=True):
    id: RequestId
    error: ErrorInfo
    op: str | None = None
    ok: bool = False


# ---------------------------------------------------------------------------------------------------
# PUB messages.

PublishedType = Literal[
    "event", "order", "position", "strategy_position", "account", "position_moved", "fold_error"
]


class Published(Struct, frozen=True):
    """One published item. `type` "event": `data` is the logged event (with its `kind`); otherwise
    `data` is the entity (order, position, strategy position, account) as changed by the event `seq`,
    or for "position_moved" `{key, moved_to}` (IB named the contract: its position moved to the conId key)."""

    type: PublishedType
    seq: int
    ts: int
    data: Any


class Heartbeat(Struct, frozen=True):
    seq: int  # latest published seq
    ts: int
    type: Literal["heartbeat"] = "heartbeat"


HEARTBEAT_TOPIC = "hb"
POSITION_MOVED_TOPIC = "posmove"  # data {key, moved_to}: a position keyed by symbol moved to its conId key
FOLD_ERROR_TOPIC = "fold.error"  # data {seq, kind, error}: an event the fold skipped whole


def instrument_key(contract: Contract) -> str:
    """`SYMBOL:CONID` (conId 0 until IB has named the contract); dots are replaced so topics split."""
    return f"{contract.symbol.replace('.', '_')}:{contract.con_id}"


def event_topic(kind: str) -> str:
    return f"evt.{kind}"


def order_topic(strategy_id: str, client_order_id: str) -> str:
    return f"order.{strategy_id}.{client_order_id}"


def position_topic(account: str, instrument: str) -> str:
    return f"pos.{account}.{instrument}"


def strategy_position_topic(strategy_id: str, account: str, instrument: str) -> str:
    return f"spos.{strategy_id}.{account}.{instrument}"


def account_topic(account: str) -> str:
    return f"acct.{account}"


# ---------------------------------------------------------------------------------------------------
# Where a running service is: DATA_DIR/endpoints.json (mode 0600), written once its sockets are bound.

ENDPOINTS_FILE = "endpoints.json"


class Endpoints(Struct, frozen=True):
    pub: str
    router: str
    ib: str
    pid: int
    curve_server_key: str | None = None  # Z85 public key of the server when CURVE is on
