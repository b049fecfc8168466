"""The TWS time zone: read from the handshake, used for execution times that carry no zone.

TWS answers the API handshake with `serverVersion` and its connection time, e.g. `20250323 22:21:01
Greenwich Mean Time` (Java's long zone name), `20240105 09:30:00 EST`, or an IANA name. Execution times
in the `YYYYMMDD  HH:MM:SS` form are in that zone. The libraries drop the connection time, so the
adapter reads the handshake frame itself (`HandshakeReader`) and resolves the name here: IANA names as
they are; Java / Windows names and abbreviations through `ALIASES` (rust-ibapi's table, extended); where
a name is ambiguous (CST: Chicago or Shanghai) the candidate whose UTC offset matches the connection
time against the local clock wins.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "Greenwich Mean Time": ("Europe/London",),
    "GMT Standard Time": ("Europe/London",),
    "British Summer Time": ("Europe/London",),
    "GMT": ("Europe/London", "UTC"),
    "BST": ("Europe/London",),
    "Coordinated Universal Time": ("UTC",),
    "EST": ("America/New_York",),
    "EDT": ("America/New_York",),
    "Eastern Standard Time": ("America/New_York",),
    "Eastern Daylight Time": ("America/New_York",),
    "CST": ("America/Chicago", "Asia/Shanghai"),
    "CDT": ("America/Chicago",),
    "Central Standard Time": ("America/Chicago",),
    "Central Daylight Time": ("America/Chicago",),
    "MST": ("America/Denver",),
    "MDT": ("America/Denver",),
    "PST": ("America/Los_Angeles",),
    "PDT": ("America/Los_Angeles",),
    "Pacific Standard Time": ("America/Los_Angeles",),
    "Pacific Daylight Time": ("America/Los_Angeles",),
    "CET": ("Europe/Berlin",),
    "CEST": ("Europe/Berlin",),
    "MET": ("Europe/Berlin",),
    "MEST": ("Europe/Berlin",),
    "Central European Time": ("Europe/Berlin",),
    "Central European Standard Time": ("Europe/Warsaw",),
    "Central European Summer Time": ("Europe/Warsaw",),
    "W. Europe Standard Time": ("Europe/Berlin",),
    "Romance Standard Time": ("Europe/Paris",),
    "EET": ("Europe/Athens",),
    "EEST": ("Europe/Athens",),
    "E. Europe Standard Time": ("Europe/Bucharest",),
    "Eastern European Standard Time": ("Europe/Athens",),
    "Eastern European Summer Time": ("Europe/Athens",),
    "FLE Standard Time": ("Europe/Helsinki",),
    "GTB Standard Time": ("Europe/Athens",),
    "China Standard Time": ("Asia/Shanghai",),
    "中国标准时间": ("Asia/Shanghai",),
    "北京时间": ("Asia/Shanghai",),
    "HKT": ("Asia/Hong_Kong",),
    "Hong Kong Time": ("Asia/Hong_Kong",),
    "SGT": ("Asia/Singapore",),
    "Singapore Time": ("Asia/Singapore",),
    "JST": ("Asia/Tokyo",),
    "Japan Standard Time": ("Asia/Tokyo",),
    "IST": ("Asia/Kolkata",),
    "India Standard Time": ("Asia/Kolkata",),
    "AEST": ("Australia/Sydney",),
    "AEDT": ("Australia/Sydney",),
}
_QUARTER_HOUR: Final = timedelta(minutes=15)


def zone(name: str) -> ZoneInfo | None:
    """A zone named by IB (IANA, Java long name, Windows name or abbreviation), else None."""
    for candidate in candidates(name):
        found = _zoneinfo(candidate)
        if found is not None:
            return found
    return None


def candidates(name: str) -> tuple[str, ...]:
    name = name.strip()
    if "\ufffd" in name:  # GB2312 text read as UTF-8: a Chinese installation (rust-ibapi)
        return ("Asia/Shanghai",)
    return ALIASES.get(name, (name,))


def zone_of_connect_time(conn_time: str, now: datetime | None = None) -> str | None:
    """The IANA name of the zone in the handshake's connection time (`YYYYMMDD HH:MM:SS Zone`), or None.

    Of several candidates, the one whose offset matches the connection time against `now` (the local
    UTC clock, to the quarter hour) wins; without a match, the first valid one."""
    parts = conn_time.strip().split(maxsplit=2)
    if len(parts) < 3:
        return None
    names = [c for c in candidates(parts[2]) if _zoneinfo(c) is not None]
    if not names:
        return None
    try:
        local = datetime.strptime(f"{parts[0]} {parts[1]}", "%Y%m%d %H:%M:%S")
    except ValueError:
        return names[0]
    observed = _round(local - (now or datetime.now(UTC)).replace(tzinfo=None))
    for candidate in names:
        offset = ZoneInfo(candidate).utcoffset(local)
        if offset is not None and _round(offset) == observed:
            return candidate
    return names[0]


def _round(delta: timedelta) -> timedelta:
    return round(delta / _QUARTER_HOUR) * _QUARTER_HOUR


def _zoneinfo(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


class HandshakeReader:
    """Fed the socket's bytes from the start of a connection; keeps the handshake's connection time.

    The handshake reply is the first frame TWS sends: a 4-byte length, then `version\\0connTime\\0`."""

    def __init__(self) -> None:
        self.conn_time = ""
        self._buffer = b""
        self._done = False

    def reset(self) -> None:
        self.conn_time, self._buffer, self._done = "", b"", False

    def feed(self, data: bytes) -> None:
        if self._done:
            return
        self._buffer += data
        if len(self._buffer) < 4:
            return
        end = 4 + struct.unpack(">I", self._buffer[:4])[0]
        if len(self._buffer) < end:
            return
        fields = self._buffer[4:end].decode(errors="replace").split("\0")
        self.conn_time = fields[1] if len(fields) > 2 else ""
        self._buffer, self._done = b"", True
