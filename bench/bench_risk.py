"""What the risk checks cost, beside the same with every check off, measured in the same run.

1. place -> durable ack: a DEALER in another process places bracket halves (a limit parent held for
   its stop child, then the child), each waiting for the durable ack (durability `group`: an fsync per
   ack); the service runs with every limit of docs/operations.md "Risk limits" set (none refuses), then
   with every limit off. Target: p50 and p99 within 1.1x of checks off.
2. one risk decision: `intake.decide_place` on a state holding working orders (in-process, no I/O),
   with every check on and with every check off.

The broker is bench_service's stand-in that accepts orders; IB's NetLiquidation, exchange rate and
UnrealizedPnL are reported first, as IB does on connect, so no check fails closed. Rounds alternate
on and off, so both see the same machine.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import msgspec
import zmq
from rich.console import Console
from rich.table import Table

from bench.bench_service import EPHEMERAL, _NullBroker, _pcts, _result, _wait_ready
from events.schema import AccountValueReported, OrderRequested
from oms.protocol import PlaceRequest

HELPER = "from bench.bench_risk import _requester; _requester()"
ACCOUNT = "DU123456"
EVERY_CHECK = {
    "max_quantity": "1000000",
    "max_notional": "1000000000",
    "max_position": "1000000",
    "max_position_value": "1000000000",
    "max_position_pct_nlv": "100",
    "max_risk_per_trade_pct_nlv": "5",
    "max_orders_per_minute": 1_000_000,
    "max_working_orders": 1_000_000,
    "daily_loss_limit": "1000000",
}
OFF = {"max_quantity": None, "max_notional": None}
IB_FIGURES = (
    ("NetLiquidation", "1000000.00", "USD"),
    ("ExchangeRate", "1.00", "USD"),
    ("UnrealizedPnL", "0.00", "BASE"),
)


def _request(i: int) -> dict[str, Any]:
    """Even: a parent held for its stop child (transmit false); odd: that child, with its stop."""
    common = {"contract": {"symbol": f"SYM{i // 2 % 50}"}, "quantity": 1, "strategy_id": "bench"}
    if i % 2 == 0:
        return {"op": "place", "client_order_id": f"b-{i}", "side": "BUY", "order_type": "LMT",
                "limit_price": 1.0, "transmit": False, **common}  # fmt: skip
    return {"op": "place", "client_order_id": f"b-{i}", "side": "SELL", "order_type": "STP",
            "stop_price": 0.9, "parent_client_order_id": f"b-{i - 1}", **common}  # fmt: skip


def _requester() -> None:
    endpoint, count = sys.argv[1], int(sys.argv[2])
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.connect(endpoint)
    print("ready", flush=True)
    times = []
    for i in range(count + 50):
        start = time.perf_counter_ns()
        sock.send(msgspec.msgpack.encode(_request(i)))
        reply = msgspec.msgpack.decode(sock.recv())
        assert reply.get("ok"), reply
        if i >= 50:  # warm-up excluded
            times.append(time.perf_counter_ns() - start)
    print(msgspec.json.encode({"lat": times}).decode(), flush=True)
    ctx.destroy(linger=0)


async def _service(data_dir: str, risk: dict[str, Any]) -> Any:
    from oms.service.app import Service
    from oms.service.config import load_config

    overrides = {"data_dir": data_dir, "pub": EPHEMERAL, "router": EPHEMERAL, "account": ACCOUNT}
    config = load_config(env={}, overrides={**overrides, "risk": risk})
    service = Service(config, lambda sink, _state: _NullBroker(sink))
    await service.start()
    for key, value, currency in IB_FIGURES:
        service.pipeline.append(
            AccountValueReported(account=ACCOUNT, key=key, value=value, currency=currency)
        )
    return service


async def _acks(count: int, risk: dict[str, Any]) -> list[int]:
    with tempfile.TemporaryDirectory() as tmp:
        service = await _service(tmp, risk)
        proc = subprocess.Popen(
            [sys.executable, "-c", HELPER, service.endpoints.router, str(count)],
            stdout=subprocess.PIPE,
            text=True,
        )
        await _wait_ready(proc)
        result = await asyncio.to_thread(_result, proc)
        await service.stop()
    lat: list[int] = result["lat"]
    return lat


async def _decisions(count: int, risk: dict[str, Any]) -> list[int]:
    """`decide_place` alone, on the state and book of a service holding `count` working orders."""
    from oms.service import intake

    with tempfile.TemporaryDirectory() as tmp:
        service = await _service(tmp, risk)
        handlers, limits = service.handlers, service.config.risk
        for i in range(count):  # working orders to look through, as the ack benchmark leaves them
            await handlers.place(msgspec.convert(_request(i), PlaceRequest))
        state, book = service.pipeline.state, handlers.book
        requests = [msgspec.convert(_request(i), PlaceRequest) for i in range(count)]  # as new ids
        times = []
        for i, req in enumerate(requests):
            start = time.perf_counter_ns()
            decision = intake.decide_place(req, state, limits, ACCOUNT, f"d-{i}", None, None, book)
            times.append(time.perf_counter_ns() - start)
            assert isinstance(decision, OrderRequested), decision  # every check ran, none refused
        await service.stop()
    return times


def main(short: bool) -> None:
    acks, decisions, rounds = (300, 1_000, 1) if short else (2_000, 5_000, 3)
    on: list[list[int]] = []
    off: list[list[int]] = []
    for _ in range(rounds):
        off.append(asyncio.run(_acks(acks, OFF)))
        on.append(asyncio.run(_acks(acks, EVERY_CHECK)))
    decided_off = asyncio.run(_decisions(decisions, OFF))
    decided_on = asyncio.run(_decisions(decisions, EVERY_CHECK))

    def median(runs: list[list[int]]) -> tuple[float, float]:
        pcts = [_pcts(run) for run in runs]
        return statistics.median(p[0] for p in pcts), statistics.median(p[1] for p in pcts)

    (on50, on99), (off50, off99) = median(on), median(off)
    (d_on50, d_on99), (d_off50, d_off99) = _pcts(decided_on), _pcts(decided_off)
    title = f"risk checks ({'short' if short else 'full'}; durability group; median of {rounds} round(s))"
    table = Table(title=title)
    for column in ("measure", "p50 us", "p99 us", "vs checks off (target <= 1.1x)"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    table.add_row(
        f"place -> durable ack, checks off ({acks} orders)", f"{off50:.0f}", f"{off99:.0f}", "baseline"
    )
    table.add_row(
        "place -> durable ack, every check on", f"{on50:.0f}", f"{on99:.0f}",
        f"{on50 / off50:.2f}x / {on99 / off99:.2f}x",
    )  # fmt: skip
    table.add_row(f"one risk decision, checks off ({decisions} working)", f"{d_off50:.1f}", f"{d_off99:.1f}",
                  "baseline")  # fmt: skip
    table.add_row(
        "one risk decision, every check on", f"{d_on50:.1f}", f"{d_on99:.1f}",
        f"{d_on50 / d_off50:.2f}x / {d_on99 / d_off99:.2f}x",
    )  # fmt: skip
    Console(width=140).print(table)


if __name__ == "__main__":
    main(short="--short" in sys.argv)
