"""A deterministic price path per symbol: a seeded random walk that moves only when stepped."""

from __future__ import annotations

import math
import random

from adapters.tws_sim.catalog import start_price

TICK = 0.01
VOLATILITY = 0.001  # per step, relative


class PricePaths:
    """Each symbol has its own generator seeded by (seed, symbol), so paths do not depend on each other."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._prices: dict[str, float] = {}
        self._rngs: dict[str, random.Random] = {}

    def price(self, symbol: str) -> float:
        symbol = symbol.upper()
        if symbol not in self._prices:
            self._prices[symbol] = start_price(symbol)
            self._rngs[symbol] = random.Random(f"{self._seed}:{symbol}")
        return self._prices[symbol]

    def set(self, symbol: str, price: float) -> None:
        if not math.isfinite(price) or price <= 0:
            raise ValueError(f"price must be a positive number, got {price}")
        self.price(symbol)
        self._prices[symbol.upper()] = round(price, 2)

    def step(self, n: int = 1) -> list[str]:
        """Advance every known symbol n ticks; returns the symbols (all of them) in a stable order."""
        symbols = sorted(self._prices)
        for _ in range(n):
            for symbol in symbols:
                move = math.exp(self._rngs[symbol].gauss(0.0, VOLATILITY))
                self._prices[symbol] = max(TICK, round(self._prices[symbol] * move, 2))
        return symbols

    def snapshot(self) -> dict[str, float]:
        return dict(self._prices)
