"""IB error codes -> the class the fold and people reason with.

The libraries disagree on what an error means (ib_insync calls 202 a warning, ib_async marks an order
Cancelled on the informational 10349), so the adapter records the raw code and OUR class, from this one
table. The fold decides what a class does to an order (only `rejection` and `cancel` end one).

| class | codes | meaning |
|---|---|---|
| rejection | 201, 203, 10289, 10293 | the order was refused |
| cancel | 202 | the order is cancelled |
| cancel_failed | 161, 10147, 10148 | a cancel request was refused |
| warning | 105, 110, 165, 321, 329, 399, 404, 434, 492, 10167 | order still live; note only |
| connectivity | 326, 502, 504, 1100, 1101, 1102, 1300, 2110 | the link to TWS / IB changed |
| information | 2100-2199 (but 2110), 10349, 10197 | status text; changes nothing |
| error | anything else | recorded, changes no state alone |

321 ("Error validating request") is a warning: after a modify it leaves the order live (ib_async notes).
"""

from __future__ import annotations

from typing import Final

from events.schema import ConnectionState, ErrorClass

REJECTION: Final = frozenset({201, 203, 10289, 10293})
CANCEL: Final = frozenset({202})
CANCEL_FAILED: Final = frozenset({161, 10147, 10148})
WARNING: Final = frozenset({105, 110, 165, 321, 329, 399, 404, 434, 492, 10167})
CONNECTIVITY: Final = frozenset({326, 502, 504, 1100, 1101, 1102, 1300, 2110})
INFORMATION: Final = frozenset({10349, 10197})
INFORMATION_RANGE: Final = range(2100, 2200)

CLIENT_ID_IN_USE: Final = 326

_TABLE: Final[dict[int, ErrorClass]] = {
    **dict.fromkeys(REJECTION, "rejection"),
    **dict.fromkeys(CANCEL, "cancel"),
    **dict.fromkeys(CANCEL_FAILED, "cancel_failed"),
    **dict.fromkeys(WARNING, "warning"),
    **dict.fromkeys(CONNECTIVITY, "connectivity"),
    **dict.fromkeys(INFORMATION, "information"),
}

# What a connectivity code says about the TWS <-> IB link (the socket to TWS is still up).
LINK_STATE: Final[dict[int, ConnectionState]] = {
    1100: "lost",
    2110: "lost",
    1300: "lost",
    1101: "restored_data_lost",
    1102: "restored",
}


def classify(code: int) -> ErrorClass:
    """The class of an IB error code (table above); explicit codes win over the 2100-2199 range."""
    found = _TABLE.get(code)
    if found is not None:
        return found
    if code in INFORMATION_RANGE:
        return "information"
    return "error"


def client_id_in_use_message(client_id: int) -> str:
    return f"client id {client_id} is already in use"
