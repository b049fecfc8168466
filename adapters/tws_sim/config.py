"""The simulator's configuration, loadable from Python, TOML or the `oms sim` flags."""

from __future__ import annotations

import tomllib
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec

from adapters.tws_sim.faults import FaultConfig
from adapters.tws_sim.hours import start_epoch

MIN_SERVER_VERSION = 157
MAX_SERVER_VERSION = 178  # ib_async 2.1.0's MaxClientVersion; ib_insync 0.9.86 stops at 176
SERVER_VERSIONS = (157, 176, 178)  # the layouts tested against both client libraries


class SimConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seed: int = 1
    accounts: tuple[str, ...] = ("DU123456",)
    max_server_version: int = 178
    tick_interval_ms: float | None = None
    partial_fills: int = 1
    faults: FaultConfig = FaultConfig()
    state_dir: str | None = None
    commission_per_share: float = 0.005
    min_commission: float = 1.0
    starting_cash: float = 1_000_000.0
    clock_start: str = "open"  # "open" (10:00 New York, latest weekday), "wall", or ISO 8601 with zone
    tws_time_zone: str = "UTC"  # TWS's zone: execution times, and the midnight reqExecutions counts from
    max_msg_rate: int = 50  # requests per second per client before error 100 (0: no limit)
    master_client_id: int | None = None  # TWS's "Master API client ID": sees every order live
    control_file: str | None = None  # where the control channel writes its endpoint (control.py)
    # IB's day (schedule.py), in New York time, "" = off: the nightly server reset (1100, then 1101 or
    # 1102, sockets up) and TWS / IB Gateway's daily automatic restart (sockets closed, then back)
    reset_at: str = ""  # "HH:MM"
    reset_minutes: float = 5.0
    reset_data_lost: bool = True  # 1101 after the reset (market data must be requested again), else 1102
    restart_at: str = ""  # "HH:MM"
    restart_minutes: float = 1.0

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
        if self.max_msg_rate < 0:
            raise ValueError("max_msg_rate must be >= 0 (0: no limit)")
        for name in ("reset_at", "restart_at"):
            text = getattr(self, name)
            hh, _, mm = text.partition(":")
            if text and not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
                raise ValueError(f"{name} must be a time of day HH:MM (New York) or empty, got {text!r}")
        if self.reset_minutes <= 0 or self.restart_minutes <= 0:
            raise ValueError("reset_minutes and restart_minutes must be > 0")
        try:
            ZoneInfo(self.tws_time_zone)
            start_epoch(self.clock_start)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"bad clock setting: {exc}") from exc


def load_config(path: Path) -> SimConfig:
    """A SimConfig from a TOML file (the keys are the field names; `[faults]` is a table)."""
    return msgspec.convert(tomllib.loads(path.read_text()), SimConfig)
