"""The simulator's control channel, for tests and demos: set a price, move the clock, restart "TWS".

A TCP server on loopback only, on the simulator's own event loop (so every command runs where the engine
runs). It writes where it listens, with a random token, into an owner-only file (mode 0600) in the data
directory, `sim-control.json`; `oms sim price|clock|restart --data-dir DIR` reads it, as every command
finds the service through its data directory. One JSON request per line, one JSON reply per line; a
request without the file's token, or that does not decode, changes nothing and gets an error.

- `price`: the path of SYMBOL (a stock symbol or a local symbol) moves to PRICE (on its tick grid) and
  every order on it is matched there (trailing stops move, stops trigger, limits fill).
- `clock`: the simulator's clock is set to a time (ISO 8601 with its zone, or HH:MM in New York on the
  simulator's day) or moved on by a duration;
  what is due by then happens: DAY orders end at their close, GTD orders at their time, MOC / LOC trade
  in the closing auction, OPG in the opening one.
- `restart`: what IB's nightly restart does to an API client: TWS closes every API socket, without an
  error message; the paper account, its working orders and executions stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
import secrets
from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from zoneinfo import ZoneInfo

import msgspec

from oms.service.files import write_private

if TYPE_CHECKING:
    from adapters.tws_sim.server import TwsSimulator

log = logging.getLogger(__name__)

CONTROL_FILE = "sim-control.json"
MAX_LINE = 4096
CLOCK_TIME = re.compile(r"\d{2}:\d{2}(?::\d{2})?")
NEW_YORK = ZoneInfo("America/New_York")
DURATION = re.compile(r"\+(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")


class ControlEndpoint(msgspec.Struct, frozen=True):
    host: str
    port: int
    token: str
    pid: int


class PriceCommand(msgspec.Struct, frozen=True, tag="price", forbid_unknown_fields=True):
    token: str
    symbol: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    price: Annotated[float, msgspec.Meta(gt=0, lt=1e12)]


class ClockCommand(msgspec.Struct, frozen=True, tag="clock", forbid_unknown_fields=True):
    token: str
    when: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]  # ISO 8601 with zone, or +DURATION


class RestartCommand(msgspec.Struct, frozen=True, tag="restart", forbid_unknown_fields=True):
    token: str


Command = PriceCommand | ClockCommand | RestartCommand


class Reply(msgspec.Struct, frozen=True, omit_defaults=True):
    ok: bool
    error: str = ""
    price: float | None = None
    time: str = ""  # the simulator's clock after the command, ISO 8601 (UTC)
    op: Literal["price", "clock", "restart", ""] = ""


def parse_when(when: str, now: float) -> float:
    """An epoch from `when`: `+DURATION` (`+90s`, `+15m`, `+1h30m`, `+2d`) after `now`; `HH:MM[:SS]`,
    that time of the simulator's day in New York (the US markets' clock: `15:59` is just before the
    close); or an ISO 8601 date and time with its zone. ValueError otherwise."""
    if CLOCK_TIME.fullmatch(when):
        day = datetime.fromtimestamp(now, NEW_YORK).date()
        return datetime.combine(day, time.fromisoformat(when), NEW_YORK).timestamp()
    if when.startswith("+"):
        match = DURATION.fullmatch(when)
        if not match or not any(match.groups()):
            raise ValueError(f"{when!r} is not a duration such as +90s, +15m, +1h30m or +2d")
        days, hours, minutes, seconds = (float(g or 0) for g in match.groups())
        return now + days * 86400 + hours * 3600 + minutes * 60 + seconds
    try:
        moment = datetime.fromisoformat(when)
    except ValueError:
        raise ValueError(
            f"{when!r} is neither +DURATION, HH:MM (New York) nor an ISO 8601 time "
            "(2026-12-04T15:59:00-05:00)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{when!r} needs its zone (e.g. 2026-12-04T15:59:00-05:00)")
    return moment.timestamp()


class ControlServer:
    """Serves the control channel for one simulator; `start` on the simulator's loop."""

    def __init__(self, sim: TwsSimulator, path: Path) -> None:
        self.sim = sim
        self.path = path
        self.token = secrets.token_hex(16)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0, limit=MAX_LINE)
        port = self._server.sockets[0].getsockname()[1]
        endpoint = ControlEndpoint("127.0.0.1", port, self.token, os.getpid())
        write_private(self.path, msgspec.json.encode(endpoint))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            with contextlib.suppress(FileNotFoundError):
                if self.token in self.path.read_text():  # ours, not a later simulator's
                    self.path.unlink()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            reply = await self.handle(line)
            writer.write(msgspec.json.encode(reply) + b"\n")
            await writer.drain()
        except (ConnectionError, ValueError) as exc:  # ValueError: a line over the limit
            log.info("control channel: dropped a client (%s)", exc)
        finally:
            writer.close()

    async def handle(self, line: bytes) -> Reply:
        try:
            command = msgspec.json.decode(line, type=Command)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return Reply(ok=False, error=f"bad request: {exc}")
        if not hmac.compare_digest(command.token.encode(), self.token.encode()):
            log.warning("control channel: refused a request with a wrong token")
            return Reply(ok=False, error="wrong token: read it from the control file of this simulator")
        try:
            return await self._run(command)
        except (KeyError, ValueError, TypeError) as exc:
            return Reply(ok=False, error=str(exc.args[0]) if exc.args else str(exc))

    async def _run(self, command: Command) -> Reply:
        sim = self.sim
        if isinstance(command, PriceCommand):
            sim.set_price(command.symbol, command.price)
            return Reply(ok=True, op="price", price=sim.price(command.symbol), time=iso_time(sim.now()))
        if isinstance(command, ClockCommand):
            sim.set_time(parse_when(command.when, sim.now()))
            return Reply(ok=True, op="clock", time=iso_time(sim.now()))
        sim.restart()  # on the simulator's loop: the engine's one thread
        return Reply(ok=True, op="restart", time=iso_time(sim.now()))


def iso_time(epoch: float) -> str:
    """An epoch as the control channel's replies show it: ISO 8601, UTC, to the second."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def read_endpoint(data_dir: Path) -> ControlEndpoint:
    """The control endpoint a running simulator wrote into `data_dir`; ValueError saying what is wrong
    (none running, or a file others may read: it holds the token, so it must be the owner's alone)."""
    path = data_dir / CONTROL_FILE
    try:
        mode = path.stat().st_mode
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(
            f"no simulator is running with data directory {data_dir} ({path} does not exist): start "
            f"`oms run --data-dir {data_dir}` or `oms sim --data-dir {data_dir}`"
        ) from None
    if mode & 0o077:
        raise ValueError(f"{path} may be read by others (mode {mode & 0o777:o}); refusing its token")
    try:
        return msgspec.json.decode(raw, type=ControlEndpoint)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"{path} is not a control file ({exc})") from None


async def send(data_dir: Path, op: str, fields: dict[str, object], timeout: float = 10.0) -> Reply:
    """One command to the simulator of `data_dir`; its reply."""
    endpoint = read_endpoint(data_dir)
    request = json.dumps({"type": op, "token": endpoint.token, **fields}).encode() + b"\n"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(endpoint.host, endpoint.port), timeout
        )
    except (OSError, TimeoutError) as exc:
        raise ValueError(
            f"the simulator of {data_dir} does not answer on {endpoint.host}:{endpoint.port} ({exc}); "
            "is it still running?"
        ) from None
    try:
        writer.write(request)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    return msgspec.json.decode(line, type=Reply)
