"""Trading sessions for the daily loss limit: `session_reset` is a time of day with its zone
("17:00 America/New_York"); a session runs from one such boundary to the next."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NS = 1_000_000_000


@lru_cache(maxsize=64)
def parse_reset(text: str) -> tuple[time, ZoneInfo]:
    """`HH:MM[:SS] Zone`; ValueError saying what is wrong."""
    clock, _, zone = text.strip().partition(" ")
    try:
        at = time.fromisoformat(clock)
    except ValueError:
        raise ValueError(
            f"session_reset {text!r}: expected a time and its zone, e.g. '17:00 America/New_York'"
        ) from None
    try:
        return at, ZoneInfo(zone.strip() or "?")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"session_reset {text!r}: {zone.strip() or 'no zone'} is not an IANA time zone"
        ) from None


def session_start(now_ns: int, reset: str) -> int:
    """When the session holding `now_ns` began: the latest boundary at or before it (UTC ns)."""
    at, zone = parse_reset(reset)
    now = datetime.fromtimestamp(now_ns / NS, zone)
    start = datetime.combine(now.date(), at, zone)
    if start > now:
        start = datetime.combine(now.date() - timedelta(days=1), at, zone)
    return int(start.timestamp()) * NS + start.microsecond * 1000
