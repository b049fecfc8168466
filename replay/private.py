"""Files the replay tools write (archives, their WAL, Parquet exports) are private: 0600, dirs 0700.

DuckDB creates its database and WAL files itself, so the process umask is narrowed while it writes;
the CLI is single-threaded there, which makes the process-wide umask safe to borrow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def private_umask() -> Iterator[None]:
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def make_private(path: Path) -> None:
    """Tighten what exists now (a file written before this version, or by another tool)."""
    for candidate in (path, path.with_name(path.name + ".wal")):
        if candidate.is_dir():
            candidate.chmod(0o700)
        elif candidate.exists():
            candidate.chmod(0o600)
