"""What `oms check` finds: connect to a TWS / IB Gateway as the service would, and say what works."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from adapters.ib.adapter import Backoff, IBAdapter
from adapters.ib.wire import WireRecorder
from events.schema import BrokerError, ConnectionChanged, Event, ReconciliationFinished

Row = tuple[str, bool | None, str]  # (check, passed (None: information only), detail)


def check(
    host: str, port: int, client_id: int, library: str, timeout: float, wire: WireRecorder | None = None
) -> list[Row]:
    """Connect once (no retries), synchronize, disconnect; the report of what the adapter logged (and,
    with `wire`, every byte exchanged)."""
    logging.getLogger(library).setLevel(logging.CRITICAL)  # the report says it all, once
    events: list[Event] = []
    adapter = IBAdapter(
        host,
        port,
        client_id,
        sink=events.append,
        library=library,
        backoff=Backoff(attempts=1),
        request_timeout=timeout,
        wire=wire,
    )

    async def attempt() -> BaseException | None:
        try:
            await adapter.connect(timeout=timeout)
            return None
        except Exception as exc:
            return exc
        finally:
            await adapter.disconnect()

    return report(events, asyncio.run(attempt()))


def report(events: Sequence[Event], failure: BaseException | None) -> list[Row]:
    """The rows from what the adapter logged."""
    connected = [e for e in events if isinstance(e, ConnectionChanged) and e.state == "connected"]
    rows: list[Row] = [
        ("connect", bool(connected) and failure is None, str(failure) if failure else "connected")
    ]
    if connected:
        rows.append(("server version", True, str(connected[0].server_version)))
        rows.append(("accounts", bool(connected[0].accounts), ", ".join(connected[0].accounts) or "none"))
    finished = [e for e in events if isinstance(e, ReconciliationFinished)]
    if finished:
        f = finished[-1]
        counts = f"{f.orders} open orders, {f.executions} executions, {f.positions} positions"
        rows.append(("synchronize", f.ok, counts if f.ok else f.detail))
    for e in events:
        if isinstance(e, BrokerError):
            quiet = e.error_class in ("information", "warning", "connectivity")
            rows.append((f"TWS says {e.code} ({e.error_class})", None if quiet else False, e.message))
    return rows
