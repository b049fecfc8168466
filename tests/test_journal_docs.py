"""The example in docs/journal.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "journal.md"


def test_the_journal_doc_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks, "docs/journal.md lost its example"
    namespace = {"data_dir": tmp_path / "data"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)  # our own docs, not input from a file or socket
    assert (tmp_path / "data" / "00000000000000000001.seg").exists()
