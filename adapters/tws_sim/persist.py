"""The simulated paper account on disk, so a restarted simulator is like reconnecting to the same account.

A snapshot (`tws_sim_state.json`, written atomically) plus an append-only log of what changed since
(`tws_sim_log.jsonl`: one record per order change, execution or id advance). Each change costs one
append, whatever the account's history; the log is folded into a new snapshot on start and on close.
Accounts are not stored: they are rebuilt by replaying the executions. The log is written through
(no fsync per record: the simulator stands for TWS, whose own state is not ours to make durable); the
snapshot is fsynced.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import msgspec

from adapters.tws_sim.account import ExecRecord
from adapters.tws_sim.matching import SimOrder

STATE_FILE = "tws_sim_state.json"
LOG_FILE = "tws_sim_log.jsonl"


class SavedState(msgspec.Struct):
    orders: list[SimOrder] = msgspec.field(default_factory=list)
    executions: list[ExecRecord] = msgspec.field(default_factory=list)
    next_ids: dict[int, int] = msgspec.field(default_factory=dict)
    last_perm_id: int = 0
    exec_seq: int = 0
    prices: dict[str, float] = msgspec.field(default_factory=dict)


class OrderChanged(msgspec.Struct, tag="o"):
    order: SimOrder


class Executed(msgspec.Struct, tag="e"):
    execution: ExecRecord
    exec_seq: int


class IdsAdvanced(msgspec.Struct, tag="n"):
    client_id: int
    next_id: int


Record = OrderChanged | Executed | IdsAdvanced
_decoder = msgspec.json.Decoder(Record)
_encoder = msgspec.json.Encoder()


def load_state(state_dir: str) -> SavedState | None:
    """The snapshot with the log replayed onto it; None when there is neither. A torn last line (a crash
    mid-append) is ignored."""
    directory = Path(state_dir)
    snap, log = directory / STATE_FILE, directory / LOG_FILE
    if not snap.exists() and not log.exists():
        return None
    state = msgspec.json.decode(snap.read_bytes(), type=SavedState) if snap.exists() else SavedState()
    if not log.exists():
        return state
    orders = {o_key(o): o for o in state.orders}
    for line in log.read_bytes().splitlines():
        try:
            record = _decoder.decode(line)
        except msgspec.DecodeError:
            break
        if isinstance(record, OrderChanged):
            orders[o_key(record.order)] = record.order
        elif isinstance(record, Executed):
            state.executions.append(record.execution)
            state.exec_seq = max(state.exec_seq, record.exec_seq)
        else:
            state.next_ids[record.client_id] = max(state.next_ids.get(record.client_id, 1), record.next_id)
    state.orders = list(orders.values())
    state.last_perm_id = max([state.last_perm_id, *(o.perm_id for o in state.orders)])
    return state


def o_key(order: SimOrder) -> tuple[int, int]:
    return (order.client_id, order.order_id)


def save_state(state_dir: str, state: SavedState) -> None:
    """Write the snapshot atomically (temp file, fsync, rename), owner-only, then empty the log."""
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
    (directory / LOG_FILE).unlink(missing_ok=True)


class ChangeLog:
    """Appends one JSON line per change; constant cost per order event."""

    def __init__(self, state_dir: str) -> None:
        directory = Path(state_dir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(directory / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file: IO[bytes] = os.fdopen(fd, "ab", buffering=0)

    def append(self, record: Record) -> None:
        self._file.write(_encoder.encode(record) + b"\n")

    def close(self) -> None:
        self._file.close()
