"""Snapshots that cannot lie, end to end: cut the journal below a snapshot, let it grow past it again,
restart: the state is the fold of the journal, and `oms replay --verify` agrees."""

from __future__ import annotations

from pathlib import Path

from events.reader import JournalReader
from events.snapshots import list_snapshots
from oms.cli import main
from oms.state.fold import fold
from tests.client_helpers import ServiceProcess, service_snapshot
from tests.journal_helpers import cut_after
from tests.test_service_support import Wire, place


def test_a_cut_below_a_snapshot_never_resurrects_it(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    first = ServiceProcess(tmp_path)
    endpoints = first.start()
    wire = Wire(endpoints.router, endpoints.pub)
    for coid in ("a-1", "a-2"):
        wire.ok(place(client_order_id=coid))
        wire.wait_order(coid, "filled")
    wire.close()
    first.stop()  # a graceful stop writes a snapshot at the journal's end
    snapshot_seq = list_snapshots(journal)[-1].seq
    assert snapshot_seq == JournalReader(journal).last_seq()
    shutdown = first.log.read_text()  # one line on shutdown says what was flushed
    assert f"oms run: stopped: journal fsynced through seq {snapshot_seq} (" in shutdown
    assert f"snapshot written at seq {snapshot_seq}" in shutdown

    cut_after(journal, snapshot_seq - 8)  # an operator truncating below it (the fills of a-2 go)
    second = ServiceProcess(tmp_path)
    endpoints = second.start()
    wire = Wire(endpoints.router, endpoints.pub)
    for coid in ("b-1", "b-2", "b-3"):
        wire.ok(place(client_order_id=coid))
        wire.wait_order(coid, "filled")
    wire.close()
    assert JournalReader(journal).last_seq() > snapshot_seq  # grown past the old snapshot's seq
    second.kill()  # no final snapshot: only the old one could be (wrongly) picked up

    third = ServiceProcess(tmp_path)
    endpoints = third.start()
    try:
        live = service_snapshot(endpoints.router)
        assert live == fold(JournalReader(journal).read(1, live.seq))
        assert live.orders["b-3"].status == "filled"
    finally:
        third.stop()
    assert main(["replay", str(tmp_path), "--verify"]) == 0
