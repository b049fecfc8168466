"""Shared by the tests/test_ib_*.py modules: the (library, server version) matrix, a sink that does what
the service does (envelope + fold), a simulator + adapter harness, and real capture frames read for the
client's decoder.

The matrix: every end-to-end test runs with ib_async at server version 178 and ib_insync at 176 (the
versions users run: `MAIN`); the smaller set marked `with_157` also runs both at 157. A cell whose
version the simulator cannot speak yet is skipped, with that reason.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

import msgspec
import pytest

from adapters.ib.adapter import Backoff, IBAdapter
from adapters.tws_sim import SimConfig, TwsSimulator
from events.schema import AnyEvent, Contract, Envelope, Event, OrderRequested
from oms.state.fold import step
from oms.state.model import State, initial_state
from tests.waiting import async_wait_until

E = TypeVar("E", bound=Event)
ACCOUNT = "DU123456"
# strict decoders (tws-protocol.md 2.3): execDetails has 31 fields below v178, commissionReport 8
_STRICT_LENGTH = {"11": 31, "59": 8}


class Cell(NamedTuple):
    """One cell of the test matrix: the client library and the server version the simulator offers."""

    library: str
    server_version: int

    def config(self, config: SimConfig | None = None) -> SimConfig:
        return msgspec.structs.replace(config or SimConfig(), max_server_version=self.server_version)


MAIN: tuple[Cell, ...] = (Cell("ib_async", 178), Cell("ib_insync", 176))
OLD: tuple[Cell, ...] = (Cell("ib_async", 157), Cell("ib_insync", 157))


def sim_speaks(version: int) -> bool:
    try:
        SimConfig(max_server_version=version)
    except ValueError:
        return False
    return True


def _param(cell: Cell) -> Any:
    marks = (
        ()
        if sim_speaks(cell.server_version)
        else pytest.mark.skip(reason=f"simulator lacks server version {cell.server_version}")
    )
    return pytest.param(cell, id=f"{cell.library}-v{cell.server_version}", marks=marks)


F = TypeVar("F", bound=Callable[..., Any])
matrix: Callable[[F], F] = pytest.mark.parametrize("ib", [_param(c) for c in MAIN])
with_157: Callable[[F], F] = pytest.mark.parametrize("ib", [_param(c) for c in (*MAIN, *OLD)])


class FoldingSink:
    """The service's sink minus the journal: number each event, fold it, keep it."""

    def __init__(self, state: State | None = None) -> None:
        self.state = state or initial_state()
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        # every Event the adapter makes is one of the kinds of AnyEvent, which the sink's type cannot say
        self.state, _ = step(self.state, Envelope(self.state.seq + 1, time.time_ns(), cast(AnyEvent, event)))

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]


def request(
    coid: str, symbol: str = "AAPL", side: str = "BUY", qty: int | str | Decimal = 10, **kw: Any
) -> OrderRequested:
    """An order request as intake builds one: the quantity a Decimal (give a fraction as text, "1.5")."""
    return OrderRequested(
        client_order_id=coid,
        strategy_id="s1",
        account=ACCOUNT,
        contract=Contract(symbol=symbol),
        side=side,  # type: ignore[arg-type]
        quantity=Decimal(qty),
        **kw,
    )


@contextlib.asynccontextmanager
async def session(
    ib: Cell, config: SimConfig | None = None, sink: FoldingSink | None = None, **adapter_kw: Any
) -> AsyncIterator[tuple[TwsSimulator, IBAdapter, FoldingSink]]:
    """A simulator at the cell's server version and an adapter (client id 7) connected to it."""
    sim = TwsSimulator(ib.config(config))
    await sim.start(port=0)
    adapter_kw.setdefault("reconnect", Backoff(initial=0.02, max_delay=0.2, attempts=0))
    try:
        async with connected(sim, ib, 7, sink, **adapter_kw) as (adapter, sink):
            assert adapter.ib.client.serverVersion() == ib.server_version  # the cell really runs there
            yield sim, adapter, sink
    finally:
        await sim.stop()


@contextlib.asynccontextmanager
async def connected(
    sim: TwsSimulator, ib: Cell, client_id: int, sink: FoldingSink | None = None, **adapter_kw: Any
) -> AsyncIterator[tuple[IBAdapter, FoldingSink]]:
    """An adapter with its own folding sink, connected to a running simulator; disconnected after."""
    sink = sink or FoldingSink()
    adapter = IBAdapter(
        "127.0.0.1",
        sim.port,
        client_id,
        sink=sink,
        state_provider=lambda: sink.state,
        library=ib.library,
        **adapter_kw,
    )
    try:
        await adapter.connect(timeout=5)
        yield adapter, sink
    finally:
        await adapter.disconnect()


async def until(predicate: Any, what: str, timeout: float = 10.0) -> None:
    await async_wait_until(predicate, timeout=timeout, what=what)


def capture_frames(path: Path) -> list[list[str]]:
    """A capture file as field lists: nautilus files separate fields with the literal text `\\x00`,
    rust-ibapi lines with `|`; both end every field with the separator. Test-string artifacts (an extra
    empty field) are trimmed where the client unpacks strictly."""
    text = path.read_text()
    lines = [text.strip("\r\n")] if "\\x00" in text else [ln for ln in text.splitlines() if ln.strip()]
    sep = "\\x00" if "\\x00" in text else "|"
    frames = []
    for line in lines:
        fields = line.split(sep)[:-1]
        strict = _STRICT_LENGTH.get(fields[0])
        while strict and len(fields) > strict and fields[-1] == "":
            fields.pop()
        frames.append(fields)
    return frames


def server_version_of(path: Path) -> int:
    """The layout a capture was recorded at (its file name says so; nautilus files are 170-176)."""
    for version in (163, 176):
        if f"_v{version}" in path.name:
            return version
    return 176
