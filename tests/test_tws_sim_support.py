"""Shared helpers for the TWS simulator tests: a simulator plus a real IB client, inside asyncio.run."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

from adapters.tws_sim import SimConfig, TwsSimulator
from tests.waiting import async_wait_until

CLIENT_LIBS = ("ib_async", "ib_insync")


def run(test: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    """Run an async test body on a fresh event loop, bounded by a timeout."""

    async def bounded() -> Any:
        return await asyncio.wait_for(test(), timeout)

    return asyncio.run(bounded())


def ib_lib(name: str) -> ModuleType:
    return importlib.import_module(name)


@asynccontextmanager
async def simulator(config: SimConfig | None = None) -> AsyncIterator[TwsSimulator]:
    sim = TwsSimulator(config or SimConfig())
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def connect(lib: ModuleType, sim: TwsSimulator, client_id: int = 7) -> Any:
    ib = lib.IB()
    await ib.connectAsync("127.0.0.1", sim.port, clientId=client_id, timeout=5)
    return ib


@asynccontextmanager
async def sim_client(
    lib_name: str, config: SimConfig | None = None, client_id: int = 7
) -> AsyncIterator[tuple[TwsSimulator, Any, ModuleType]]:
    lib = ib_lib(lib_name)
    async with simulator(config) as sim:
        ib = await connect(lib, sim, client_id)
        try:
            yield sim, ib, lib
        finally:
            ib.disconnect()


async def wait_for(predicate: Callable[[], object], what: str = "", timeout: float = 5.0) -> None:
    await async_wait_until(predicate, timeout=timeout, what=what)


class ErrorLog(logging.Handler):
    """ERROR records of a client library's loggers (e.g. the decoder's "Error handling fields")."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


def record_messages(ib: Any) -> list[list[str]]:
    """Every frame the client decodes, in arrival order (a hook on its decoder's `interpret`)."""
    seen: list[list[str]] = []
    decoder = ib.client.decoder
    original = decoder.interpret

    def hooked(fields: list[str]) -> None:
        seen.append(list(fields))
        original(fields)

    decoder.interpret = hooked
    return seen


def order_flow(messages: list[list[str]]) -> list[str]:
    """The order-related message names, in order: open/status/exec/commission/error:<code>."""
    names = {"5": "open", "3": "status", "11": "exec", "59": "commission"}
    out = []
    for fields in messages:
        if fields[0] in names:
            out.append(names[fields[0]])
        elif fields[0] == "4":
            out.append(f"error:{fields[3]}")
    return out
