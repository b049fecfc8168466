"""Shared by the replay and archive tests: write a session into a real journal, fold it live, and one
explicit session whose every event is known (for exact timelines)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from events.journal import JournalWriter
from events.schema import (
    AccountValueReported,
    AnyEvent,
    BrokerError,
    CancelRequested,
    CommissionReported,
    ConnectionChanged,
    Contract,
    Envelope,
    Event,
    ExecutionReported,
    OpenOrderReported,
    OrderRequested,
    OrderSent,
    OrderStatusReported,
    SessionStarted,
)
from oms.state.fold import copy_state, step
from oms.state.model import State, initial_state

T0 = 1_795_183_387_000_000_000  # 2026-11-20 14:03:07 UTC
AAPL = Contract(symbol="AAPL")
AAPL_IB = Contract(symbol="AAPL", con_id=265598)


def explicit_events() -> list[AnyEvent]:
    """Order A1 (orderId 5, permId 999): early commission, partial fill, info error, cancel; order B2
    filled; an account value that touches no order."""
    return [
        SessionStarted(version="1", config_digest="x"),  # 1
        ConnectionChanged(state="connected", client_id=7),  # 2
        OrderRequested(
            client_order_id="A1",
            strategy_id="s1",
            account="DU1",
            contract=AAPL,
            side="BUY",
            quantity=Decimal(100),
            order_type="LMT",
            limit_price=10.0,
        ),  # 3 fmt: skip
        OrderSent(client_order_id="A1", order_id=5, client_id=7),  # 4
        CommissionReported(exec_id="E1.01", commission=1.0, currency="USD"),  # 5: before its execution
        OpenOrderReported(
            order_id=5,
            perm_id=999,
            client_id=7,
            order_ref="A1",
            account="DU1",
            contract=AAPL_IB,
            side="BUY",
            quantity=Decimal(100),
            order_type="LMT",
            limit_price=10.0,
            status="Submitted",
        ),  # 6
        OrderStatusReported(
            order_id=5,
            perm_id=999,
            client_id=7,
            status="Submitted",
            filled=Decimal(0),
            remaining=Decimal(100),
        ),
        OrderRequested(
            client_order_id="B2",
            strategy_id="s2",
            account="DU1",
            contract=AAPL,
            side="SELL",
            quantity=Decimal(10),
        ),  # 8 fmt: skip
        ExecutionReported(
            exec_id="E1.01",
            order_id=5,
            perm_id=999,
            client_id=7,
            order_ref="A1",
            account="DU1",
            contract=AAPL_IB,
            side="BOT",
            shares=Decimal(40),
            price=10.0,
        ),  # 9 fmt: skip
        BrokerError(req_id=5, code=10349, message="info", error_class="information"),  # 10
        OrderSent(client_order_id="B2", order_id=6, client_id=7),  # 11
        AccountValueReported(account="DU1", key="NetLiquidation", value="1000", currency="USD"),  # 12
        ExecutionReported(
            exec_id="E2.01",
            order_id=6,
            perm_id=1000,
            client_id=7,
            order_ref="B2",
            account="DU1",
            contract=AAPL_IB,
            side="SLD",
            shares=Decimal(10),
            price=11.0,
        ),  # 13 fmt: skip
        CancelRequested(client_order_id="A1"),  # 14
        OrderStatusReported(
            order_id=5,
            perm_id=999,
            client_id=7,
            status="Cancelled",
            filled=Decimal(40),
            remaining=Decimal(60),
        ),
    ]


A1_SEQS = [3, 4, 5, 6, 7, 9, 10, 14, 15]
B2_SEQS = [8, 11, 13]


def write_journal(directory: Path, events: Sequence[Event | Envelope], step_ns: int = 1_000_000_000) -> Path:
    """Append to the journal at `directory` (creating it); envelopes keep their ts, events get T0 + i s."""
    with JournalWriter.open(directory, durability="never") as writer:
        start = writer.last_seq
        for i, item in enumerate(events):
            if isinstance(item, Envelope):
                writer.append(item.event, ts=item.ts)
            else:
                writer.append(item, ts=T0 + (start + i) * step_ns)
    return directory


def fresh_dir(base: Path) -> Path:
    """A new directory per hypothesis example (function-scoped tmp_path is shared by all of them)."""
    return Path(tempfile.mkdtemp(dir=base))


def live_states(envs: list[Envelope]) -> list[State]:
    """The state after each envelope, folded incrementally as the service does (index i: seq i + 1)."""
    state, states = initial_state(), []
    for env in envs:
        state, _ = step(state, env)
        states.append(copy_state(state))
    return states
