"""Every SQL example in docs/replay.md runs, as written, on an archived session, and answers it."""

from __future__ import annotations

import re
from pathlib import Path

from replay.archive import archive_journal
from replay.queries import connect, run
from tests.test_replay_support import A1_SEQS, explicit_events, write_journal

DOC = Path(__file__).resolve().parents[1] / "docs" / "replay.md"


def test_the_sql_examples_of_the_replay_doc_run(tmp_path: Path) -> None:
    examples = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(examples) >= 6, "docs/replay.md lost its examples"
    write_journal(tmp_path / "data" / "journal", explicit_events())
    archive_journal(tmp_path / "data", tmp_path / "s.duckdb")
    con = connect(tmp_path / "s.duckdb")
    try:
        results = [run(con, sql) for sql in examples]
    finally:
        con.close()
    assert [row[0] for row in results[0].rows] == A1_SEQS  # the timeline of A1
    assert [row[0] for row in results[1].rows] == ["A1"]  # found by its permId
    assert all(result.rows for result in results), [
        sql for sql, r in zip(examples, results, strict=True) if not r.rows
    ]
