"""TWS simulator: connect time and market-order round trips through the real ib_async client.

Baseline in the same run: a raw asyncio TCP echo of one framed message over loopback, i.e. the floor any
request/answer over the socket pays before the simulator or the client do any work. The simulator keeps its
account in a state directory (the append-only log), and the first and last tenth of the orders are
compared: a simulator whose cost per order grows with its history shows it there.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import tempfile
import time

from adapters.tws_sim import SimConfig, TwsSimulator
from adapters.tws_sim.framing import encode_frame


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


def _line(name: str, samples: list[float]) -> str:
    return (
        f"{name:<34} n={len(samples):<5} p50={_pct(samples, 0.5):8.0f} us  p99={_pct(samples, 0.99):8.0f} us"
        f"  mean={statistics.fmean(samples) * 1e6:8.0f} us"
    )


async def _echo_baseline(n: int) -> list[float]:
    finished = asyncio.Event()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        finished.set()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    frame = encode_frame([49, 1])
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        writer.write(frame)
        await reader.readexactly(len(frame))
        samples.append(time.perf_counter() - start)
    writer.close()
    await finished.wait()
    server.close()
    await server.wait_closed()
    return samples


async def _simulator(connects: int, orders: int) -> tuple[list[float], list[float], float]:
    import ib_async

    state_dir = tempfile.TemporaryDirectory(prefix="bench-tws-sim-")
    sim = TwsSimulator(SimConfig(max_msg_rate=0, state_dir=state_dir.name))  # no limit: measure the sim
    await sim.start()
    connect_times = []
    for i in range(connects):
        ib = ib_async.IB()
        start = time.perf_counter()
        await ib.connectAsync("127.0.0.1", sim.port, clientId=100 + i, timeout=5)
        connect_times.append(time.perf_counter() - start)
        ib.disconnect()
    ib = ib_async.IB()
    await ib.connectAsync("127.0.0.1", sim.port, clientId=1, timeout=5)
    ib.client.MaxRequests = 0  # ib_async throttles to 45 requests/s by default; measure the simulator
    contract = ib_async.Stock("AAPL", "SMART", "USD")
    done = asyncio.Event()
    ib.commissionReportEvent += lambda *_: done.set()
    order_times = []
    begin = time.perf_counter()
    for i in range(orders):
        done.clear()
        start = time.perf_counter()
        ib.placeOrder(contract, ib_async.MarketOrder("BUY" if i % 2 else "SELL", 1))
        await asyncio.wait_for(done.wait(), 5)
        order_times.append(time.perf_counter() - start)
    rate = orders / (time.perf_counter() - begin)
    ib.disconnect()
    await sim.stop()
    state_dir.cleanup()
    return connect_times, order_times, rate


def main(short: bool) -> None:
    n_echo, n_connect, n_orders = (500, 10, 200) if short else (5000, 50, 2000)
    echo = asyncio.run(_echo_baseline(n_echo))
    connects, orders, rate = asyncio.run(_simulator(n_connect, n_orders))
    print(_line("baseline: raw loopback echo", echo))
    print(_line("IB.connectAsync (full start-up sync)", connects))
    print(_line("MKT order -> commissionReport", orders))
    tenth = max(1, len(orders) // 10)
    print(_line("  first tenth of the orders", orders[:tenth]))
    print(_line("  last tenth (same cost expected)", orders[-tenth:]))
    print(f"{'orders filled per second':<34} {rate:8.0f}/s  (one at a time, real ib_async client)")
    print(f"{'peak RSS':<34} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:8.1f} MiB")
