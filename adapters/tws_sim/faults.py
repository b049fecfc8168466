"""Fault injection: which faults exist, their probabilities, and seeded (hence repeatable) decisions."""

from __future__ import annotations

import random
from collections import Counter

import msgspec

FAULT_NAMES: tuple[str, ...] = (
    "disconnect",  # after acknowledging an order: error 1100, drop the client; the order keeps working
    "reject",  # error 201 with a reason and orderStatus Cancelled instead of working the order
    "duplicate_exec",  # every execDetails of a fill is sent twice
    "exec_first",  # execDetails before openOrder and orderStatus
    "commission_late",  # commissionReport after everything else
    "commission_early",  # commissionReport before openOrder (and before orderStatus)
    "correction",  # each execution `.01` is followed by a `.02` correction (same prefix, price moved)
    "info_10349",  # the informational error 10349 on a live order
    "status_repeat",  # every orderStatus sent twice
    "status_skip",  # orderStatus left out
)


class FaultConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Probability in [0, 1] of each fault, drawn per order from a generator seeded with `seed`."""

    seed: int = 0
    disconnect: float = 0.0
    reject: float = 0.0
    duplicate_exec: float = 0.0
    exec_first: float = 0.0
    commission_late: float = 0.0
    commission_early: float = 0.0
    correction: float = 0.0
    info_10349: float = 0.0
    status_repeat: float = 0.0
    status_skip: float = 0.0


def parse_fault_args(specs: list[str], seed: int = 0) -> FaultConfig:
    """`["reject=0.2", "duplicate_exec=1"]` (the `--fault NAME=P` options) as a FaultConfig."""
    probs: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip().replace("-", "_")
        if name not in FAULT_NAMES:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")
        prob = float(value) if sep else 1.0
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"fault {name} probability {prob} is not in [0, 1]")
        probs[name] = prob
    return msgspec.convert({"seed": seed, **probs}, FaultConfig)


class FaultDice:
    """Seeded decisions plus one-shot forced faults, so a test can make exactly one order misbehave."""

    def __init__(self, config: FaultConfig) -> None:
        self._config = config
        self._rng = random.Random(config.seed)
        self._forced: Counter[str] = Counter()

    def force(self, name: str, times: int = 1) -> None:
        if name not in FAULT_NAMES:
            raise ValueError(f"unknown fault {name!r}")
        self._forced[name] += times

    def draw(self) -> frozenset[str]:
        """The faults that hit the next order; every configured fault consumes one draw, hit or not."""
        hits = set()
        for name in FAULT_NAMES:
            prob: float = getattr(self._config, name)
            if prob > 0.0 and self._rng.random() < prob:
                hits.add(name)
            if self._forced[name] > 0:
                self._forced[name] -= 1
                hits.add(name)
        return frozenset(hits)
