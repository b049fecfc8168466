"""Replay's own checkpoints (replay.checkpoints): kept beside the journal on a long way to a point, used by
the next point near it, owner-only, and never trusted blindly: a checkpoint whose journal frame changed,
or whose file is damaged, is deleted and the state is folded as if it were not there."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from events.schema import AccountValueReported, Event
from events.snapshots import list_snapshots
from oms.state.fold import fold
from replay import checkpoints
from replay.source import JournalSource
from replay.states import state_at, states_at
from tests.test_replay_support import explicit_events, write_journal

EVERY = 20


@pytest.fixture(autouse=True)
def _small_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoints, "EVERY", EVERY)


def _session(n: int, salt: str = "") -> list[Event]:
    events: list[Event] = list(explicit_events())
    events += [
        AccountValueReported(account="DU1", key="NetLiquidation", value=f"{salt}{i}", currency="USD")
        for i in range(n - len(events))
    ]
    return events


def _kept(journal: Path) -> list[int]:
    return [info.seq for info in list_snapshots(journal, checkpoints.checkpoint_dir(journal))]


def test_a_long_way_to_a_point_keeps_a_checkpoint_the_next_point_starts_from(tmp_path: Path) -> None:
    journal = write_journal(tmp_path / "journal", _session(130))
    source = JournalSource(tmp_path)
    assert source.snapshot(125) is None

    first = state_at(source, 125)

    assert _kept(journal) == [120]
    folder = checkpoints.checkpoint_dir(journal)
    assert folder.parent.parent == journal.parent  # beside the journal, not in the writer's directory
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(folder.parent).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in folder.iterdir())
    start = source.snapshot(127)
    assert start is not None and start[0] == 120
    again = state_at(source, 127)
    whole = fold(source.read(1, 127))
    assert again == whole
    assert first == fold(source.read(1, 125))
    assert state_at(source, 127, use_snapshots=False) == whole


def test_a_short_way_keeps_nothing_and_several_points_keep_the_last_mark_of_each_long_way(
    tmp_path: Path,
) -> None:
    journal = write_journal(tmp_path / "journal", _session(130))
    source = JournalSource(tmp_path)
    state_at(source, EVERY + 5)
    assert _kept(journal) == [EVERY]
    state_at(source, EVERY + 15)  # from the checkpoint at EVERY: a short tail
    assert _kept(journal) == [EVERY]
    states = list(states_at(source, [70, 129]))
    assert _kept(journal) == [EVERY, 60, 120]
    assert states == [fold(source.read(1, 70)), fold(source.read(1, 129))]


def test_a_point_past_the_end_keeps_no_checkpoint_for_seqs_the_log_lacks(tmp_path: Path) -> None:
    journal = write_journal(tmp_path / "journal", _session(50))
    source = JournalSource(tmp_path)
    assert state_at(source, 75) == fold(source.read())
    assert _kept(journal) == []


def test_a_checkpoint_of_another_log_is_deleted_and_never_used(tmp_path: Path) -> None:
    journal = write_journal(tmp_path / "journal", _session(70))
    state_at(JournalSource(tmp_path), 65)
    assert _kept(journal) == [60]
    shutil.rmtree(journal)  # the log is replaced by another one, as after a cut that grew again
    write_journal(journal, _session(70, salt="other-"))
    source = JournalSource(tmp_path)

    state = state_at(source, 65)

    assert state == fold(source.read(1, 65))
    assert _kept(journal) == [60]  # deleted, then kept again from this log
    start = source.snapshot(65)
    assert start is not None and start[0] == 60
    assert state_at(source, 65) == state


def test_a_damaged_checkpoint_is_deleted_and_the_state_folded_without_it(tmp_path: Path) -> None:
    journal = write_journal(tmp_path / "journal", _session(70))
    source = JournalSource(tmp_path)
    state_at(source, 65)
    (path,) = checkpoints.checkpoint_dir(journal).iterdir()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))

    assert source.snapshot(65) is None  # the damaged one is gone; the service has no snapshot
    assert not path.exists()
    assert state_at(source, 65) == fold(source.read(1, 65))


def test_the_cache_keeps_to_its_budget_dropping_the_least_recently_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = write_journal(tmp_path / "journal", _session(130))
    source = JournalSource(tmp_path)
    state_at(source, 45)
    state_at(source, 85)
    infos = {info.seq: info for info in list_snapshots(journal, checkpoints.checkpoint_dir(journal))}
    assert sorted(infos) == [40, 80]
    os.utime(infos[80].path, ns=(1, 1))
    start = source.snapshot(45)  # using the checkpoint at 40 makes it the most recently used
    assert start is not None and start[0] == 40
    monkeypatch.setattr(checkpoints, "BUDGET_BYTES", infos[40].size + infos[80].size + 16)

    checkpoints.keep(journal, 120, fold(source.read(1, 120)))

    assert _kept(journal) == [40, 120]  # 80 was used least recently
    start = source.snapshot(125)
    assert start is not None and start[0] == 120


def test_a_short_way_from_a_large_stored_state_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing a checkpoint costs about what decoding it does: not worth it after a short fold from a
    large state (here: every byte of the service's snapshot counts as an event of tail)."""
    from events.snapshots import write_snapshot
    from oms.state.codec import encode_state

    journal = write_journal(tmp_path / "journal", _session(130))
    source = JournalSource(tmp_path)
    write_snapshot(journal, 10, encode_state(fold(source.read(1, 10))))
    monkeypatch.setattr(checkpoints, "BYTES_PER_EVENT", 1)
    assert state_at(source, 125) == fold(source.read(1, 125))
    assert _kept(journal) == []
    monkeypatch.setattr(checkpoints, "BYTES_PER_EVENT", 1_000)
    assert state_at(source, 125) == fold(source.read(1, 125))
    assert _kept(journal) == [120]
