"""Wire captures: the real client, the adapter with the tap, the TWS simulator over loopback; the capture
read back as IB's messages, redacted, capped."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from adapters.ib.wire import (
    FROM_TWS,
    MAX_BYTES,
    SEGMENT_BYTES,
    TO_TWS,
    AccountMask,
    CaptureError,
    WireRecorder,
    read_messages,
    read_records,
    redact,
    segment_files,
)
from events.schema import OrderRequested
from tests.ib_helpers import Cell, FoldingSink, matrix, request, session, until


async def _place(adapter: object, sink: FoldingSink, req: OrderRequested) -> None:
    sink(req)
    await adapter.place(req)  # type: ignore[attr-defined]


def record_fill(
    ib: Cell, directory: Path, segment_bytes: int = SEGMENT_BYTES, max_bytes: int = MAX_BYTES
) -> FoldingSink:
    """A connect, a 10-share market buy filled with its commission, a disconnect: all recorded."""
    wire = WireRecorder(directory, segment_bytes, max_bytes)

    async def run() -> FoldingSink:
        async with session(ib, wire=wire) as (_sim, adapter, sink):
            await _place(adapter, sink, request("mkt-1", qty=10))
            await until(lambda: sink.state.orders["mkt-1"].commission, "commission joined")
            return sink

    return asyncio.run(run())


@matrix
def test_a_recorded_session_reads_back_as_ibs_messages_both_ways(ib: Cell, tmp_path: Path) -> None:
    capture = tmp_path / "data" / "wire" / "one"
    record_fill(ib, capture)
    for folder in (capture, capture.parent, capture.parent.parent):  # none existed: all owner-only
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for segment in segment_files(capture):
        assert stat.S_IMODE(segment.stat().st_mode) == 0o600
    msgs = read_messages(capture)
    kinds = [(m.direction, m.name) for m in msgs]
    assert kinds[0][0] == "opened" and msgs[0].meta["library"] == ib.library
    assert kinds[1] == ("to_tws", "handshake") and msgs[1].fields[1].startswith("v")
    assert kinds[2] == ("from_tws", "handshake") and msgs[2].fields[0] == str(ib.server_version)
    assert all(m.server_version == ib.server_version for m in msgs[3:])
    names = {name for _d, name in kinds}
    assert {"startApi", "placeOrder", "orderStatus", "execDetails", "commissionReport"} <= names
    assert {"managedAccounts", "nextValidId", "reqExecutions", "reqPositions"} <= names
    (place,) = [m for m in msgs if m.name == "placeOrder"]
    assert place.msg_id == 3 and "AAPL" in place.fields and "MKT" in place.fields
    assert kinds[-1][0] == "closed"
    assert [m.time_ns for m in msgs] == sorted(m.time_ns for m in msgs)


@matrix
def test_the_capture_holds_every_byte_both_ways(ib: Cell, tmp_path: Path) -> None:
    """What the tap saw equals what crossed the socket: the client's own byte counter, and a decode of
    the received stream by the simulator's framing that yields the same messages."""
    from adapters.tws_sim.framing import FrameBuffer

    wire = WireRecorder(tmp_path / "cap")
    sent: list[int] = []

    async def run() -> None:
        async with session(ib, wire=wire) as (_sim, adapter, sink):
            await _place(adapter, sink, request("mkt-1", qty=10))
            await until(lambda: sink.state.orders["mkt-1"].commission, "commission joined")
            sent.append(adapter.ib.client.conn.numBytesSent)

    asyncio.run(run())
    records = list(read_records(tmp_path / "cap"))
    assert sum(len(r.data) for r in records if r.kind == TO_TWS) == sent[0]
    inbound = b"".join(r.data for r in records if r.kind == FROM_TWS)
    frames = FrameBuffer().feed(inbound)
    assert len(frames) == sum(1 for r in records if r.kind == FROM_TWS)


def test_segments_roll_and_the_oldest_go_past_the_cap(tmp_path: Path) -> None:
    capture = tmp_path / "cap"
    record_fill(Cell("ib_async", 178), capture, segment_bytes=2048, max_bytes=4096)  # a session: ~12 kB
    segments = segment_files(capture)
    assert 2 <= len(segments) <= 3
    assert int(segments[0].stem) > 1  # the first ones were dropped
    assert sum(p.stat().st_size for p in segments[:-1]) <= 4096
    msgs = read_messages(capture)
    assert msgs[0].direction == "opened" and msgs[0].meta["continued"]
    assert msgs[0].server_version == 178  # a segment read alone still knows the version
    assert all(m.server_version == 178 for m in msgs if m.direction == "from_tws")
    assert msgs[-1].direction == "closed"


def test_redaction_masks_each_account_the_same_way_everywhere(tmp_path: Path) -> None:
    source, target = tmp_path / "cap", tmp_path / "shared"
    record_fill(Cell("ib_async", 178), source)
    before = read_messages(source)
    mask = redact(source, target)
    assert mask.mapping == {"DU123456": "DU000001"}
    after = read_messages(target)
    assert len(after) == len(before)
    text = "\n".join(m.line() for m in after)
    assert "DU123456" not in text and "DU000001" in text
    for b, a in zip(before, after, strict=True):
        assert (a.time_ns, a.name, len(a.fields)) == (b.time_ns, b.name, len(b.fields))
    for segment in segment_files(target):
        assert stat.S_IMODE(segment.stat().st_mode) == 0o600
    with pytest.raises(CaptureError, match="exists"):
        redact(source, target)


def test_account_mask_keeps_prefix_and_length_and_leaves_other_text() -> None:
    mask = AccountMask()
    assert mask.text("DU1234567,U7654321") == "DU0000001,U0000002"
    assert mask.text("order for DU1234567 rejected") == "order for DU0000001 rejected"
    assert mask.text("AAPL 265598 USD DUX123 UU12345") == "AAPL 265598 USD DUX123 UU12345"


def test_not_a_capture_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.wire").write_bytes(b"garbage")
    with pytest.raises(CaptureError, match="not a wire capture"):
        read_messages(tmp_path / "x.wire")
    with pytest.raises(CaptureError, match="no wire capture"):
        read_messages(tmp_path / "missing")
    os.mkdir(tmp_path / "empty")
    with pytest.raises(CaptureError, match="holds no wire capture"):
        read_messages(tmp_path / "empty")


def test_check_records_the_wire_and_wire_show_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from adapters.tws_sim import run_simulator_in_thread
    from oms.cli import main

    _sim, port, stop = run_simulator_in_thread(Cell("ib_async", 178).config())
    try:
        args = ["check", "--port", str(port), "--timeout", "5", "--record-wire", "--data-dir", str(tmp_path)]
        assert main(args) == 0
    finally:
        stop()
    (capture,) = (tmp_path / "wire").iterdir()
    assert str(capture) in capsys.readouterr().out
    assert main(["wire", "show", str(tmp_path / "wire")]) == 0  # DATA_DIR/wire: its newest capture
    lines = capsys.readouterr().out.splitlines()
    assert " connect 127.0.0.1:" in lines[0] and " > handshake API|v" in lines[1]
    assert any(" < managedAccounts(15) 15|1|DU123456" in line for line in lines)
    assert main(["wire", "show", str(capture), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(lines)
    accounts = next(r for r in rows if r.get("name") == "managedAccounts")
    assert (accounts["id"], accounts["direction"], accounts["server_version"]) == (15, "from_tws", 178)
    assert main(["wire", "redact", str(capture), str(tmp_path / "out")]) == 0
    assert "1 account number(s) masked" in capsys.readouterr().out
    assert main(["wire", "show", str(tmp_path / "out")]) == 0
    assert "DU123456" not in capsys.readouterr().out
    assert main(["wire", "show", str(tmp_path / "nothing")]) == 2
    assert "no wire capture" in capsys.readouterr().err


def test_run_records_only_when_asked(tmp_path: Path) -> None:
    from oms.cli.run import ServiceThread
    from oms.service.config import Config

    def serve(data_dir: Path, record: bool) -> None:
        config = Config(
            data_dir=str(data_dir), pub="tcp://127.0.0.1:0", router="tcp://127.0.0.1:0", record_wire=record
        )
        with ServiceThread(config) as service:
            assert service.call(
                lambda: service.service is not None and service.service.status()["connection"] == "connected"
            )

    serve(tmp_path / "off", record=False)
    assert not (tmp_path / "off" / "wire").exists()
    serve(tmp_path / "on", record=True)
    (capture,) = (tmp_path / "on" / "wire").iterdir()
    assert stat.S_IMODE(capture.stat().st_mode) == 0o700
    names = {m.name for m in read_messages(capture)}
    assert {"startApi", "reqExecutions", "managedAccounts"} <= names
