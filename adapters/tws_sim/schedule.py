"""IB's day on the simulator's clock: the nightly server reset and the daily automatic restart.

IB resets its servers every night (North America: around 23:45-00:45 New York): TWS loses IB (error 1100)
with the API sockets up, then gets it back (1101 "data lost": market data must be requested again, or
1102 "data maintained"). TWS and IB Gateway also restart themselves once a day at a configured time
(IB's "Auto restart"): the API sockets close, and clients reconnect when it is back. The schedule says
which of these moments the clock crossed between two readings, in order, so a clock that jumps (tests,
`bench week`) still goes through each one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from adapters.tws_sim.config import SimConfig

ZONE = ZoneInfo("America/New_York")
RESET_START, RESET_END, RESTART_START, RESTART_END = (
    "reset_start",
    "reset_end",
    "restart_start",
    "restart_end",
)


def _minutes(text: str) -> int:
    hours, _, minutes = text.partition(":")
    value = int(hours) * 60 + int(minutes)
    if not 0 <= value < 24 * 60:
        raise ValueError(f"not a time of day: {text!r}")
    return value


class Schedule:
    def __init__(self, config: SimConfig, start: float) -> None:
        self._daily: list[tuple[float, str]] = []  # (minutes after local midnight, moment)
        if config.reset_at:
            at = _minutes(config.reset_at)
            self._daily += [(at, RESET_START), (at + config.reset_minutes, RESET_END)]
        if config.restart_at:
            at = _minutes(config.restart_at)
            self._daily += [(at, RESTART_START), (at + config.restart_minutes, RESTART_END)]
        self._last = start

    @property
    def active(self) -> bool:
        return bool(self._daily)

    def crossed(self, now: float) -> list[str]:
        """The moments in (last reading, now], in time order."""
        if not self._daily or now <= self._last:
            return []
        day = datetime.fromtimestamp(self._last, ZONE).date() - timedelta(
            days=1
        )  # a window may span midnight
        found: list[tuple[float, str]] = []
        while True:
            midnight = datetime(day.year, day.month, day.day)
            if midnight.replace(tzinfo=ZONE).timestamp() > now:
                break
            for minutes, moment in self._daily:
                # the wall-clock time in the zone, not midnight + elapsed seconds: a DST day is 23 or 25 hours
                at = (midnight + timedelta(minutes=minutes)).replace(tzinfo=ZONE).timestamp()
                if self._last < at <= now:
                    found.append((at, moment))
            day += timedelta(days=1)
        self._last = now
        return [moment for _at, moment in sorted(found)]
