"""Hypothesis strategies for IB-like sessions: intents plus the callbacks IB would send for them, then
reordered within the freedom IB takes, duplicated and dropped the way IB does.

Per order, three channels are merged at random after OrderRequested/OrderSent: the order channel
(openOrder, orderStatus, errors, and our cancel/modify requests, in causal order except that the first
openOrder and orderStatus come either way round, so an external order may be seen status-first;
statuses may be dropped or repeated), the execution channel (execDetails in order, each commission
before or after its execution, corrections after what they correct, duplicates from a later sync
anywhere after the original), and nothing else; orders are then interleaved with each other and with
account, position, kill-switch and connection facts. Executions are never dropped. `Session.fills` is
the ground truth: the fills IB finally stands by (after corrections), for checking the fold against.

Reusable by other helpers: `sessions()` gives a `Session`; `envelopes()` gives just the log.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypedDict

import msgspec
from hypothesis import strategies as st
from msgspec.structs import replace

from events.schema import (
    AccountValueReported,
    AnyEvent,
    BrokerError,
    CancelRequested,
    CommissionReported,
    ConnectionChanged,
    Contract,
    Envelope,
    ExecutionReported,
    KillSwitchChanged,
    ModifyRequested,
    OpenOrderReported,
    OrderDenied,
    OrderRequested,
    OrderSent,
    OrderStatusReported,
    PositionMismatch,
    PositionReported,
    ReconciliationFinished,
    ReconciliationStarted,
    Side,
)
from oms.state.fold import fold
from oms.state.model import State

CLIENT_ID = 7
ACCOUNTS = ("DU111", "DU222")
# (IB's contract, size step): stocks in USD and JPY, a future and an option with multipliers, forex in
# cents of a euro
INSTRUMENTS: tuple[tuple[Contract, Decimal], ...] = (
    (Contract(symbol="AAPL", con_id=265598), Decimal(1)),
    (Contract(symbol="MSFT", con_id=272093), Decimal(1)),
    (Contract(symbol="7203", exchange="TSEJ", currency="JPY", con_id=13905), Decimal(1)),
    (
        Contract(
            symbol="ES", sec_type="FUT", exchange="CME", last_trade_date="20261218", multiplier="50",
            con_id=495512563,
        ),
        Decimal(1),
    ),
    (
        Contract(
            symbol="AAPL", sec_type="OPT", last_trade_date="20261218", strike=200.0, right="C",
            multiplier="100", con_id=600000001,
        ),
        Decimal(1),
    ),
    (Contract(symbol="EUR", sec_type="CASH", exchange="IDEALPRO", con_id=12087792), Decimal("0.01")),
)  # fmt: skip
FATES = (
    "fill",
    "partial_cancel",
    "cancel",
    "reject",
    "deny",
    "cancel_fail",
    "inactive",
    "modify",
    "ext",
    "ext_other",
    "modify_refused",  # IB refuses a modify (201): the order keeps working and fills
    "refused",  # IB never accepts it (200, 103, 110, 10243): rejected, nothing fills
    "exec_only",  # another client's order seen only by its executions
    "lost_fills",  # IB says Filled, its executions are gone (a restart the next day): inferred
)


@dataclass(frozen=True)
class TrueFill:
    """An execution as IB finally stands by it (a corrected one with its last correction)."""

    client_order_id: str  # ours, or "" for an external order
    account: str
    con_id: int
    signed: Decimal
    price: float
    currency: str = "USD"
    commission: Decimal = Decimal(0)


@dataclass
class Session:
    envelopes: list[Envelope]
    fills: dict[str, TrueFill] = field(default_factory=dict)  # execId base -> final fill
    quantities: dict[str, Decimal] = field(default_factory=dict)  # our client order id -> final quantity
    reports: list[AnyEvent] = field(default_factory=list)  # IB's statuses during a final reconciliation


@dataclass
class _Order:
    index: int
    fate: str
    account: str
    contract: Contract  # as IB describes it
    step: Decimal  # its size increment
    side: Side
    quantity: Decimal
    strategy: str
    by_symbol: bool
    extra_perm: bool

    @property
    def coid(self) -> str:
        return f"c{self.index}"

    @property
    def order_id(self) -> int:
        return 100 + self.index

    @property
    def perm_id(self) -> int:
        return 9000 + self.index

    @property
    def con_id(self) -> int:
        return self.contract.con_id

    @property
    def symbol(self) -> str:
        return self.contract.symbol


def _contract(o: _Order, known: bool) -> Contract:
    return o.contract if known else replace(o.contract, con_id=0)


def _ids(o: _Order) -> tuple[int, int, int, str]:
    """(client_id, order_id, perm_id, order_ref) as IB reports them for this order."""
    if o.fate in ("ext", "exec_only"):  # placed in TWS by hand: no orderId, no orderRef
        return 0, 0, o.perm_id, ""
    if o.fate == "ext_other":  # another API client's order
        return 3, o.order_id, o.perm_id, f"other-{o.index}"
    return CLIENT_ID, o.order_id, o.perm_id, o.coid


def _status(o: _Order, rnd: random.Random, status: str, filled: Decimal) -> OrderStatusReported:
    client_id, order_id, perm_id, _ = _ids(o)
    if o.fate == "ext_other" and rnd.random() < 0.5:
        perm_id = 0  # IB sometimes reports before it has assigned the permId
    elif o.extra_perm and rnd.random() < 0.5:
        perm_id = o.perm_id + 50_000  # one order, a second permId (modify while reconnecting)
    return OrderStatusReported(
        order_id=order_id,
        perm_id=perm_id,
        client_id=client_id,
        status=status,
        filled=filled,
        remaining=max(Decimal(0), o.quantity - filled),
    )


def _open_order(o: _Order, status: str, quantity: Decimal | None = None) -> OpenOrderReported:
    client_id, order_id, perm_id, ref = _ids(o)
    return OpenOrderReported(
        order_id=order_id,
        perm_id=perm_id,
        client_id=client_id,
        order_ref=ref,
        account=o.account,
        contract=_contract(o, True),
        side=o.side,
        quantity=quantity if quantity is not None else o.quantity,
        order_type="LMT",
        limit_price=100.0,
        status=status,
    )


def _error(o: _Order, code: int, error_class: str) -> BrokerError:
    return BrokerError(req_id=o.order_id, code=code, message=f"error {code}", error_class=error_class)  # type: ignore[arg-type]


def _fill_sizes(rnd: random.Random, total: Decimal, step: Decimal) -> list[Decimal]:
    sizes: list[Decimal] = []
    left = int(total / step)
    while left > 0:
        part = rnd.randint(1, left)
        sizes.append(part * step)
        left -= part
    return sizes


def _executions(o: _Order, rnd: random.Random, total: Decimal, session: Session) -> list[AnyEvent]:
    """execDetails and commissions in the order IB may send them; records the final fills."""
    client_id, order_id, perm_id, ref = _ids(o)
    side = "BOT" if o.side == "BUY" else "SLD"
    channel: list[AnyEvent] = []
    tick = 0.01 if o.contract.sec_type == "CASH" else 1.0
    for k, shares in enumerate(_fill_sizes(rnd, total, o.step)):
        base = f"0000e{o.index:03d}.{k:04d}"
        price = round(rnd.randint(90, 110) * tick, 2)
        versions = [(shares, price)]
        if rnd.random() < 0.2:  # a correction: fewer shares or another price
            fewer = rnd.randint(1, int(shares / o.step)) * o.step
            versions.append((fewer, round(price + rnd.choice((-tick, tick)), 2)))
        for v, (qty, px) in enumerate(versions, start=1):
            exec_id = f"{base}.{v:02d}"
            execution = ExecutionReported(
                exec_id=exec_id,
                order_id=order_id,
                perm_id=perm_id,
                client_id=client_id,
                order_ref=ref,
                account=o.account,
                contract=_contract(o, True),
                side=side,
                shares=qty,
                price=px,
            )
            currency = o.contract.currency
            commission = CommissionReported(exec_id=exec_id, commission=1.0 + k, currency=currency)
            channel.extend((commission, execution) if rnd.random() < 0.3 else (execution, commission))
            if rnd.random() < 0.2:  # replayed by a reqExecutions sync, anywhere later
                replay = msgspec.structs.replace(execution, req_id=42)
                channel.insert(rnd.randint(channel.index(execution) + 1, len(channel)), replay)
        qty, px = versions[-1]
        session.fills[base] = TrueFill(
            "" if o.fate.startswith("ext") or o.fate == "exec_only" else o.coid,
            o.account,
            o.con_id,
            qty if o.side == "BUY" else -qty,
            px,
            o.contract.currency,
            Decimal(1 + k),
        )
    return channel


def _order_channel(o: _Order, rnd: random.Random, filled: Decimal) -> list[tuple[AnyEvent, bool]]:
    """(event, may IB drop or repeat it): the order's acknowledgements, statuses and our requests."""
    ack: list[tuple[AnyEvent, bool]] = [
        (_open_order(o, "Submitted"), True),
        (_status(o, rnd, "Submitted", Decimal(0)), True),
    ]
    if rnd.random() < 0.5:  # IB gives no order between them: an order (external too) seen status-first
        ack.reverse()
    info: list[tuple[AnyEvent, bool]] = (
        [(_error(o, 10349, "information"), False)] if rnd.random() < 0.3 else []
    )
    cancel = (CancelRequested(client_order_id=o.coid), False)
    if o.fate in ("fill", "ext", "ext_other"):
        return [*ack, *info, (_status(o, rnd, "Filled", filled), True)]
    if o.fate == "partial_cancel":
        return [
            *ack,
            cancel,
            (_status(o, rnd, "PendingCancel", Decimal(0)), True),
            (_status(o, rnd, "Cancelled", filled), True),
        ]
    if o.fate == "cancel":
        end = rnd.choice(
            ((_error(o, 202, "cancel"), False), (_status(o, rnd, "Cancelled", Decimal(0)), True))
        )
        return [*ack, *info, cancel, end]
    if o.fate == "reject":
        return [
            (_status(o, rnd, "PendingSubmit", Decimal(0)), True),
            (_error(o, 201, "rejection"), False),
            (_status(o, rnd, "Cancelled", Decimal(0)), True),
        ]
    if o.fate == "cancel_fail":
        failed = _error(o, rnd.choice((10148, 161, 10147)), "cancel_failed")
        return [*ack, cancel, (failed, False), (_status(o, rnd, "Filled", filled), True)]
    if o.fate == "inactive":
        return [*ack, (_status(o, rnd, "Inactive", Decimal(0)), True)]
    if o.fate == "modify_refused":
        modify = (ModifyRequested(client_order_id=o.coid, limit_price=101.0), False)
        return [*ack, modify, (_error(o, 201, "rejection"), False), (_status(o, rnd, "Filled", filled), True)]
    if o.fate == "refused":
        code = rnd.choice((200, 103, 110, 10243))
        return [(_status(o, rnd, "PendingSubmit", Decimal(0)), True), (_error(o, code, "error"), False)]
    if o.fate == "exec_only":
        return []
    if o.fate == "lost_fills":  # IB stands by the fill (its openOrder names the contract); no executions
        return [(_open_order(o, "Submitted"), False)]
    if o.fate == "modify":
        modify = (ModifyRequested(client_order_id=o.coid, quantity=o.quantity + 1, limit_price=101.0), False)
        acked = replace(_open_order(o, "Submitted", o.quantity + 1), limit_price=101.0)
        return [*ack, modify, (acked, False), (_status(o, rnd, "Submitted", Decimal(0)), True)]
    raise AssertionError(o.fate)


def _order_events(o: _Order, rnd: random.Random, session: Session) -> list[AnyEvent]:
    """One order's events: intents first, then its channels merged at random."""
    if o.fate == "deny":
        request = OrderRequested(
            client_order_id=o.coid,
            strategy_id=o.strategy,
            account=o.account,
            contract=_contract(o, False),
            side=o.side,
            quantity=o.quantity,
        )
        session.quantities[o.coid] = o.quantity
        return [
            request,
            OrderDenied(client_order_id=o.coid, code="max_qty", reason="over the limit", request=request),
        ]
    whole = ("fill", "ext", "ext_other", "cancel_fail", "modify_refused", "exec_only", "lost_fills")
    filled = o.quantity if o.fate in whole else Decimal(0)
    steps = int(o.quantity / o.step)
    if o.fate == "partial_cancel":
        filled = rnd.randint(0, steps) * o.step
    elif o.fate == "modify":  # IB refuses to modify a filled order: this one is not filled before
        filled = rnd.randint(0, steps - 1) * o.step
    head: list[AnyEvent] = []
    if not o.fate.startswith("ext") and o.fate != "exec_only":
        head = [
            OrderRequested(
                client_order_id=o.coid,
                strategy_id=o.strategy,
                account=o.account,
                contract=_contract(o, not o.by_symbol),
                side=o.side,
                quantity=o.quantity,
                order_type="LMT",
                limit_price=100.0,
            ),
            OrderSent(client_order_id=o.coid, order_id=o.order_id, client_id=CLIENT_ID),
        ]
        session.quantities[o.coid] = o.quantity + (1 if o.fate == "modify" else 0)
    statuses: list[AnyEvent] = []
    for event, droppable in _order_channel(o, rnd, filled):
        copies = 1
        if droppable:
            copies = rnd.choices((0, 1, 2), weights=(2, 6, 2))[0]
        statuses.extend([event] * copies)
    if o.fate == "lost_fills":  # what IB says of it when the service reconciles after a restart
        session.fills[f"inferred:{o.coid}"] = TrueFill(
            o.coid, o.account, o.con_id, filled if o.side == "BUY" else -filled, 100.0, o.contract.currency
        )
        session.reports.append(replace(_status(o, rnd, "Filled", filled), avg_fill_price=100.0))
        return head + statuses
    executions = _executions(o, rnd, filled, session)
    return head + merge(rnd, [statuses, executions])


def merge(rnd: random.Random, channels: list[list[AnyEvent]]) -> list[AnyEvent]:
    """A random interleaving that keeps each channel's own order."""
    channels = [list(reversed(c)) for c in channels if c]
    out: list[AnyEvent] = []
    while channels:
        i = rnd.choices(range(len(channels)), weights=[len(c) for c in channels])[0]
        out.append(channels[i].pop())
        if not channels[i]:
            channels.pop(i)
    return out


def _facts(rnd: random.Random) -> list[AnyEvent]:
    """Account values, IB position reports (possibly disagreeing), mismatches, the kill switch."""
    out: list[AnyEvent] = []
    for _ in range(rnd.randint(0, 4)):
        account = rnd.choice(ACCOUNTS)
        known, _step = rnd.choice(INSTRUMENTS)
        kind = rnd.randrange(4)
        if kind == 0:
            out.append(
                AccountValueReported(
                    account=account, key="NetLiquidation", value=str(rnd.randint(1, 9)), currency="USD"
                )
            )
        elif kind == 1:
            contract = known
            out.append(
                PositionReported(
                    account=account, contract=contract, position=Decimal(rnd.randint(-5, 5)), avg_cost=1.0
                )
            )
        elif kind == 2:
            contract = known
            out.append(
                PositionMismatch(
                    account=account, contract=contract, broker_position=Decimal(1), folded_position=Decimal(0)
                )
            )
        else:
            out.append(KillSwitchChanged(engaged=rnd.random() < 0.5, reason="test"))
    return out


@st.composite
def sessions(draw: st.DrawFn, max_orders: int = 6, gaps: tuple[int, ...] = ()) -> Session:
    """`gaps`: quiet spells (ns) that may come between events, e.g. long enough for finished orders to
    retire to history, or for their tombstones to expire, so retirement meets late and repeated reports."""
    rnd = draw(st.randoms(use_true_random=False))
    session = Session(envelopes=[])
    specs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(FATES),
                st.sampled_from(ACCOUNTS),
                st.sampled_from(INSTRUMENTS),
                st.sampled_from(("BUY", "SELL")),
                st.integers(1, 5),
                st.sampled_from(("s1", "s2")),
                st.booleans(),
                st.booleans(),
            ),
            min_size=1,
            max_size=max_orders,
        )
    )
    per_order = []
    for i, (fate, account, (contract, step), side, qty, strategy, by_symbol, extra_perm) in enumerate(specs):
        extra_perm = extra_perm and not fate.startswith("ext") and fate != "exec_only"
        o = _Order(i, fate, account, contract, step, side, qty * step, strategy, by_symbol, extra_perm)
        per_order.append(_order_events(o, rnd, session))
    events: list[AnyEvent] = [ConnectionChanged(state="connected", client_id=CLIENT_ID, accounts=ACCOUNTS)]
    events += merge(rnd, [*per_order, _facts(rnd)])
    if session.reports:  # after a restart: what IB reports filled beyond its executions is inferred
        events += [ReconciliationStarted(reason="connect"), *session.reports, ReconciliationFinished()]
    ts, session.envelopes = 0, []
    spells, weights = (1_000_000, *gaps), (20, *(3 for _ in gaps))
    for seq, ev in enumerate(events, start=1):
        ts += rnd.choices(spells, weights)[0] if gaps else 1_000_000
        session.envelopes.append(Envelope(seq, ts, ev))
    return session


def envelopes(max_orders: int = 6) -> st.SearchStrategy[list[Envelope]]:
    return sessions(max_orders).map(lambda s: s.envelopes)


# ---------------------------------------------------------------------------------------------------
# Builders for example tests: one order "c1" (orderId 101, permId 9001, clientId 7) unless told.

AAPL = Contract(symbol="AAPL")
AAPL_IB = Contract(symbol="AAPL", con_id=265598)
KEY = "DU111|265598"  # the position of "c1": account DU111, AAPL_IB's conId


class IbIds(TypedDict):
    """An order's IB ids, spread as keywords into the builders below (an external order's, say)."""

    order_id: int
    perm_id: int
    client_id: int


def requested(
    coid: str = "c1",
    side: Side = "BUY",
    quantity: Decimal | int = 10,
    contract: Contract = AAPL,
    strategy: str = "s1",
    account: str = "DU111",
) -> OrderRequested:
    return OrderRequested(
        client_order_id=coid,
        strategy_id=strategy,
        account=account,
        contract=contract,
        side=side,
        quantity=Decimal(quantity),
        order_type="LMT",
        limit_price=100.0,
    )


def sent(coid: str = "c1", order_id: int = 101) -> OrderSent:
    return OrderSent(client_order_id=coid, order_id=order_id, client_id=CLIENT_ID)


def status(
    name: str,
    filled: Decimal | int = 0,
    order_id: int = 101,
    perm_id: int = 9001,
    client_id: int = CLIENT_ID,
    why_held: str = "",
) -> OrderStatusReported:
    return OrderStatusReported(
        order_id=order_id,
        perm_id=perm_id,
        client_id=client_id,
        status=name,
        filled=Decimal(filled),
        remaining=Decimal(0),
        why_held=why_held,
    )


def open_order(
    name: str = "Submitted",
    coid: str = "c1",
    quantity: Decimal | int = 10,
    order_id: int = 101,
    perm_id: int = 9001,
    client_id: int = CLIENT_ID,
    side: str = "BUY",
    limit: float = 100.0,
    account: str = "DU111",
) -> OpenOrderReported:
    return OpenOrderReported(
        order_id=order_id,
        perm_id=perm_id,
        client_id=client_id,
        order_ref=coid,
        account=account,
        contract=AAPL_IB,
        side=side,
        quantity=Decimal(quantity),
        order_type="LMT",
        limit_price=limit,
        status=name,
    )


def execution(
    exec_id: str,
    shares: Decimal | int | str,
    price: float = 100.0,
    side: str = "BOT",
    coid: str = "c1",
    order_id: int = 101,
    perm_id: int = 9001,
    client_id: int = CLIENT_ID,
    account: str = "DU111",
    contract: Contract = AAPL_IB,
) -> ExecutionReported:
    return ExecutionReported(
        exec_id=exec_id,
        order_id=order_id,
        perm_id=perm_id,
        client_id=client_id,
        order_ref=coid,
        account=account,
        contract=contract,
        side=side,
        shares=Decimal(shares),
        price=price,
    )


def commission(exec_id: str, amount: float, realized: float | None = None) -> CommissionReported:
    return CommissionReported(exec_id=exec_id, commission=amount, currency="USD", realized_pnl=realized)


def error(code: int, error_class: str = "error", req_id: int = 101) -> BrokerError:
    return BrokerError(req_id=req_id, code=code, message=f"error {code}", error_class=error_class)  # type: ignore[arg-type]


def log(*events: AnyEvent) -> list[Envelope]:
    """Envelopes for `events`, after the connection that names our clientId."""
    evs = [ConnectionChanged(state="connected", client_id=CLIENT_ID), *events]
    return [Envelope(seq, 1_000 * seq, ev) for seq, ev in enumerate(evs, start=1)]


def placed(*events: object) -> State:
    """The state after order "c1" is requested and sent, then `events`."""
    return fold(log(requested(), sent(), *events))  # type: ignore[arg-type]


def then(state: State, *events: object) -> State:
    """`state` after `events`, numbered on from its last seq."""
    start = state.seq + 1
    return fold([Envelope(start + i, 1_000 * (start + i), e) for i, e in enumerate(events)], state)  # type: ignore[arg-type]
