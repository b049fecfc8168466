"""A deterministic price path per instrument: a seeded random walk on the instrument's tick grid that moves
only when stepped. Paths are named by the instrument's key (catalog.Instrument.key)."""

from __future__ import annotations

import math
import random

from adapters.tws_sim.catalog import by_key

VOLATILITY = 0.001  # per step, relative


def on_grid(price: float, tick: float) -> float:
    """`price` rounded to a multiple of `tick` (never below one tick)."""
    return max(tick, round(round(price / tick) * tick, 10))


class PricePaths:
    """Each instrument has its own generator seeded by (seed, key), so paths do not depend on each other."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._prices: dict[str, float] = {}
        self._rngs: dict[str, random.Random] = {}

    def _start(self, key: str) -> None:
        inst = by_key(key)
        if inst is None:
            raise KeyError(f"no instrument {key!r} in the catalog")
        self._prices[key] = inst.price
        self._rngs[key] = random.Random(f"{self._seed}:{key}")

    def price(self, key: str) -> float:
        if key not in self._prices:
            self._start(key)
        return self._prices[key]

    def set(self, key: str, price: float) -> None:
        if not math.isfinite(price) or price <= 0:
            raise ValueError(f"price must be a positive number, got {price}")
        self.price(key)
        inst = by_key(key)
        assert inst is not None
        self._prices[key] = on_grid(price, inst.min_tick)

    def step(self, n: int = 1) -> list[str]:
        """Advance every instrument priced so far n ticks; returns their keys in a stable order."""
        keys = sorted(self._prices)
        for _ in range(n):
            for key in keys:
                inst = by_key(key)
                assert inst is not None
                move = math.exp(self._rngs[key].gauss(0.0, VOLATILITY))
                self._prices[key] = on_grid(self._prices[key] * move, inst.min_tick)
        return keys

    def snapshot(self) -> dict[str, float]:
        return dict(self._prices)
