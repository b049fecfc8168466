"""`oms replay nats://...` and `oms archive nats://...` read a mirrored session as they read its data
directory: same envelopes, same state, same archive."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import duckdb
import msgspec
import pytest

from adapters.nats.connect import mirror_config
from adapters.nats.local_server import LocalNatsServer
from adapters.nats.mirror import Mirror
from adapters.nats.source import NatsSource
from events.reader import JournalReader
from events.snapshots import write_snapshot
from oms.cli import main
from oms.state.codec import encode_state
from oms.state.fold import fold
from tests.nats_helpers import nats_server, new_stream
from tests.test_nats_mirror import mirror_until
from tests.test_replay_support import explicit_events, write_journal

STREAM = new_stream()


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNatsServer, Path]]:
    """A data directory with the replay tests' session, mirrored (snapshot included) into STREAM."""
    root = tmp_path_factory.mktemp("replay")
    data = root / "data"
    write_journal(data / "journal", explicit_events())
    write_snapshot(data / "journal", 9, state_at_9(data))
    with nats_server(root / "nats") as server:
        config = msgspec.structs.replace(mirror_config(url=server.url, stream=STREAM), status_interval_s=0.05)
        asyncio.run(mirror_until(Mirror(data / "journal", config), 15, snapshot_seq=9))
        yield server, data


def state_at_9(data: Path) -> bytes:
    return encode_state(fold(JournalReader(data / "journal").read(1, 9)))


def oms(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_source_reads_what_the_journal_holds(mirrored: tuple[LocalNatsServer, Path]) -> None:
    server, data = mirrored
    source = NatsSource(f"{server.url}/{STREAM}")
    try:
        journal = JournalReader(data / "journal")
        assert source.last_seq() == 15
        assert list(source.read()) == list(journal.read())
        assert list(source.read(4, 6)) == list(journal.read(4, 6))
        assert list(source.read(16)) == []
        assert source.snapshot() == (9, state_at_9(data))
        assert source.snapshot(max_seq=8) is None
    finally:
        source.close()


def test_replay_of_the_mirror_shows_what_replay_of_the_directory_shows(
    mirrored: tuple[LocalNatsServer, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    server, data = mirrored
    url = f"{server.url}/{STREAM}"
    for args in (["--at", "9"], ["--order", "A1"], ["--diff", "7", "9"]):
        code, from_stream, _ = oms(capsys, "replay", url, *args)
        assert code == 0
        assert from_stream == oms(capsys, "replay", data, *args)[1]
    assert "state at seq 9" in oms(capsys, "replay", url, "--at", "9")[1]


def test_archive_of_the_mirror_equals_the_archive_of_the_directory(
    mirrored: tuple[LocalNatsServer, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, data = mirrored
    code, out, _ = oms(capsys, "archive", f"{server.url}/{STREAM}", tmp_path / "stream.duckdb")
    assert code == 0 and "archived seqs 1..15 (15 events)" in out
    code, out, _ = oms(capsys, "archive", f"{server.url}/{STREAM}", tmp_path / "stream.duckdb")
    assert code == 0 and "nothing new" in out
    assert oms(capsys, "archive", data, tmp_path / "dir.duckdb")[0] == 0
    query = "SELECT seq, ts_ns, kind, event FROM events ORDER BY seq"
    rows = []
    for name in ("stream.duckdb", "dir.duckdb"):
        with duckdb.connect(str(tmp_path / name), read_only=True) as con:
            rows.append(con.execute(query).fetchall())
    assert rows[0] == rows[1] and len(rows[0]) == 15


def test_a_missing_stream_or_server_is_refused_plainly(
    mirrored: tuple[LocalNatsServer, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, _ = mirrored
    code, _, err = oms(capsys, "replay", f"{server.url}/NOSUCH", "--at", "1")
    assert code == 2 and "no stream NOSUCH" in err
    code, _, err = oms(capsys, "archive", "nats://127.0.0.1:1/OMS", tmp_path / "a.duckdb")
    assert code == 2 and "no NATS server answers" in err
    code, _, err = oms(capsys, "replay", f"{server.url}/{STREAM}", "--verify")
    assert code == 2 and "no snapshots" in err and "oms replay DATA_DIR --verify" in err
