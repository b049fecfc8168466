"""Stands in for the service in the mirror's kill -9 tests: appends numbered events under `group` at a
steady pace (about 2,000 a second), for ever, as a service's journal grows while IB talks.

    python tests/nats_writer_child.py JOURNAL_DIRECTORY
"""

from __future__ import annotations

import sys
import time

from events.journal import JournalWriter
from events.schema import AccountValueReported


def main(directory: str) -> None:
    with JournalWriter.open(directory, durability="group", group_commit_ms=2.0, segment_bytes=64 << 10) as w:
        print(f"ready {w.last_seq}", flush=True)
        while True:
            for _ in range(20):
                w.append(AccountValueReported(account="DU1", key="n", value=str(w.last_seq + 1)))
            w.flush()
            time.sleep(0.01)  # pacing, not synchronization: a steady flow of events


if __name__ == "__main__":
    main(sys.argv[1])
