"""Week: `oms run` with its embedded TWS simulator through IB's daily rhythm, on an accelerated clock.

The whole world is simulated, so the service runs on the simulator's clock: the benchmark moves that
clock one simulated minute at a time through the control channel (`oms sim clock +60s`), and the
service's journal, its order retirement and its max-age all see the week pass as IB does. The simulator
has IB's nightly server reset (23:45, ten minutes: 1100, then 1101 with the socket up) and TWS's daily
automatic restart (01:00, two minutes: the socket closes) every day (`oms run --sim-config`). During
regular trading hours (09:30-16:00 New York, weekdays) one order is placed every simulated minute through
the ROUTER: a one-share market order (alternately buy and sell), every tenth minute a DAY limit buy far
from the market (it ends at the close), every hour a GTC one (it works on through every night, restart
and weekend); the clock moves on once IB has the order. Nothing trades over the weekend; the service
stays up.

Printed: days, orders (acknowledged), executions (in the journal), reconnects (after the first connect),
lost (acknowledged but not in the journal, or not in IB's state: an order the simulator never had, or
an execution of the simulator's the journal lacks), doubled (an order the simulator had twice, or an
execution journaled twice), the RSS of `oms run` (service and simulator) and its place -> ack p50 on the
first and the last trading day (the first day is the baseline). IB's state is what the simulator
persisted in DATA_DIR/sim when `oms run` stopped. Target: 0 lost, 0 doubled, RSS and ack p50 within
10%. Full: Monday to Sunday (7 days); short: Friday to Monday (4 days: two trading days around a weekend).

python -m bench week [--short]
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from adapters.tws_sim import control
from adapters.tws_sim.hours import is_open
from adapters.tws_sim.persist import load_state
from bench.bench_soak import _Router, _wait_ready, rss_mib
from events.reader import JournalReader
from events.schema import ConnectionChanged, ExecutionReported, OrderRequested

NEW_YORK = ZoneInfo("America/New_York")
FULL = ("2026-11-30T00:00-05:00", 7)  # Monday
SHORT = ("2026-12-04T00:00-05:00", 4)  # Friday
SIM_CONFIG = """clock_start = "{start}"
reset_at = "23:45"
reset_minutes = 10
restart_at = "01:00"
restart_minutes = 2
"""


def _service(folder: Path, sim_config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "oms", "run", "--data-dir", str(folder), "--sim-config", str(sim_config),
         "--pub", "tcp://127.0.0.1:0", "--router", "tcp://127.0.0.1:0", "--max-notional", "1e12",
         "--max-quantity", "1e9", "--max-position", "1e9"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _wait(done: Callable[[], object], what: str) -> None:
    """Wait (wall time) for the service and IB to catch up with the simulated clock."""
    deadline = time.monotonic() + 60
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within 60 s")
        time.sleep(0.001)  # a benchmark's pace, not a test's synchronization


def _at_ib(router: _Router, client_order_id: str) -> bool:
    """IB has reported the order (its status, as the service holds it)."""
    reply = router.request({"op": "order", "client_order_id": client_order_id})
    return bool(reply["result"]["order"]["broker_status"])


def _order(minute: int, n: int) -> dict[str, Any]:
    place: dict[str, Any] = {"op": "place", "client_order_id": f"wk-{n}", "contract": {"symbol": "AAPL"}}
    if minute % 60 == 0:
        return place | {"side": "BUY", "quantity": 1, "order_type": "LMT", "limit_price": 1.0, "tif": "GTC"}
    if minute % 10 == 0:
        return place | {"side": "BUY", "quantity": 1, "order_type": "LMT", "limit_price": 1.0}
    return place | {"side": "BUY" if n % 2 else "SELL", "quantity": 1}


def week(start: str, days: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-week-"))
    data = folder / "data"
    sim_config = folder / "sim.toml"
    sim_config.write_text(SIM_CONFIG.format(start=start))
    service = _service(data, sim_config)
    loop = asyncio.new_event_loop()
    acked: list[str] = []
    latency: dict[str, list[float]] = {}
    rss: dict[str, float] = {}
    wall = time.perf_counter()
    try:
        router = _wait_ready(data)
        ready = lambda: router.request({"op": "ping"})["result"]["ready"]  # noqa: E731
        for minute in range(days * 24 * 60):
            moved = loop.run_until_complete(control.send(data, "clock", {"when": "+60s"}))
            now = datetime.fromisoformat(moved.time).timestamp()
            if not is_open("us_stock", now, liquid=True):
                continue
            day = datetime.fromtimestamp(now, NEW_YORK).strftime("%a %Y-%m-%d")
            _wait(ready, "the service ready")  # reconnected after the daily restart
            place = _order(minute, len(acked) + 1)
            sent = time.perf_counter()
            reply = router.request(place)
            latency.setdefault(day, []).append(time.perf_counter() - sent)
            if reply.get("ok"):
                acked.append(coid := place["client_order_id"])
                # a minute is long: IB has the order before the clock moves on
                _wait(lambda c=coid: _at_ib(router, c), "IB receiving the order")  # type: ignore[misc]
            rss[day] = rss_mib(service.pid)  # the day's last sample stands for the day
        _wait(ready, "the service ready")
        status = router.request({"op": "status"})["result"]
        router.close()
    finally:
        service.terminate()
        service.wait(30)
        loop.close()
        elapsed = time.perf_counter() - wall
    events = [env.event for env in JournalReader(data / "journal").read()]
    ib = load_state(str(data / "sim"))  # IB's state, as the simulator persisted it on stopping
    shutil.rmtree(folder, ignore_errors=True)
    sim_orders, sim_executions = (ib.orders, ib.executions) if ib else ([], [])
    requested = {e.client_order_id for e in events if isinstance(e, OrderRequested)}
    at_ib = Counter(o.order_ref for o in sim_orders)
    journaled = Counter(e.exec_id for e in events if isinstance(e, ExecutionReported))
    lost = sum(1 for c in acked if c not in requested or c not in at_ib)
    lost += sum(1 for x in sim_executions if x.exec_id not in journaled)
    doubled = sum(n - 1 for n in at_ib.values() if n > 1) + sum(n - 1 for n in journaled.values() if n > 1)
    connects = sum(1 for e in events if isinstance(e, ConnectionChanged) and e.state == "connected")
    trading = sorted(latency, key=lambda d: d[4:])
    first, last = trading[0], trading[-1]
    p50 = {d: statistics.median(latency[d]) * 1e3 for d in (first, last)}
    gtc = [o for o in sim_orders if o.tif == "GTC"]
    print(f"  simulated {days} days from {start} in {elapsed:.1f} s of wall time")
    print(f"  days               {days}")
    print(f"  orders             {len(acked)}")
    print(f"  executions         {len(journaled)}")
    print(f"  reconnects         {connects - 1}")
    print(f"  lost               {lost}")
    print(f"  doubled            {doubled}")
    print(f"  RSS first day      {rss[first]:.1f} MiB ({first})")
    print(f"  RSS last day       {rss[last]:.1f} MiB ({last}, {100 * (rss[last] / rss[first] - 1):+.1f}%)")
    print(f"  ack p50 first day  {p50[first]:.2f} ms")
    print(f"  ack p50 last day   {p50[last]:.2f} ms (x{p50[last] / p50[first]:.2f})")
    working = sum(1 for o in gtc if o.status not in ("Cancelled", "Filled"))
    print(f"  (GTC orders still working at IB: {working} of {len(gtc)}; DAY limit orders end at the close)")
    live, retired = status["live_orders"], status["retired_orders"]
    print(f"  (orders live in the service at the end: {live}, retired: {retired})")


def main(short: bool = False) -> None:
    week(*(SHORT if short else FULL))


if __name__ == "__main__":
    main(short="--short" in sys.argv)
