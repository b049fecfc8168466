"""The mirror against a real nats-server: byte-for-byte copy, resume, refusals, snapshot, lag."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest

from adapters.nats.connect import MirrorConfig, mirror_config
from adapters.nats.local_server import LocalNatsServer
from adapters.nats.mirror import Mirror, MirrorDiverged
from adapters.nats.publisher import PublishFailed, SeqPublisher
from events.journal import JournalWriter
from events.reader import JournalReader
from events.snapshots import write_snapshot
from oms.client.jetstream import fetch_snapshot
from oms.client.jetstream_wire import MirrorStatus, read_status, status_subject
from tests.journal_helpers import frame_ends, last_segment, numbered
from tests.nats_helpers import (
    journal_payloads,
    nats_server,
    new_stream,
    stream_payloads,
    write_journal,
)
from tests.waiting import async_wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNatsServer]:
    with nats_server(tmp_path_factory.mktemp("nats")) as running:
        yield running


def config(server: LocalNatsServer, stream: str, **tuning: object) -> MirrorConfig:
    return msgspec.structs.replace(mirror_config(url=server.url, stream=stream), **tuning)


@contextlib.asynccontextmanager
async def running(mirror: Mirror) -> AsyncIterator[asyncio.Task[None]]:
    """`mirror.run()` as a task for the block, then stopped as SIGTERM would (even if the block fails)."""
    task = asyncio.create_task(mirror.run())
    try:
        yield task
    finally:
        mirror.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def mirror_until(mirror: Mirror, seq: int, timeout: float = 20.0, snapshot_seq: int = 0) -> None:
    """Run `mirror` until the stream holds `seq` (and the object store the snapshot at `snapshot_seq`),
    then stop it as SIGTERM would."""
    async with running(mirror) as task:
        await async_wait_until(
            lambda: (mirror.mirrored_seq >= seq and mirror.snapshot_seq >= snapshot_seq) or task.done(),
            timeout,
            what=f"mirrored seq {seq}",
        )
        if task.done():
            task.result()


def test_the_stream_is_the_journal_byte_for_byte_and_seq_for_seq(
    server: LocalNatsServer, tmp_path: Path
) -> None:
    stream = new_stream()
    write_journal(tmp_path / "j", 2500)
    mirror = Mirror(tmp_path / "j", config(server, stream, batch=300, max_in_flight=64))
    asyncio.run(mirror_until(mirror, 2500))
    assert stream_payloads(server.url, stream) == journal_payloads(tmp_path / "j")


def test_events_appended_while_mirroring_follow_and_a_restart_resumes_without_duplicates(
    server: LocalNatsServer, tmp_path: Path
) -> None:
    stream = new_stream()
    journal = tmp_path / "j"
    write_journal(journal, 100)

    async def scenario() -> None:
        mirror = Mirror(journal, config(server, stream))
        async with running(mirror):
            await async_wait_until(lambda: mirror.mirrored_seq == 100, what="the first 100")
            with JournalWriter.open(journal, durability="never") as writer:  # the service goes on writing
                for i in range(101, 351):
                    writer.append(numbered(i))
            await async_wait_until(lambda: mirror.mirrored_seq == 350, what="the live tail")
        write_journal(journal, 50, first_value=351)
        again = Mirror(journal, config(server, stream))
        await mirror_until(again, 400)

    asyncio.run(scenario())
    assert stream_payloads(server.url, stream) == journal_payloads(journal)


def test_a_stream_ahead_of_the_journal_stops_the_mirror_with_a_clear_error(
    server: LocalNatsServer, tmp_path: Path
) -> None:
    """A journal cut (torn tail recovered) below what was mirrored is reported, never papered over."""
    stream = new_stream()
    journal = tmp_path / "j"
    write_journal(journal, 200)
    asyncio.run(mirror_until(Mirror(journal, config(server, stream)), 200))
    segment = last_segment(journal)
    cut_after = dict(frame_ends(segment))[150]
    with open(segment, "r+b") as file:  # what a lost page cache or a restored backup leaves
        file.truncate(cut_after + 7)  # seq 150 whole, then a torn frame
    with JournalWriter.open(journal, durability="never") as writer:  # recovery cuts the torn tail
        assert writer.last_seq == 150
    mirror = Mirror(journal, config(server, stream))
    with pytest.raises(MirrorDiverged, match=r"holds seqs up to 200 but the journal .* ends at 150"):
        asyncio.run(mirror_until(mirror, 10_000))
    assert "cut below what was mirrored" in mirror.error
    assert len(stream_payloads(server.url, stream)) == 200  # nothing overwritten or deleted


def test_different_bytes_at_the_last_mirrored_seq_stop_the_mirror(
    server: LocalNatsServer, tmp_path: Path
) -> None:
    stream = new_stream()
    write_journal(tmp_path / "a", 30)
    write_journal(tmp_path / "b", 40, first_value=1000)  # another journal: same seqs, other events
    asyncio.run(mirror_until(Mirror(tmp_path / "a", config(server, stream)), 30))
    with pytest.raises(MirrorDiverged, match="different bytes at seq 30"):
        asyncio.run(mirror_until(Mirror(tmp_path / "b", config(server, stream)), 40))
    assert stream_payloads(server.url, stream) == journal_payloads(tmp_path / "a")


def test_a_journal_cut_below_the_reader_while_it_follows_is_reported(
    server: LocalNatsServer, tmp_path: Path
) -> None:
    stream = new_stream()
    journal = tmp_path / "j"
    write_journal(journal, 80)

    async def scenario() -> None:
        mirror = Mirror(journal, config(server, stream))
        async with running(mirror) as task:
            await async_wait_until(lambda: mirror.mirrored_seq == 80, what="all 80")
            segment = last_segment(journal)
            with open(segment, "r+b") as file:
                file.truncate(dict(frame_ends(segment))[60])
            await async_wait_until(task.done, what="the mirror to stop")
            with pytest.raises(MirrorDiverged, match="cut below what was already read"):
                task.result()

    asyncio.run(scenario())


def test_the_latest_snapshot_the_stream_covers_is_kept_for_late_joiners(
    server: LocalNatsServer, tmp_path: Path
) -> None:
    stream = new_stream()
    journal = tmp_path / "j"
    write_journal(journal, 50)
    write_snapshot(journal, 20, b"state at 20")
    write_snapshot(journal, 45, b"state at 45")
    write_snapshot(journal, 60, b"beyond the journal: not yet", frame_crc=0)  # the service runs ahead

    async def scenario() -> None:
        mirror = Mirror(journal, config(server, stream, status_interval_s=0.05))
        async with running(mirror):
            await async_wait_until(lambda: mirror.snapshot_seq == 45, what="the snapshot at 45")
        import nats

        nc = await nats.connect(server.url)
        record = await fetch_snapshot(nc.jetstream(), stream)
        await nc.close()
        assert record is not None and (record.seq, record.state) == (45, b"state at 45")

    asyncio.run(scenario())


def test_the_lag_is_written_to_a_private_status_file_and_published(
    server: LocalNatsServer, tmp_path: Path
) -> None:
    stream = new_stream()
    journal = tmp_path / "j"
    write_journal(journal, 10)
    status_path = tmp_path / "mirror.json"

    async def scenario() -> list[MirrorStatus]:
        import nats

        nc = await nats.connect(server.url)
        heard: list[MirrorStatus] = []

        async def on_status(msg: object) -> None:
            heard.append(msgspec.json.decode(msg.data, type=MirrorStatus))  # type: ignore[attr-defined]

        await nc.subscribe(status_subject(stream), cb=on_status)
        mirror = Mirror(journal, config(server, stream, status_interval_s=0.05), status_path)
        try:
            async with running(mirror):
                await async_wait_until(lambda: any(s.mirrored_seq == 10 for s in heard), what="status at 10")
        finally:
            await nc.close()
        return heard

    heard = asyncio.run(scenario())
    final = [s for s in heard if s.mirrored_seq == 10][-1]
    assert (final.journal_seq, final.lag, final.stream, final.connected) == (10, 0, stream, True)
    written = read_status(tmp_path)
    assert written is not None and (written.mirrored_seq, written.lag, written.error) == (10, 0, "")
    assert json.loads(status_path.read_text())["lag"] == 0  # plain JSON for any reader
    assert stat.S_IMODE(os.stat(status_path).st_mode) == 0o600


def test_the_journal_is_followed_in_bounded_batches_without_rescanning(tmp_path: Path) -> None:
    """What the mirror reads with: `JournalReader.follow_payloads` (no server needed)."""
    journal = tmp_path / "j"
    write_journal(journal, 10)
    batches = JournalReader(journal).follow_payloads(4, most=3)
    try:
        assert [[seq for seq, _ in next(batches)] for _ in range(3)] == [[4, 5, 6], [7, 8, 9], [10]]
        assert next(batches) == []  # caught up: the caller waits its own way
        write_journal(journal, 2, first_value=11)
        assert [seq for seq, _ in next(batches)] == [11, 12]
    finally:
        batches.close()


def test_a_publish_that_would_leave_a_gap_is_refused_at_once(server: LocalNatsServer, tmp_path: Path) -> None:
    stream = new_stream()
    write_journal(tmp_path / "j", 10)
    asyncio.run(mirror_until(Mirror(tmp_path / "j", config(server, stream)), 10))

    async def publish_past_a_gap() -> PublishFailed:
        import nats

        nc = await nats.connect(server.url)
        publisher = SeqPublisher(nc, f"oms.{stream}.events", max_in_flight=8, ack_timeout=30.0)
        await publisher.start(after=11)
        await publisher.publish(12, b"seq 11 was never published")
        try:
            await async_wait_until(lambda: publisher.in_flight == 0 or _raised(publisher), what="the refusal")
            with pytest.raises(PublishFailed) as caught:
                publisher.check()
            return caught.value
        finally:
            await publisher.close()
            await nc.close()

    refusal = asyncio.run(publish_past_a_gap())
    assert refusal.err_code == 10071 and "wrong last sequence" in str(refusal)
    assert len(stream_payloads(server.url, stream)) == 10


def _raised(publisher: SeqPublisher) -> bool:
    try:
        publisher.check()
    except PublishFailed:
        return True
    return False


def test_a_cancellation_lost_inside_an_await_still_ends_the_mirrors_loops(tmp_path: Path) -> None:
    """Python 3.11's `asyncio.wait_for` (the NATS client's, and ours) can swallow a cancellation whose
    inner future finishes at the same moment; the mirror then polled on for ever (a CI hang). Its loops
    also end on the task's `cancelling()` count, which a swallowed cancellation leaves up."""
    write_journal(tmp_path / "j", 1)
    mirror = Mirror(tmp_path / "j", mirror_config(url="nats://127.0.0.1:4222", stream="S"))

    async def swallowing() -> tuple[bool, bool]:
        before = mirror._ending()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        return before, mirror._ending()

    async def scenario() -> tuple[bool, bool]:
        task = asyncio.create_task(swallowing())
        await asyncio.sleep(0)
        task.cancel()
        return await task

    assert asyncio.run(scenario()) == (False, True)
