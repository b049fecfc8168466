"""Tombstones: the 64-bit hashes of every identifier a retired order had (oms.state.history), kept for
`TOMBSTONE_NS` of event time, so IB repeating a retired order's reports after a reconnect is recognised
and changes nothing, and anything else for a retired order is refused as `RetiredOrder`. Pure reads:
the sweep (oms.state.history) writes them.
"""

from __future__ import annotations

import bisect
import hashlib

from events.schema import ExecutionReported
from oms.state.model import History, State
from oms.state.money import Money

TOMBSTONE_NS = 24 * 60 * 60 * 10**9  # a day of event time: IB repeats a day's executions and commissions


class RetiredOrder(Exception):
    """An event that would change a retired order (a late correction): refused, recorded, visible."""


class Repeated(Exception):
    """IB repeating a retired order's report (after a reconnect), recognised once the step has worked out
    whom it is for: the step changes nothing, so what it worked out is dropped with its plan."""


def ident(kind: str, value: object) -> int:
    """A stable 64-bit hash of one identifier (Python's `hash` of a str changes between runs)."""
    digest = hashlib.blake2b(f"{kind}{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def retired(history: History, kind: str, value: object) -> bool:
    """Whether an identifier belonged to a retired order (within the tombstone horizon)."""
    if not history.recent and not history.sealed:
        return False
    key = ident(kind, value)
    if key in history.recent:
        return True
    for block in history.sealed:
        hashes = memoryview(block.hashes).cast("Q")
        at = bisect.bisect_left(hashes, key)
        if at < len(hashes) and hashes[at] == key:
            return True
    return False


def retired_ids(state: State, order_id: int, perm_id: int, client_id: int, order_ref: str) -> bool:
    """Whether an IB callback names a retired order (by permId, orderRef or this session's orderId)."""
    history = state.history
    return (
        (perm_id > 0 and retired(history, "p", perm_id))
        or (bool(order_ref) and retired(history, "c", order_ref))
        or (order_id > 0 and retired(history, "o", f"{client_id}:{order_id}"))
    )


def taken(state: State, client_order_id: str) -> bool:
    """Whether a client order id is in use: by a live order, or a retired one within the horizon."""
    return client_order_id in state.orders or retired(state.history, "c", client_order_id)


def commission_ident(exec_id: str, commission: Money, broker_realized_pnl: Money) -> str:
    """A fill's commission as an identifier a tombstone can keep: a repeated report must match it."""
    return f"{exec_id}|{sorted(commission.items())}|{sorted(broker_realized_pnl.items())}"


def repeated_execution(state: State, ev: ExecutionReported, base: str) -> bool:
    """True for IB repeating a retired order's execution (after a reconnect): nothing to do. Anything
    else for a retired order, such as a correction (`base`: the fill's key) of one of its fills, raises
    `RetiredOrder`."""
    past = state.history
    if retired(past, "e", ev.exec_id):
        return True
    if (
        retired(past, "b", base)
        or retired(past, "n", base)
        or retired_ids(state, ev.order_id, ev.perm_id, ev.client_id, ev.order_ref)
    ):
        raise RetiredOrder(
            f"execution {ev.exec_id} changes a fill of an order already retired to history: not applied"
        )
    return False
