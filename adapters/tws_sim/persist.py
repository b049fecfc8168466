"""The simulated paper account on disk, so a restarted simulator is like reconnecting to the same account."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from adapters.tws_sim.account import Account, ExecRecord
from adapters.tws_sim.matching import SimOrder

STATE_FILE = "tws_sim_state.json"


class SavedState(msgspec.Struct):
    orders: list[SimOrder] = msgspec.field(default_factory=list)
    accounts: list[Account] = msgspec.field(default_factory=list)
    executions: list[ExecRecord] = msgspec.field(default_factory=list)
    next_ids: dict[int, int] = msgspec.field(default_factory=dict)
    last_perm_id: int = 0
    exec_seq: int = 0
    prices: dict[str, float] = msgspec.field(default_factory=dict)


def load_state(state_dir: str) -> SavedState | None:
    path = Path(state_dir) / STATE_FILE
    if not path.exists():
        return None
    return msgspec.json.decode(path.read_bytes(), type=SavedState)


def save_state(state_dir: str, state: SavedState) -> None:
    """Write atomically (temp file, fsync, rename), owner-only permissions."""
    directory = Path(state_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = directory / (STATE_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, msgspec.json.encode(state))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, directory / STATE_FILE)
