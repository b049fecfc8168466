"""Benchmarks: run by hand (`python -m bench`) or by CI in a short mode, as a report, never as a gate."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def temp_folder(prefix: str) -> Iterator[Path]:
    """A fresh temporary directory for one benchmark run, removed afterwards whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
