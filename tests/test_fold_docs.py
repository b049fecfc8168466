"""The example in docs/state.md runs as written, and its state table matches the code's."""

from __future__ import annotations

import re
from pathlib import Path

from oms.state.orders import ORDER_STATE_TABLE

DOC = Path(__file__).resolve().parents[1] / "docs" / "state.md"


def test_the_state_doc_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks, "docs/state.md lost its example"
    exec(compile(blocks[0], str(DOC), "exec"), {})  # our own docs, not input from a file or socket


def test_the_doc_table_lists_every_transition_of_the_code() -> None:
    text = DOC.read_text()
    header = re.search(r"^\| from \\ trigger \|(.*)\|$", text, flags=re.MULTILINE)
    assert header is not None
    triggers = [t.strip() for t in header.group(1).split("|")]
    documented: dict[str, dict[str, str]] = {}
    for line in text[header.end() :].split("\n")[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        for state in cells[0].split(", "):
            documented[state] = {
                t: c for t, c in zip(triggers, cells[1:], strict=True) if c and c != "(stays)"
            }
    assert documented == ORDER_STATE_TABLE
