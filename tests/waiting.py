"""Waiting on a condition with a timeout: the only way tests synchronize (never a bare sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.005, what: str = ""
) -> None:
    for _ in _polls(predicate, timeout, what):
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.005, what: str = ""
) -> None:
    for _ in _polls(predicate, timeout, what):
        await asyncio.sleep(interval)


def _polls(predicate: Callable[[], object], timeout: float, what: str) -> Iterator[None]:
    """One step per failed check of `predicate` (the caller waits its own way: a thread sleeps, a coroutine
    yields to the loop); an AssertionError naming `what` once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        yield
