"""Replay and archive: fold speed, DuckDB import, order-timeline queries, each beside a baseline.

python -m bench replay [--short]

- replay: fold the whole journal (read + decode + fold), beside a plain read of the segment bytes, a
  read + decode without folding, and the fold alone over the same envelopes decoded beforehand (what replay
  pays beyond the fold is the difference);
- archive: `archive_journal` end to end (read, fold, JSON, Arrow, DuckDB), and with `events_only` (no fold,
  the events table alone), beside DuckDB importing an equivalent Arrow table already in memory; the
  replay figure is the floor of a full import (it folds every event too);
- timeline: one order's events with its state after each, from the archive (SQL) and from the journal
  alone (find the order, then fold to collect its events), without and with the service's snapshots.
"""

from __future__ import annotations

import random
import statistics
import time
from decimal import Decimal
from pathlib import Path
from typing import TypedDict

from rich.console import Console
from rich.table import Table

from bench import temp_folder
from events.journal import JournalWriter
from events.reader import JournalReader
from events.schema import (
    AccountValueReported,
    CommissionReported,
    Contract,
    Event,
    ExecutionReported,
    OpenOrderReported,
    OrderRequested,
    OrderSent,
    OrderStatusReported,
)
from events.segments import list_segments
from events.snapshots import write_snapshot
from oms.state.codec import encode_state
from oms.state.fold import fold, step
from oms.state.model import initial_state
from replay import queries
from replay.archive import archive_journal
from replay.source import JournalSource
from replay.timeline import order_timelines

T0 = 1_795_183_387_000_000_000
SNAPSHOT_EVERY = 100_000
_CONTRACTS = [Contract(s, con_id=1000 + i) for i, s in enumerate(("AAPL", "MSFT", "NVDA", "AMZN"))]


class _Ids(TypedDict):
    """An order's IB ids, as every report of it carries them."""

    order_id: int
    perm_id: int
    client_id: int


def order_events(i: int) -> list[Event]:
    """One order's life as the service logs it: intent, sent, IB's acknowledgements, a fill, its fee."""
    coid, contract, oid, perm = f"c{i}", _CONTRACTS[i % 4], 100 + i, 10**9 + i
    exec_id = f"0000e0d5.{i:08x}.01.01"
    ack = _Ids(order_id=oid, perm_id=perm, client_id=7)
    qty, none = Decimal(100), Decimal(0)
    return [
        OrderRequested(
            client_order_id=coid,
            strategy_id=f"s{i % 3}",
            account="DU1",
            contract=Contract(contract.symbol),
            side="BUY" if i % 2 else "SELL",
            quantity=qty,
            order_type="LMT",
            limit_price=10.0,
        ),
        OrderSent(client_order_id=coid, order_id=oid, client_id=7),
        OpenOrderReported(
            **ack,
            order_ref=coid,
            account="DU1",
            contract=contract,
            side="BUY" if i % 2 else "SELL",
            quantity=qty,
            order_type="LMT",
            limit_price=10.0,
            status="Submitted",
        ),
        OrderStatusReported(**ack, status="Submitted", filled=none, remaining=qty),
        ExecutionReported(
            exec_id=exec_id,
            **ack,
            order_ref=coid,
            account="DU1",
            contract=contract,
            side="BOT" if i % 2 else "SLD",
            shares=qty,
            price=10.0 + (i % 7) / 100,
        ),
        CommissionReported(exec_id=exec_id, commission=1.0, currency="USD"),
        OrderStatusReported(**ack, status="Filled", filled=qty, remaining=none, avg_fill_price=10.0),
    ]


def write_session(directory: Path, n_events: int) -> int:
    with JournalWriter.open(directory, durability="never") as writer:
        i = 0
        while writer.last_seq < n_events:
            for event in order_events(i):
                writer.append(event, ts=T0 + writer.last_seq * 1_000_000)
            if i % 10 == 0:
                value = AccountValueReported(
                    account="DU1", key="NetLiquidation", value=str(i), currency="USD"
                )
                writer.append(value, ts=T0 + writer.last_seq * 1_000_000)
            i += 1
    return i


def write_snapshots(journal: Path, every: int) -> None:
    """What the service leaves behind: the folded state every `every` events."""
    state = initial_state()
    for env in JournalReader(journal).read():
        state, _ = step(state, env)
        if env.seq % every == 0:
            write_snapshot(journal, env.seq, encode_state(state))


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f} ev/s"


def _best(runs: int, action: object) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main(short: bool) -> None:
    n = 100_000 if short else 1_000_000
    with temp_folder("bench-replay-") as folder:
        _run(folder, n, short)


def _run(folder: Path, n: int, short: bool) -> None:
    journal = folder / "journal"
    orders = write_session(journal, n)
    n = JournalReader(journal).last_seq()
    rows: list[tuple[str, str, str]] = []

    segments = [path for _, path in list_segments(journal)]
    raw = _best(3, lambda: [p.read_bytes() for p in segments])
    decode = _best(1, lambda: sum(1 for _ in JournalReader(journal).read()))
    replay = _best(1, lambda: fold(JournalReader(journal).read()))
    rows.append(("replay: fold whole journal", _rate(n, replay), f"plain byte read {_rate(n, raw)}"))
    rows.append(("replay: read + decode only", _rate(n, decode), ""))
    alone = _fold_alone(journal)
    rows.append(("replay: fold alone (decoded beforehand)", _rate(n, alone), "the same journal's envelopes"))

    archive = folder / "session.duckdb"
    start, cpu = time.perf_counter(), time.process_time()
    archive_journal(journal, archive)
    imported, cpu = time.perf_counter() - start, time.process_time() - cpu
    baseline = f"DuckDB from Arrow in memory {_arrow_baseline(archive, folder)}"
    note = f"{baseline}; floor: replay {_rate(n, replay)}; CPU {cpu:.1f} s in {imported:.1f} s"
    rows.append(("archive: import (fold + DuckDB)", _rate(n, imported), note))
    start = time.perf_counter()
    archive_journal(journal, folder / "events-only.duckdb", events_only=True)
    imported = time.perf_counter() - start
    rows.append(("archive: import, events_only (no fold)", _rate(n, imported), baseline))

    rnd = random.Random(7)
    picks = [f"c{rnd.randrange(orders)}" for _ in range(20)]
    con = queries.connect(archive)
    try:
        queries.order_timeline(con, picks[0])  # warm the catalog and caches
        times = []
        for coid in picks:
            start = time.perf_counter()
            result = queries.order_timeline(con, coid)
            times.append(time.perf_counter() - start)
            assert len(result.rows) == 7, result.rows
        by_id = _best(5, lambda: queries.find_orders(con, str(10**9 + orders // 2)))
    finally:
        con.close()
    p50 = statistics.median(times) * 1e3
    rows.append(("timeline: archive SQL (p50, 20 orders)", f"{p50:.2f} ms", f"max {max(times) * 1e3:.2f} ms"))
    rows.append(("timeline: find order by permId (SQL)", f"{by_id * 1e3:.2f} ms", ""))
    source = JournalSource(journal)
    middle = f"c{orders // 2}"
    bare = _best(1, lambda: order_timelines(source, middle))
    rows.append(("timeline: journal, no snapshots", f"{bare * 1e3:,.0f} ms", "folds the log twice"))
    write_snapshots(journal, SNAPSHOT_EVERY)
    snapped = _best(1, lambda: order_timelines(source, middle))
    note = f"snapshots every {SNAPSHOT_EVERY:,} (the service's default)"
    rows.append(("timeline: journal + snapshots", f"{snapped * 1e3:,.0f} ms", note))

    table = Table(title=f"replay / archive, {n:,} events, {orders:,} orders" + (" (short)" if short else ""))
    for column in ("what", "figure", "baseline / note"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def _fold_alone(journal: Path) -> float:
    """The fold over the journal's envelopes decoded beforehand (then freed): replay minus its reading."""
    decoded = list(JournalReader(journal).read())
    return _best(1, lambda: fold(decoded))


def _arrow_baseline(archive: Path, folder: Path) -> str:
    """DuckDB inserting the archive's own events columns from an Arrow table already in memory, staged as
    the archive stages them (the event as Arrow JSON)."""
    import duckdb

    from replay.archive import json_column
    from replay.schema_sql import INSERT_EVENTS, TABLES

    con = duckdb.connect(str(archive), read_only=True)
    try:
        query = "SELECT seq, ts_ns, kind, v, event::VARCHAR AS event FROM events ORDER BY seq"
        table = con.sql(query).to_arrow_table()
    finally:
        con.close()
    table = table.set_column(
        4, "event", json_column(table.column("event").combine_chunks().cast("large_string"))
    )
    target = duckdb.connect(str(folder / "baseline.duckdb"))
    try:
        target.execute(TABLES)
        target.register("batch", table)
        start = time.perf_counter()
        target.execute(INSERT_EVENTS)
        seconds = time.perf_counter() - start
    finally:
        target.close()
    return _rate(table.num_rows, seconds)
