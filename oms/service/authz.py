"""Who may do what, over CURVE: each client key is bound in the configuration to the strategies it may
act for (`[curve.clients.NAME]`, NAME.key in `authorized_clients`).

- queries (ping, status, snapshot, orders, positions, events): every admitted key;
- place, modify, cancel, cancel_all of one strategy: only within the key's strategies;
- the kill switch and cancel_all across strategies: only keys marked `admin` (which may also act for
  any strategy).

Without CURVE (loopback) every local process is trusted, as before: there is no key to tell them apart.
A decision is a pure function of the request, the key's grant and the state.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import zmq.auth

from oms.protocol import (
    CancelAllRequest,
    CancelRequest,
    KillSwitchRequest,
    ModifyRequest,
    PlaceRequest,
    Request,
)
from oms.service.config import ConfigError, CurveConfig
from oms.state.model import State


class Grant(msgspec.Struct, frozen=True):
    name: str  # the key file's stem
    strategies: frozenset[str] = frozenset()
    admin: bool = False


def load_grants(curve: CurveConfig) -> dict[str, Grant] | None:
    """Z85 public key -> grant for every allowed client key; None when CURVE is off (all trusted)."""
    if not curve.enabled:
        return None
    folder = Path(curve.authorized_clients or "")
    keys = {path.stem: zmq.auth.load_certificate(path)[0].decode() for path in sorted(folder.glob("*.key"))}
    unknown = sorted(set(curve.clients) - set(keys))
    if unknown:
        raise ConfigError(
            f"curve.clients names {', '.join(unknown)}, but {folder} holds no such .key file "
            f"(it holds {', '.join(sorted(keys)) or 'none'})"
        )
    grants = {}
    for name, key in keys.items():
        grant = curve.clients.get(name)
        strategies = frozenset(grant.strategies) if grant else frozenset()
        grants[key] = Grant(name, strategies, bool(grant and grant.admin))
    return grants


def denial(request: Request, grant: Grant | None, state: State) -> str | None:
    """Why this key may not make this request (None: it may)."""
    who = f"client key {grant.name!r}" if grant else "this client key"
    if grant is not None and grant.admin:
        return None
    if isinstance(request, KillSwitchRequest):
        return f"{who} may not use the kill switch (admin keys only)"
    if isinstance(request, CancelAllRequest):
        if request.strategy_id is None:
            return f"{who} may not cancel every strategy's orders (admin keys only); name a strategy"
        return _strategy(who, grant, request.strategy_id)
    if isinstance(request, PlaceRequest):
        return _strategy(who, grant, request.strategy_id)
    if isinstance(request, ModifyRequest | CancelRequest):
        order = state.orders.get(request.client_order_id)
        if order is None:
            return None  # answered `unknown_order`, as for anyone
        return _strategy(who, grant, order.strategy_id)
    return None


def _strategy(who: str, grant: Grant | None, strategy_id: str) -> str | None:
    if grant is not None and strategy_id in grant.strategies:
        return None
    allowed = ", ".join(sorted(grant.strategies)) if grant and grant.strategies else "none (queries only)"
    return f"{who} may not act for strategy {strategy_id!r} (its strategies: {allowed})"
