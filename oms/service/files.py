"""Files the service writes beside its journal: owner-only, replaced atomically."""

from __future__ import annotations

import os
from pathlib import Path

from events.segments import fsync_dir


def write_private(path: Path, data: bytes, fsync: bool = False) -> None:
    """Atomically, mode 0600; `fsync`: the file on disk before it replaces the old one, and the rename
    on disk after (state that must survive a power loss, not only a crash). A failed write leaves the
    old file and no temporary file behind."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)
