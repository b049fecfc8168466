"""The simulator's configuration, loadable from Python, TOML or the `oms sim` flags."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec

from adapters.tws_sim.faults import FaultConfig

MIN_SERVER_VERSION = 157
MAX_SERVER_VERSION = 176  # the highest layout ib_insync 0.9.86 can read


class SimConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seed: int = 1
    accounts: tuple[str, ...] = ("DU123456",)
    max_server_version: int = 157
    tick_interval_ms: float | None = None
    partial_fills: int = 1
    faults: FaultConfig = FaultConfig()
    state_dir: str | None = None
    commission_per_share: float = 0.005
    min_commission: float = 1.0
    starting_cash: float = 1_000_000.0

    def __post_init__(self) -> None:
        if not MIN_SERVER_VERSION <= self.max_server_version <= MAX_SERVER_VERSION:
            raise ValueError(
                f"max_server_version must be in [{MIN_SERVER_VERSION}, {MAX_SERVER_VERSION}], "
                f"got {self.max_server_version}"
            )
        if not self.accounts:
            raise ValueError("at least one account is needed (managedAccounts must not be empty)")
        if self.partial_fills < 1:
            raise ValueError("partial_fills must be >= 1")


def load_config(path: Path) -> SimConfig:
    """A SimConfig from a TOML file (the keys are the field names; `[faults]` is a table)."""
    return msgspec.convert(tomllib.loads(path.read_text()), SimConfig)
