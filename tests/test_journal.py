"""The journal: round trip, seqs, segment rolls, the one-writer lock, recovery and refusal, readers."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from pathlib import Path

import pytest

from events.codec import decode
from events.frames import HEADER_SIZE, frame_header
from events.journal import JournalWriter
from events.journal_errors import CorruptJournal, JournalClosed, JournalError, JournalLocked, NotAJournal
from events.reader import JournalReader
from events.segments import SEGMENT_HEADER_SIZE, list_segments
from tests.journal_helpers import frame_ends, image, last_segment, mixed_event, numbered
from tests.waiting import wait_until


def write(directory: Path, n: int, start: int = 0, **options: object) -> list:
    with JournalWriter.open(directory, **options) as writer:  # type: ignore[arg-type]
        return [writer.append(mixed_event(start + i)) for i in range(n)]


def test_round_trip_gives_back_every_envelope(tmp_path: Path) -> None:
    written = write(tmp_path / "j", 40, clock=iter(range(1000, 2000)).__next__)
    reader = JournalReader(tmp_path / "j")
    assert list(reader.read()) == written
    assert [e.seq for e in written] == list(range(1, 41))
    assert [e.ts for e in written] == list(range(1000, 1040))
    assert [(seq, decode(payload)) for seq, payload in reader.read_payloads(38)] == [
        (e.seq, e) for e in written[37:]
    ]
    assert list(reader.read(5, 7)) == written[4:7]
    assert reader.last_seq() == 40


def test_explicit_ts_is_kept(tmp_path: Path) -> None:
    with JournalWriter.open(tmp_path / "j") as writer:
        assert writer.append(numbered(1), ts=123).ts == 123


def test_seqs_continue_contiguously_after_reopen(tmp_path: Path) -> None:
    first = write(tmp_path / "j", 5)
    second = write(tmp_path / "j", 5, start=5)
    assert [e.seq for e in first + second] == list(range(1, 11))
    assert [e.seq for e in JournalReader(tmp_path / "j").read()] == list(range(1, 11))


def test_segments_roll_by_size_and_are_named_by_first_seq(tmp_path: Path) -> None:
    written = write(tmp_path / "j", 60, segment_bytes=600)
    segments = list_segments(tmp_path / "j")
    assert len(segments) > 5
    for first, path in segments:
        ends = frame_ends(path)
        if ends:
            assert ends[0][0] == first
            assert ends[-2][1] < 600  # rolls once full: exceeds the size by at most one frame
    reader = JournalReader(tmp_path / "j")
    assert list(reader.read()) == written
    assert list(reader.read(from_seq=33)) == written[32:]
    for seq in (1, 17, 33, 60):
        holder = reader.segment_for(seq)
        assert holder is not None and seq in [s for s, _ in frame_ends(holder)]
    assert reader.segment_for(0) is None


def test_files_are_private(tmp_path: Path) -> None:
    write(tmp_path / "j", 30, segment_bytes=600)
    assert stat.S_IMODE((tmp_path / "j").stat().st_mode) == 0o700
    for path in (tmp_path / "j").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_second_writer_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    with JournalWriter.open(directory) as writer:
        writer.append(numbered(1))
        writer.sync()
        before = image(directory)
        with pytest.raises(JournalLocked) as refused:
            JournalWriter.open(directory)
        assert refused.value.code == "journal_locked"
        assert refused.value.holder_pid == os.getpid()
        assert str(directory) in str(refused.value) and str(os.getpid()) in str(refused.value)
        assert image(directory) == before
        assert writer.append(numbered(2)).seq == 2
    with JournalWriter.open(directory) as again:
        assert again.last_seq == 2


def cut_mid_frame(path: Path) -> None:
    os.truncate(path, path.stat().st_size - 7)


def flip_last_payload_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def append_zeros(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(bytes(300))


def append_partial_header(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(frame_header(99, b"x")[:5])


@pytest.mark.parametrize(
    ("damage", "lost_seq"),
    [(cut_mid_frame, 10), (flip_last_payload_byte, 10), (append_zeros, 11), (append_partial_header, 11)],
)
def test_torn_tail_is_cut_and_reported(tmp_path: Path, damage, lost_seq: int) -> None:
    directory = tmp_path / "j"
    write(directory, 10)
    segment = last_segment(directory)
    good_end = dict(frame_ends(segment))[lost_seq - 1]
    damage(segment)
    damaged_size = segment.stat().st_size
    assert JournalReader(directory).last_seq() == lost_seq - 1  # readers stop at a torn tail
    with JournalWriter.open(directory) as writer:
        report = writer.recovery
        assert report is not None
        assert (report.segment, report.offset, report.cut_from_seq) == (segment.name, good_end, lost_seq)
        assert report.cut_bytes == damaged_size - good_end
        assert f"seq {lost_seq - 1}" in str(report) and str(report.cut_bytes) in str(report)
        assert segment.stat().st_size == good_end
        assert writer.last_seq == lost_seq - 1
        assert writer.append(numbered(0)).seq == lost_seq
    assert [e.seq for e in JournalReader(directory).read()] == list(range(1, lost_seq + 1))


def test_clean_open_reports_no_recovery(tmp_path: Path) -> None:
    write(tmp_path / "j", 3)
    with JournalWriter.open(tmp_path / "j") as writer:
        assert writer.recovery is None


def test_middle_corruption_is_refused_with_segment_and_offset(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    write(directory, 10)
    segment = last_segment(directory)
    frame5 = dict(frame_ends(segment))[4]
    data = bytearray(segment.read_bytes())
    data[frame5 + HEADER_SIZE + 3] ^= 0x01
    segment.write_bytes(bytes(data))
    before = image(directory)
    with pytest.raises(CorruptJournal) as refused:
        JournalWriter.open(directory)
    assert refused.value.code == "journal_corrupt"
    assert (refused.value.segment, refused.value.offset) == (segment, frame5)
    assert segment.name in str(refused.value) and f"byte {frame5}" in str(refused.value)
    assert {k: v for k, v in image(directory).items() if k != "LOCK"} == {
        k: v for k, v in before.items() if k != "LOCK"
    }
    reader = JournalReader(directory)
    with pytest.raises(CorruptJournal) as by_reader:
        list(reader.read())
    assert (by_reader.value.segment, by_reader.value.offset) == (segment, frame5)
    assert [e.seq for e in reader.read(to_seq=4)] == [1, 2, 3, 4]


def test_a_frame_with_a_wrong_seq_is_corruption(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    write(directory, 3)
    with open(last_segment(directory), "ab") as f:
        f.write(frame_header(7, b"\x90") + b"\x90")
    with pytest.raises(CorruptJournal, match="seq 7 where seq 4"):
        JournalWriter.open(directory)


def test_damage_in_a_non_last_segment_is_corruption_for_readers(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    write(directory, 40, segment_bytes=600)
    first = list_segments(directory)[0][1]
    os.truncate(first, first.stat().st_size - 3)  # a torn tail, but a later segment exists
    with pytest.raises(CorruptJournal) as refused:
        list(JournalReader(directory).read())
    assert refused.value.segment == first
    assert refused.value.offset == frame_ends(first)[-1][1]


def test_a_missing_segment_is_a_gap(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    write(directory, 40, segment_bytes=600)
    list_segments(directory)[1][1].unlink()
    with pytest.raises(CorruptJournal, match="not"):
        list(JournalReader(directory).read())


def test_not_a_journal_is_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("hello")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "README").write_text("mine")
    for path in (a_file, foreign):
        with pytest.raises(NotAJournal) as refused:
            JournalReader(path)
        assert refused.value.code == "not_a_journal" and isinstance(refused.value, JournalError)
        with pytest.raises(NotAJournal):
            JournalWriter.open(path)
    assert os.listdir(foreign) == ["README"]
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "00000000000000000001.seg").write_bytes(b"PK\x03\x04 not a journal at all")
    with pytest.raises(NotAJournal, match="not a journal segment"):
        list(JournalReader(fake).read())
    with pytest.raises(NotAJournal):
        JournalWriter.open(fake)


def test_an_empty_directory_is_an_empty_journal(tmp_path: Path) -> None:
    reader = JournalReader(tmp_path)
    assert list(reader.read()) == [] and reader.last_seq() == 0
    with JournalWriter.open(tmp_path) as writer:
        assert writer.last_seq == 0 and writer.append(numbered(1)).seq == 1


def test_reader_waits_for_a_half_written_last_frame(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    write(directory, 3)
    segment = last_segment(directory)
    intact = segment.read_bytes()
    write(directory, 1, start=3)
    whole = segment.read_bytes()
    segment.write_bytes(whole[: len(intact) + 9])  # the writer is mid-way through frame 4
    reader = JournalReader(directory)
    assert [e.seq for e in reader.read()] == [1, 2, 3]
    seen: list[int] = []
    done = threading.Event()

    def follow() -> None:
        seen.extend(e.seq for e in reader.tail(1, poll_s=0.001, stop=done.is_set))

    thread = threading.Thread(target=follow)
    thread.start()
    try:
        wait_until(lambda: len(seen) == 3, what="frames 1-3")
        with open(segment, "ab") as f:
            f.write(whole[len(intact) + 9 :])
        wait_until(lambda: len(seen) == 4, what="frame 4 once complete")
    finally:
        done.set()
        thread.join()
    assert seen == [1, 2, 3, 4]


def test_tail_in_a_thread_follows_the_writer_across_rolls(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    writer = JournalWriter.open(directory, segment_bytes=500)
    writer.append(numbered(1))
    writer.flush()
    seen: list = []
    done = threading.Event()
    reader = JournalReader(directory)
    thread = threading.Thread(target=lambda: seen.extend(reader.tail(1, poll_s=0.001, stop=done.is_set)))
    thread.start()
    try:
        wait_until(lambda: len(seen) == 1, what="the first event")
        written = [writer.append(numbered(i)) for i in range(2, 121)]
        writer.flush()
        wait_until(lambda: len(seen) == 120, what="every event")
    finally:
        done.set()
        thread.join()
        writer.close()
    assert len(list_segments(directory)) > 5
    assert seen[1:] == written


def test_tail_async_sees_events_appended_after_it_started(tmp_path: Path) -> None:
    directory = tmp_path / "j"

    async def follow(writer: JournalWriter) -> list[int]:
        got: list[int] = []
        started = asyncio.Event()

        def produce() -> None:
            for i in range(50):
                writer.append(numbered(i))
                writer.flush()

        async def consume() -> None:
            started.set()
            async for env in JournalReader(directory).tail_async(1, poll_s=0.001):
                got.append(env.seq)
                if len(got) == 50:
                    break

        task = asyncio.create_task(consume())
        await started.wait()
        await asyncio.to_thread(produce)
        await asyncio.wait_for(task, timeout=10)
        return got

    with JournalWriter.open(directory, segment_bytes=700) as writer:
        assert asyncio.run(follow(writer)) == list(range(1, 51))


def test_group_commit_makes_appends_durable_without_flush(tmp_path: Path) -> None:
    with JournalWriter.open(tmp_path / "j", group_commit_ms=1.0) as writer:
        seq = writer.append(numbered(1)).seq
        assert writer.wait_durable(seq, timeout=10)
        assert writer.durable_seq >= seq
        assert [e.seq for e in JournalReader(tmp_path / "j").read()] == [1]

        async def wait(target: int) -> bool:
            return await writer.wait_durable_async(target)

        last = [writer.append(numbered(i)) for i in range(2, 200)][-1].seq
        assert asyncio.run(asyncio.wait_for(wait(last), timeout=10))
        assert writer.durable_seq >= last


def test_commit_now_does_not_wait_out_the_group_commit_window(tmp_path: Path) -> None:
    with JournalWriter.open(tmp_path / "j", group_commit_ms=10_000.0) as writer:
        first = writer.append(numbered(1)).seq
        writer.sync()  # the committer is now idle, its next window 10 s away
        seq = writer.append(numbered(2)).seq
        assert seq > first and writer.durable_seq < seq
        writer.commit_now()
        assert writer.wait_durable(seq, timeout=5), "an intent must not wait for the 10 s window"


def test_always_is_durable_on_return(tmp_path: Path) -> None:
    with JournalWriter.open(tmp_path / "j", durability="always") as writer:
        for i in range(5):
            env = writer.append(numbered(i))
            assert writer.durable_seq == env.seq
        assert len(list(JournalReader(tmp_path / "j").read())) == 5


def test_never_advances_durable_seq_only_on_sync(tmp_path: Path) -> None:
    with JournalWriter.open(tmp_path / "j", durability="never", group_commit_ms=0.5) as writer:
        seq = writer.append(numbered(1)).seq
        wait_until(lambda: JournalReader(tmp_path / "j").last_seq() == 1, what="the committer's write")
        assert writer.durable_seq == 0
        assert not writer.wait_durable(seq, timeout=0.05)
        assert writer.sync() == seq and writer.wait_durable(seq, timeout=0)


def test_close_releases_waiters_and_refuses_appends(tmp_path: Path) -> None:
    writer = JournalWriter.open(tmp_path / "j", durability="never")
    writer.append(numbered(1))
    writer.close()
    writer.close()
    assert writer.durable_seq == 1
    assert not writer.wait_durable(5)
    assert asyncio.run(writer.wait_durable_async(5)) is False
    with pytest.raises(JournalClosed):
        writer.append(numbered(2))


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        JournalWriter.open(tmp_path / "j", durability="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="segment_bytes"):
        JournalWriter.open(tmp_path / "j", segment_bytes=10)
    assert SEGMENT_HEADER_SIZE < 600
