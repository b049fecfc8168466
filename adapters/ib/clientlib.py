"""The one place that imports an IB client library: ib_async (default) or ib_insync, chosen by name.

Both expose the same classes under the same names (ib_async began as a rename of ib_insync 0.9.86),
so the rest of the adapter works with whichever `ClientLib` it is handed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

Library = Literal["ib_async", "ib_insync"]
LIBRARIES: tuple[Library, ...] = ("ib_async", "ib_insync")


@dataclass(frozen=True, slots=True)
class ClientLib:
    """The classes the adapter uses from one library."""

    name: Library
    IB: Any
    Contract: Any
    Order: Any
    TagValue: Any
    ExecutionFilter: Any
    Decoder: Any
    version: str


def load(name: str = "ib_async") -> ClientLib:
    if name not in LIBRARIES:
        raise ValueError(f"unknown IB client library {name!r}; choose one of {', '.join(LIBRARIES)}")
    root = importlib.import_module(name)
    decoder = importlib.import_module(f"{name}.decoder")
    return ClientLib(
        name=name,  # type: ignore[arg-type]
        IB=root.IB,
        Contract=root.Contract,
        Order=root.Order,
        TagValue=root.TagValue,
        ExecutionFilter=root.ExecutionFilter,
        Decoder=decoder.Decoder,
        version=str(getattr(root, "__version__", "")),
    )
