"""A point in a recorded session, as a person names it: a seq, or a time of day.

Times are ISO-8601 (`2026-11-20T14:03:07`, UTC unless it carries an offset) or `HH:MM:SS[.ffffff]` on the
session's day (the UTC date of its first event). The state "at" a time is the state after every event
received at or before it: events are logged in receive order, so that is a prefix of the log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, time

from events.lookup import seq_at
from events.schema import Envelope
from replay.source import JournalSource, Source

_TIME_OF_DAY = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d{1,9})?)?$")


class BadPoint(ValueError):
    """Text that is neither a seq nor a time."""


def is_seq(text: str) -> bool:
    return text.isdigit()


def parse_time(text: str, session_day_ns: int | None) -> int:
    """Nanoseconds since the epoch, UTC. `session_day_ns` is any ts on the session's day (for HH:MM:SS)."""
    text = text.strip()
    try:
        if _TIME_OF_DAY.match(text):
            if session_day_ns is None:
                raise BadPoint(f"{text!r} is a time of day, but the session is empty: give a full date")
            day = datetime.fromtimestamp(session_day_ns // 1_000_000_000, UTC).date()
            moment = datetime.combine(day, time.fromisoformat(_pad(text)), UTC)
        else:
            moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError as exc:
        if isinstance(exc, BadPoint):
            raise
        raise BadPoint(
            f"{text!r} is neither a seq nor a time (ISO-8601, or HH:MM:SS on the session's day)"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _pad(text: str) -> str:
    """`9:03:07` -> `09:03:07`, which `time.fromisoformat` wants."""
    return "0" + text if text.index(":") == 1 else text


def seq_at_time(envelopes: Iterable[Envelope], t_ns: int) -> int:
    """The last seq received at or before `t_ns` (0: before the session began)."""
    last = 0
    for env in envelopes:
        if env.ts > t_ns:
            break
        last = env.seq
    return last


def format_ts(ts_ns: int) -> str:
    """`2026-11-20 14:03:07.123456` (UTC): how every table shows a time."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S") + f".{nanos // 1000:06d}"


def resolve_point(source: Source, text: str) -> int:
    """The seq a person means by `text` (a seq, or a time: the last event at or before it, found by the
    journal's time index, or by reading other sources up to it)."""
    if is_seq(text):
        return int(text)
    first = next(iter(source.read(1, 1)), None)
    t_ns = parse_time(text, first.ts if first else None)
    if isinstance(source, JournalSource):
        return seq_at(source.path, t_ns)
    return seq_at_time(source.read(), t_ns)
