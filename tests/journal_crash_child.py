"""Child of the kill -9 test: appends under `group` forever, printing each seq acknowledged durable.

    python tests/journal_crash_child.py DIRECTORY SEGMENT_BYTES

Event n carries value str(n), so the parent can check every recovered event is the one written.
"""

from __future__ import annotations

import sys

from events.journal import JournalWriter
from events.schema import AccountValueReported


def main(directory: str, segment_bytes: int) -> None:
    with JournalWriter.open(
        directory, durability="group", group_commit_ms=1.0, segment_bytes=segment_bytes
    ) as w:
        print(f"ready {w.last_seq}", flush=True)
        while True:
            for _ in range(25):
                last = w.append(AccountValueReported(account="DU1", key="n", value=str(w.last_seq + 1)))
            w.flush()
            if w.wait_durable(last.seq, timeout=30):
                print(w.durable_seq, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
