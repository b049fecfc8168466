"""One order's story: every event that touched it, in log order, with the order as the fold left it.

An order is found by any of its names: our client order id, IB's orderId (per clientId and session, so
it may name several orders across sessions) or a permId. In a journal, the segment indexes give the
order's own events (`events.lookup`), and only those are read and folded from the initial state. Other
sources (an archive, a mirror) fold: the ids come from the final state (from a snapshot when there is
one); then one fold collects the events (see `replay.links`). That fold starts from the newest snapshot
before the orders were created when all of them are ours (nothing can name an order of ours before it
exists); an external order may have a commission logged before its first execution, so its fold starts
at the beginning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import msgspec

from events.lookup import order_events
from events.schema import Envelope
from oms.state.codec import decode_state
from oms.state.fold import step
from oms.state.model import Order, State, initial_state
from oms.state.queries import every_order
from replay.links import Linker
from replay.source import JournalSource, Source
from replay.states import state_at


class UnknownOrder(LookupError):
    code = "unknown_order"


class Entry(msgspec.Struct, frozen=True):
    env: Envelope
    order: Order | None  # the order after this event (None: it did not exist yet)
    changed: bool  # whether this event changed the order (else it only named it)


class Timeline(msgspec.Struct, frozen=True):
    client_order_id: str
    entries: list[Entry]


def find_orders(orders: Mapping[str, Order], ident: str) -> list[str]:
    """Client order ids of the orders named `ident`, by client order id, orderId or permId."""
    if ident in orders:
        return [ident]
    if not ident.lstrip("-").isdigit():
        return []
    number = int(ident)
    return [coid for coid, order in orders.items() if order.order_id == number or number in order.perm_ids]


def order_timelines(source: Source, ident: str) -> list[Timeline]:
    if isinstance(source, JournalSource):
        return indexed_timelines(source.path, ident)
    return folded_timelines(source, ident)


def indexed_timelines(journal: Path, ident: str) -> list[Timeline]:
    """From the order's own events, found by the segment indexes: a few frames, whatever the log's size."""
    events = order_events(journal, ident)
    keys = find_orders(every_order(events), ident)
    if not keys:
        raise _unknown(ident)
    return timelines_of(events, keys, initial_state())


def folded_timelines(source: Source, ident: str) -> list[Timeline]:
    """By folding the source: to its end to find the order (live at the end, or retired on the way),
    then from before it to collect its events."""
    final = state_at(source, source.last_seq())
    orders: Mapping[str, Order] = final.orders
    keys = find_orders(orders, ident)
    if not keys:  # retired before the end: only a fold from the start still meets it
        orders = every_order(source.read())
        keys = find_orders(orders, ident)
    if not keys:
        raise _unknown(ident)
    start = None
    if not any(orders[key].external for key in keys):
        start = source.snapshot(min(orders[key].created_seq for key in keys) - 1)
    state = decode_state(start[1]) if start else initial_state()
    return timelines_of(source.read(state.seq + 1), keys, state)


def _unknown(ident: str) -> UnknownOrder:
    return UnknownOrder(f"no order is named {ident!r} (client order id, orderId or permId)")


def timelines_of(events: Iterable[Envelope], keys: list[str], state: State) -> list[Timeline]:
    """The timelines of `keys`, folding `events` on from `state` (a state before any of them existed)."""
    wanted = set(keys)
    found: dict[str, dict[int, tuple[Envelope, Order | None]]] = {key: {} for key in keys}
    linker = Linker()
    for env in events:
        state, changes = step(state, env)
        changed = {
            c.client_order_id: c for c in changes if isinstance(c, Order) and c.client_order_id in wanted
        }
        for linked, key in linker.link(env, changes, state):
            if key in wanted:
                found[key][linked.seq] = (linked, changed.get(key) if linked is env else None)
    return [Timeline(key, _carry_forward(found[key])) for key in keys]


def _carry_forward(by_seq: dict[int, tuple[Envelope, Order | None]]) -> list[Entry]:
    """Give every entry the order as of its seq: the latest change at or before it."""
    entries: list[Entry] = []
    current: Order | None = None
    for seq in sorted(by_seq):
        env, change = by_seq[seq]
        if change is not None:
            current = change
        entries.append(Entry(env, current, change is not None))
    return entries
