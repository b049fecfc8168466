"""Fold throughput, decode+fold throughput and the memory of a large state, beside baselines.

A synthetic session, 8 events per order as IB sends them for a filled limit order (request, sent,
openOrder, Submitted, execution, commission, Filled, a second openOrder: the shape of the real TWS
capture of a filled order, which has one more openOrder), over 50 instruments so positions open, close
and flip. Baselines measured in the same run: a bare loop doing one dict lookup per event, the same
session's writes alone without any rule (bench/writes_alone.py: a ceiling on the fold's speed), and
msgspec decoding alone.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal

from msgspec.structs import replace

from bench.writes_alone import writes_alone
from events.codec import decode, encode
from events.schema import (
    AnyEvent,
    CommissionReported,
    Contract,
    Envelope,
    ExecutionReported,
    OpenOrderReported,
    OrderRequested,
    OrderSent,
    OrderStatusReported,
    Side,
)
from oms.state.fold import fold, step
from oms.state.model import initial_state

CLIENT_ID = 7


def stream(orders: int, instruments: int = 50) -> Iterator[Envelope]:
    """The session's envelopes, made one order at a time (so a large state can be measured alone)."""
    seq = 0
    for i in range(orders):
        coid, oid, perm = f"o{i}", 1000 + i, 500_000 + i
        sym = f"S{i % instruments}"
        contract, ib_contract = Contract(symbol=sym), Contract(symbol=sym, con_id=10_000 + i % instruments)
        side: Side = "BUY" if (i // 50) % 3 else "SELL"
        qty = Decimal(100 + i % 7)
        acknowledged = OpenOrderReported(
            order_id=oid,
            perm_id=perm,
            client_id=CLIENT_ID,
            order_ref=coid,
            account="DU1",
            contract=ib_contract,
            side=side,
            quantity=qty,
            order_type="LMT",
            limit_price=10.0,
            status="Submitted",
        )
        events: list[AnyEvent] = [
            OrderRequested(
                client_order_id=coid,
                strategy_id=f"s{i % 4}",
                account="DU1",
                contract=contract,
                side=side,
                quantity=qty,
                order_type="LMT",
                limit_price=10.0,
            ),
            OrderSent(client_order_id=coid, order_id=oid, client_id=CLIENT_ID),
            acknowledged,
            OrderStatusReported(
                order_id=oid,
                perm_id=perm,
                client_id=CLIENT_ID,
                status="Submitted",
                filled=Decimal(0),
                remaining=qty,
            ),
            ExecutionReported(
                exec_id=f"0001.{i:08x}.01",
                order_id=oid,
                perm_id=perm,
                client_id=CLIENT_ID,
                order_ref=coid,
                account="DU1",
                contract=ib_contract,
                side="BOT" if side == "BUY" else "SLD",
                shares=qty,
                price=10.0 + i % 13,
            ),
            CommissionReported(exec_id=f"0001.{i:08x}.01", commission=1.0, currency="USD"),
            OrderStatusReported(
                order_id=oid,
                perm_id=perm,
                client_id=CLIENT_ID,
                status="Filled",
                filled=qty,
                remaining=Decimal(0),
                avg_fill_price=10.0,
            ),
            replace(acknowledged, status="Filled"),
        ]
        for ev in events:
            seq += 1
            yield Envelope(seq, seq * 1000, ev)


def _ladder(resting: int, orders: int, repeat: int) -> float:
    """Seconds (best of `repeat`) to fold `orders` filled orders on one instrument where `resting`
    orders of both sides are working, acknowledged by IB, as a market maker's ladder is."""
    envs = list(stream(resting + orders, instruments=1))
    rest = [e for i, e in enumerate(envs[: 8 * resting]) if i % 8 < 4]  # request .. Submitted
    best = float("inf")
    for _ in range(repeat):
        state = fold(rest)
        start = time.perf_counter()
        fold(envs[8 * resting :], state)
        best = min(best, time.perf_counter() - start)
    return best


def _best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


_PEAK = """
import resource, sys
from bench.bench_fold import stream
from events.codec import decode, encode
from oms.state.fold import fold
state = fold(decode(encode(env)) for env in stream(int(sys.argv[1])))  # decoded, as from the journal
try:  # VmHWM: getrusage's ru_maxrss keeps the high-water mark of the parent that forked us
    print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")))
except (OSError, StopIteration):
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _rss_child(orders: int) -> int:
    """Peak RSS (KiB) of a fresh interpreter folding `orders` orders, streamed through the codec
    (0: imports only)."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, str(orders)], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


def main(short: bool) -> None:
    orders = 5_000 if short else 50_000
    repeat = 3 if short else 5
    envs = list(stream(orders))
    raws = [encode(e) for e in envs]
    n = len(envs)
    kinds = {type(e.event): 0 for e in envs}

    def bare() -> None:
        for e in envs:
            kinds[type(e.event)]

    def decode_only() -> None:
        for r in raws:
            decode(r)

    def stepped() -> None:  # the service's path: one step per event, its changes returned
        state = initial_state()
        for e in envs:
            state, _ = step(state, e)

    rows = [
        ("baseline: dict lookup per event", _best(bare, repeat)),
        ("baseline: the writes alone, no rules", _best(lambda: writes_alone(envs), repeat)),
        ("fold (decoded envelopes)", _best(lambda: fold(envs), repeat)),
        ("step per event (with its changes)", _best(stepped, repeat)),
        ("baseline: msgspec decode only", _best(decode_only, repeat)),
        ("decode + fold (msgpack bytes)", _best(lambda: fold(decode(r) for r in raws), repeat)),
    ]
    print(f"{n:,} events ({orders:,} orders), best of {repeat}")
    print(f"{'measure':<36}{'events/s':>14}{'us/event':>10}")
    for name, secs in rows:
        print(f"{name:<36}{n / secs:>14,.0f}{secs / n * 1e6:>10.3f}")
    print("targets: fold >= 1,000,000/s, decode+fold >= 400,000/s")
    ladder = 2_000 if short else 10_000
    alone, beside = _ladder(0, ladder, repeat), _ladder(1_000, ladder, repeat)
    for name, secs in (
        ("one instrument, nothing else working", alone),
        ("one instrument, 1,000 orders working", beside),
    ):
        print(f"{name:<36}{8 * ladder / secs:>14,.0f}{secs / (8 * ladder) * 1e6:>10.3f}")

    big = 20_000 if short else 100_000
    empty, full = _rss_child(0), _rss_child(big)
    print(f"peak RSS, empty interpreter with imports: {empty / 1024:,.1f} MB")
    print(
        f"peak RSS, folding {big:,} orders (decoded), all live:  {full / 1024:,.1f} MB "
        "(their events a microsecond apart, so none retires; with history: python -m bench history)"
    )


if __name__ == "__main__":
    main(short="--short" in sys.argv)
