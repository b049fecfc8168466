"""Fixtures shared by every test module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.test_service_support import close_open_wires

# CI runs the property tests with a fixed seed (the same examples every run: a red CI is a real bug,
# never a lucky draw); locally every run draws new sessions.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True)
def _no_wire_left_open() -> Iterator[None]:
    """Every test's raw wires closed, even one that failed before closing its own."""
    yield
    close_open_wires()


@pytest.fixture
def captures_dir() -> Path:
    """The real TWS captures in ../shared/ib-captures, read in place; tests skip cleanly without them."""
    path = SHARED / "ib-captures"
    if not path.is_dir():
        pytest.skip(f"real TWS captures not found at {path}")
    return path
