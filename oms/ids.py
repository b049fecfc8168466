"""Client order ids: unique forever (IB echoes them back as `orderRef`), readable, and sortable by time.

One generator for the client library and the service (which names an order the client left unnamed).
"""

from __future__ import annotations

import secrets
import time


def new_client_order_id(strategy_id: str) -> str:
    """`<strategy>-<ms since epoch, hex>-<48 random bits, hex>`: uuid7's layout, short for a log."""
    return f"{strategy_id[:39]}-{time.time_ns() // 1_000_000:011x}-{secrets.token_hex(6)}"  # <= 64 chars
