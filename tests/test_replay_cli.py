"""`oms replay`, `oms archive`, `oms query` end to end through the real `oms` entry point."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from events.segments import list_segments
from oms.cli import main
from tests.test_replay_support import explicit_events, write_journal


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps cells to the terminal's width


@pytest.fixture
def data(tmp_path: Path) -> Path:
    write_journal(tmp_path / "data" / "journal", explicit_events())
    return tmp_path / "data"


def oms(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_archive_then_query_as_table_csv_json_and_parquet(data: Path, tmp_path: Path, capsys) -> None:
    archive = tmp_path / "s.duckdb"
    code, out, _ = oms(capsys, "archive", data, archive)
    assert code == 0 and "archived seqs 1..15 (15 events)" in out
    assert stat.S_IMODE(os.stat(archive).st_mode) == 0o600
    code, out, _ = oms(capsys, "archive", data, archive)
    assert code == 0 and "nothing new" in out

    top_kinds = "SELECT kind, count(*) AS n FROM events GROUP BY kind ORDER BY n DESC, kind LIMIT 2"
    code, out, _ = oms(capsys, "query", archive, top_kinds, "--csv")
    assert (code, out) == (0, "kind,n\nexecution,2\norder_requested,2\n")
    code, out, _ = oms(capsys, "query", archive, "SELECT seq, event FROM events WHERE seq = 3", "--json")
    row = json.loads(out)
    assert row["seq"] == 3 and row["event"]["client_order_id"] == "A1"
    code, out, _ = oms(capsys, "query", archive, "SELECT client_order_id, status FROM orders ORDER BY 1")
    assert code == 0 and "A1" in out and "cancelled" in out and "B2" in out
    code, out, _ = oms(capsys, "query", archive, "--order", "999")
    assert code == 0 and "order A1" in out and "pending_cancel" in out
    parquet = tmp_path / "fills.parquet"
    assert oms(capsys, "query", archive, "SELECT * FROM fills", "--parquet", parquet)[0] == 0
    assert stat.S_IMODE(os.stat(parquet).st_mode) == 0o600
    code, _, err = oms(capsys, "query", archive, "SELECT * FROM nowhere")
    assert code == 1 and "nowhere" in err
    code, _, err = oms(capsys, "query", tmp_path / "missing.duckdb", "SELECT 1")
    assert code == 2 and "not an archive" in err


def test_archive_events_only_fills_events_and_refuses_a_later_full_import(
    data: Path, tmp_path: Path, capsys
) -> None:
    archive = tmp_path / "ev.duckdb"
    code, out, _ = oms(capsys, "archive", data, archive, "--events-only")
    assert code == 0 and "archived seqs 1..15 (15 events)" in out
    code, out, _ = oms(
        capsys,
        "query",
        archive,
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM orders)",
        "--csv",
    )
    assert out.splitlines()[1] == "15,0"
    code, _, err = oms(capsys, "archive", data, archive)
    assert code == 2 and "events-only" in err


def test_archive_export_parquet(data: Path, tmp_path: Path, capsys) -> None:
    code, out, _ = oms(capsys, "archive", data, tmp_path / "s.duckdb", "--export-parquet", tmp_path / "pq")
    assert code == 0 and "Parquet files" in out
    assert (tmp_path / "pq" / "orders.parquet").is_file()


def test_archive_says_so_about_a_torn_tail_and_refuses_a_non_journal(
    data: Path, tmp_path: Path, capsys
) -> None:
    segment = list_segments(data / "journal")[-1][1]
    with segment.open("ab") as f:
        f.write(b"\x30\x00\x00\x00")
    code, out, _ = oms(capsys, "archive", data, tmp_path / "s.duckdb")
    assert code == 0 and "incomplete frame" in " ".join(out.split())
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "readme.md").write_text("hi")
    code, _, err = oms(capsys, "archive", tmp_path / "other", tmp_path / "o.duckdb")
    assert code == 2 and "is not a journal directory" in err
    code, _, err = oms(capsys, "replay", tmp_path / "other")
    assert code == 2 and "is not a journal directory" in err


def test_replay_state_timeline_diff_verify_and_refusals(data: Path, capsys) -> None:
    code, out, _ = oms(capsys, "replay", data, "--at", "14:03:15")
    assert code == 0 and "state at seq 9" in out and "partially_fi" in out
    code, out, _ = oms(capsys, "replay", data, "--order", "A1")
    assert code == 0 and "order A1" in out
    code, out, _ = oms(capsys, "replay", data, "--diff", "9", "7")
    assert code == 0 and "from seq 7 to seq 9" in out
    code, out, _ = oms(capsys, "replay", data, "--verify")
    assert code == 0 and "no snapshots" in out
    assert oms(capsys, "replay", data, "--order", "nope")[0] == 1
    code, _, err = oms(capsys, "replay", data, "--at", "noon-ish")
    assert code == 2 and "neither a seq nor a time" in err
    code, _, err = oms(capsys, "replay", data, "--publish", "tcp://0.0.0.0:5599")
    assert code == 2 and "loopback" in err


def test_replay_step_reads_stdin(data: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n15\nq\n"))
    code, out, _ = oms(capsys, "replay", data, "--step")
    assert code == 0 and "#1 " in out and "#15 " in out and "cancelled" in out


@pytest.mark.parametrize("command", ["replay", "archive", "query"])
def test_every_command_has_help_with_examples(command: str, capsys) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "examples:" in capsys.readouterr().out


def test_archive_into_a_missing_directory_is_refused_plainly(data: Path, tmp_path: Path, capsys) -> None:
    code, _, err = oms(capsys, "archive", data, tmp_path / "missing" / "dir" / "s.duckdb")
    assert code == 2
    assert f"the directory {tmp_path / 'missing' / 'dir'} does not exist" in err
    assert "Traceback" not in err and not (tmp_path / "missing").exists()


def test_narrow_or_piped_tables_never_squeeze_ids(tmp_path: Path, capsys, monkeypatch) -> None:
    from events.schema import Event, OrderRequested
    from tests.test_replay_support import AAPL

    monkeypatch.setenv("COLUMNS", "80")
    ids = [f"momentum-0190a1b2c3d-4e5f6071829{i}" for i in range(3)]
    orders: list[Event] = [
        OrderRequested(
            client_order_id=coid, strategy_id="momentum", account="DU123456", contract=AAPL, side="BUY",
            quantity=Decimal(100), order_type="LMT", limit_price=187.25,
        )
        for coid in ids
    ]  # fmt: skip
    write_journal(tmp_path / "d" / "journal", orders)
    for args in ([], ["--order", ids[1]]):
        code, out, _ = oms(capsys, "replay", tmp_path / "d", *args)
        assert code == 0
        assert max(len(line) for line in out.splitlines()) <= 80
        shown = ids if not args else ids[1:2]
        for coid in shown:  # whole, on one line, never folded into slivers
            assert any(coid in line for line in out.splitlines()), (coid, out)


def test_a_time_before_the_session_is_refused_plainly(data: Path, capsys) -> None:
    code, out, err = oms(capsys, "replay", data, "--at", "1999-01-01T00:00:00")
    assert code == 2 and "(empty UTC)" not in out
    assert "is before the session: its first event (seq 1) was received at" in err


def test_replay_json_prints_the_state_at_a_point_as_one_document(data: Path, capsys) -> None:
    code, out, _ = oms(capsys, "replay", data, "--at", "9", "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"seq", "ts", "orders", "positions", "strategy_positions", "accounts", "fills"}
    assert doc["seq"] == 9
    (a1,) = [o for o in doc["orders"] if o["client_order_id"] == "A1"]
    assert isinstance(a1["quantity"], str) and isinstance(a1["commission"], dict)  # exact, per currency
    for position in doc["positions"]:
        assert isinstance(position["quantity"], str) and isinstance(position["realized_pnl_net"], dict)
    code, out, _ = oms(capsys, "replay", data, "--json")
    assert code == 0 and json.loads(out)["seq"] == 15
    code, _, err = oms(capsys, "replay", data, "--order", "A1", "--json")
    assert code == 2 and "--json" in err
