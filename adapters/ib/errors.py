"""IB error codes -> the class the fold and people reason with.

The libraries disagree on what an error means (ib_insync calls 202 a warning, ib_async marks an order
Cancelled on the informational 10349), so the adapter records the raw code and OUR class, from this one
table (checked against IB's message codes and reference/ib-semantics.md, Round 2). The fold decides what
a class does to an order; `rejection` and `cancel` end one, and the fold may read the raw code for the
refusals that depend on the order's state (110 ends only an order IB never acknowledged).

| class | codes | meaning |
|---|---|---|
| rejection | 103, 200, 201, 203, 451, 10289, 10293 | the order was refused (a new order was never accepted) |
| cancel | 202 | the order is cancelled |
| cancel_failed | 161, 10147, 10148 | a cancel request was refused |
| warning | 104, 105, 110, 165, 321, 329, 399, 404, 434, 492, 10167 | order still live; note only |
| connectivity | 326, 502, 504, 1100, 1101, 1102, 1300, 2110 | the link to TWS / IB changed |
| information | 2100-2199 (but 2110), 10349, 10197 | status text; changes nothing |
| error | anything else (100: over 50 messages/s) | recorded, changes no state alone |

200 (no security definition) and 103 (duplicate order id) come instead of any order (no 201 follows);
451 (value over the Total Value Limit) likewise refuses the order. 110 (price off the tick), 104 (modify
of a filled order), 105 and 321 (modify does not match / request not valid) refuse a *request*: a new
order then never works, a modify is not applied and the order keeps working with its previous
parameters (ib_async notes), so the class stays `warning` and the fold reads the order's state.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from events.schema import ConnectionState, ErrorClass

REJECTION: Final = frozenset({103, 200, 201, 203, 451, 10289, 10293})
CANCEL: Final = frozenset({202})
CANCEL_FAILED: Final = frozenset({161, 10147, 10148})
WARNING: Final = frozenset({104, 105, 110, 165, 321, 329, 399, 404, 434, 492, 10167})
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


# ---------------------------------------------------------------------------------------------------
# The libraries' own log lines. Both log every error code as "Error CODE, reqId N: text" (or "Warning
# ..."), at ERROR unless the code is on their warning list, and then log "Canceled order: ..." at WARNING
# when they think the code ended the order: a user's own cancel (202) and the informational 10349 read
# as ERROR lines. The adapter logs every code as an event, so the lines of codes that are expected and
# change nothing (cancel, information), and the library's "Canceled order" conclusion that follows one,
# are lowered to INFO. So is "orderStatus: No order found": a repeated status of an order the adapter
# has released (retention.py) from the library; the adapter logged it.

_LIBRARY_LINE: Final = re.compile(r"(?:Error|Warning) (-?\d+), reqId")
_LIBRARY_CONCLUSION: Final = "Canceled order:"
_RELEASED_ORDER: Final = "orderStatus: No order found"


class ExpectedCodes(logging.Filter):
    """Lowers the library's log lines about an expected code (202, 2100-2199 but 2110, 10349), and about
    a status of a released order, to INFO."""

    def __init__(self) -> None:
        super().__init__()
        self._after_expected = False  # the previous line was an expected code's

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        found = _LIBRARY_LINE.match(message)
        expected = found is not None and classify(int(found.group(1))) in ("cancel", "information")
        lower = (
            expected
            or (self._after_expected and message.startswith(_LIBRARY_CONCLUSION))
            or message.startswith(_RELEASED_ORDER)
        )
        if lower and record.levelno > logging.INFO:
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        self._after_expected = expected
        return True


def quiet_expected_codes(library: str) -> None:
    """Install `ExpectedCodes` on the library's wrapper logger, once per process."""
    logger = logging.getLogger(f"{library}.wrapper")
    if not any(isinstance(f, ExpectedCodes) for f in logger.filters):
        logger.addFilter(ExpectedCodes())
