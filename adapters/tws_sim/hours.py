"""Trading sessions and the simulator's clock.

Each instrument has a session: its time zone, its trading hours (when orders flagged outside-RTH work)
and its liquid hours (regular trading hours, when every order works), as IB's contract details give them.
The clock is the simulator's "now": it runs at wall-clock speed from a start the configuration picks, and
tests drive it (`set`, `advance`) to cross a close or a midnight.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

Span = tuple[int, int]  # minutes from local midnight: [start, end)
Week = tuple[tuple[Span, ...], ...]  # per weekday, Monday first


class Session(msgspec.Struct, frozen=True):
    tz: str
    trading: Week
    liquid: Week


def _hm(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _week(
    weekdays: tuple[Span, ...], sunday: tuple[Span, ...] = (), friday: tuple[Span, ...] | None = None
) -> Week:
    fri = weekdays if friday is None else friday
    return (weekdays, weekdays, weekdays, weekdays, fri, (), sunday)


def _span(a: str, b: str) -> Span:
    return (_hm(a), _hm(b))


_US = _week((_span("09:30", "16:00"),))
_FX = _week(  # IDEALPRO: Sunday 17:15 to Friday 17:00 New York, a daily break 17:00-17:15; all liquid
    (_span("00:00", "17:00"), _span("17:15", "24:00")),
    (_span("17:15", "24:00"),),
    (_span("00:00", "17:00"),),
)
SESSIONS: dict[str, Session] = {
    "us_stock": Session("America/New_York", _week((_span("04:00", "20:00"),)), _US),
    "us_option": Session("America/New_York", _US, _US),
    "xetra": Session("Europe/Berlin", _week((_span("08:00", "22:00"),)), _week((_span("09:00", "17:30"),))),
    "tse": Session(
        "Asia/Tokyo",
        _week((_span("09:00", "15:30"),)),
        _week((_span("09:00", "11:30"), _span("12:30", "15:30"))),
    ),
    "cme_equity": Session(
        "America/Chicago",
        _week(
            (_span("00:00", "16:00"), _span("17:00", "24:00")),
            (_span("17:00", "24:00"),),
            (_span("00:00", "16:00"),),
        ),
        _week((_span("08:30", "15:00"),)),
    ),
    "fx": Session("America/New_York", _FX, _FX),
}


def _intervals(session: Session, liquid: bool, day: date) -> list[tuple[datetime, datetime]]:
    tz = ZoneInfo(session.tz)
    spans = (session.liquid if liquid else session.trading)[day.weekday()]
    base = datetime(day.year, day.month, day.day, tzinfo=tz)
    return [(base + timedelta(minutes=a), base + timedelta(minutes=b)) for a, b in spans]


def _merged(
    session: Session, liquid: bool, around: datetime, days: int = 8
) -> list[tuple[datetime, datetime]]:
    """The sessions from the day before `around` on, adjacent spans (across midnight) joined."""
    start = around.astimezone(ZoneInfo(session.tz)).date() - timedelta(days=1)
    out: list[tuple[datetime, datetime]] = []
    for n in range(days):
        for a, b in _intervals(session, liquid, start + timedelta(days=n)):
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
    return out


def is_open(session: str, epoch: float, liquid: bool) -> bool:
    """Whether the session is open at `epoch` (sessions change on whole minutes, so this is cached per
    minute: matching asks it for every working order on every tick)."""
    return _open_in_minute(session, int(epoch // 60), liquid)


@functools.lru_cache(maxsize=4096)
def _open_in_minute(session: str, minute: int, liquid: bool) -> bool:
    s = SESSIONS[session]
    now = datetime.fromtimestamp(minute * 60, ZoneInfo(s.tz))
    return any(a <= now < b for a, b in _merged(s, liquid, now, 3))


def session_end(session: str, epoch: float, liquid: bool) -> float:
    """When the session open at `epoch` closes, or the next one if none is open: a DAY order's end."""
    s = SESSIONS[session]
    now = datetime.fromtimestamp(epoch, ZoneInfo(s.tz))
    for _a, b in _merged(s, liquid, now):
        if now < b:
            return b.timestamp()
    return epoch + 7 * 86400.0


def day_end(session: str, epoch: float, outside_rth: bool) -> float:
    """When a DAY order ends: at the regular close of its trading day (a lunch break does not end it);
    flagged outside-RTH, at the end of the extended session."""
    if outside_rth:
        return session_end(session, epoch, liquid=False)
    s = SESSIONS[session]
    now = datetime.fromtimestamp(epoch, ZoneInfo(s.tz))
    spans = [(a, b) for a, b in _merged(s, True, now) if now < b]
    if not spans:
        return epoch + 7 * 86400.0
    day = spans[0][0].date()
    return max(b for a, b in spans if a.date() == day).timestamp()


def hours_text(session: str, epoch: float, liquid: bool) -> str:
    """IB's contract-details format: `20261130:0930-20261130:1600;20261205:CLOSED;...` over a week."""
    s = SESSIONS[session]
    tz = ZoneInfo(s.tz)
    today = datetime.fromtimestamp(epoch, tz).date()
    spans = _merged(s, liquid, datetime(today.year, today.month, today.day, 12, tzinfo=tz), 9)
    parts: list[str] = []
    for n in range(7):
        day = today + timedelta(days=n)
        mine = [(a, b) for a, b in spans if a.date() == day]
        if not mine and not any(a.date() < day <= b.date() for a, b in spans):
            parts.append(f"{day:%Y%m%d}:CLOSED")
        parts += [f"{a:%Y%m%d:%H%M}-{b:%Y%m%d:%H%M}" for a, b in mine]
    return ";".join(parts)


def midnight(epoch: float, tz: str) -> float:
    """The last midnight at or before `epoch` in time zone `tz` (where IB's execution day starts)."""
    local = datetime.fromtimestamp(epoch, ZoneInfo(tz))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def start_epoch(spec: str, wall: Callable[[], float] = time.time) -> float:
    """`wall`: now; `open`: 10:00 New York on the latest weekday (so US markets are open); else ISO 8601."""
    if spec == "wall":
        return wall()
    if spec == "open":
        ny = ZoneInfo("America/New_York")
        day = datetime.fromtimestamp(wall(), ny).date()
        while day.weekday() >= 5:
            day -= timedelta(days=1)
        return datetime(day.year, day.month, day.day, 10, tzinfo=ny).timestamp()
    moment = datetime.fromisoformat(spec)
    if moment.tzinfo is None:
        raise ValueError(f"clock_start needs a time zone (e.g. 2026-11-30T10:00-05:00), got {spec!r}")
    return moment.timestamp()


class SimClock:
    """The simulator's now: runs at wall speed from `start`; `set` / `advance` move it (tests). Readable
    from any thread (the embedded service's clock follows it): its origin is one attribute, replaced whole."""

    def __init__(self, start: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._origin = (start, monotonic())  # (epoch, monotonic time at that epoch)

    def __call__(self) -> float:
        base, mono0 = self._origin
        return base + (self._monotonic() - mono0)

    def set(self, epoch: float) -> None:
        self._origin = (epoch, self._monotonic())

    def advance(self, seconds: float) -> None:
        self.set(self() + seconds)
