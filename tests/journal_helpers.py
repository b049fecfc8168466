"""Shared by the journal tests: a realistic event mix and byte-level views of segment files."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from events.frames import iter_frames
from events.schema import (
    AccountValueReported,
    CommissionReported,
    Contract,
    Event,
    ExecutionReported,
    OrderStatusReported,
)
from events.segments import SEGMENT_HEADER_SIZE, list_segments

AAPL = Contract("AAPL", con_id=265598, primary_exchange="NASDAQ")


def mixed_event(i: int) -> Event:
    """The i-th event of a realistic mix; `numbered` tells which i an event came from."""
    match i % 4:
        case 0:
            return AccountValueReported(account="DU123", key="NetLiquidation", value=str(i), currency="USD")
        case 1:
            return OrderStatusReported(
                order_id=i, perm_id=1000 + i, client_id=1, status="Submitted",
                filled=Decimal(0), remaining=Decimal(100),
            )  # fmt: skip
        case 2:
            return ExecutionReported(
                exec_id=f"0000e0d5.{i}.01.01", order_id=i, perm_id=1000 + i, client_id=1, order_ref=f"c-{i}",
                account="DU123", contract=AAPL, side="BOT", shares=Decimal(100), price=189.25,
                cum_qty=Decimal(100), avg_price=189.25, time="20261120 14:03:07 US/Eastern",
            )  # fmt: skip
        case _:
            return CommissionReported(exec_id=f"0000e0d5.{i}.01.01", commission=1.0, currency="USD")


def numbered(i: int) -> AccountValueReported:
    return AccountValueReported(account="DU1", key="n", value=str(i))


def frame_ends(path: Path) -> list[tuple[int, int]]:
    """(seq, byte offset just after its frame) of every good frame of a segment file."""
    data = path.read_bytes()
    first = int(path.name.split(".")[0])
    return [(seq, end) for seq, _, end in iter_frames(data, SEGMENT_HEADER_SIZE, first)]


def last_segment(directory: Path) -> Path:
    return list_segments(directory)[-1][1]


def image(directory: Path) -> dict[str, bytes]:
    """Every file's bytes, by name (what a kill -9 leaves behind is exactly this)."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def cut_after(directory: Path, seq: int) -> None:
    """Truncate the journal right after the frame `seq`, as an operator would at a frame boundary."""
    from events.frames import HEADER

    (first, path), *_ = reversed(list_segments(directory))
    # only within the last segment: below it, this would empty the last segment and keep the older ones
    assert first - 1 <= seq, f"seq {seq} is before the last segment, which starts at {first}"
    data = path.read_bytes()
    pos = SEGMENT_HEADER_SIZE
    for _ in range(first, seq + 1):
        pos += HEADER.size + HEADER.unpack_from(data, pos)[0]
    with path.open("r+b") as f:
        f.truncate(pos)
