"""Fixtures shared by every test module."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def captures_dir() -> Path:
    """The real TWS captures in ../shared/ib-captures, read in place; tests skip cleanly without them."""
    path = SHARED / "ib-captures"
    if not path.is_dir():
        pytest.skip(f"real TWS captures not found at {path}")
    return path
