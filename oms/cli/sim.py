"""`oms sim`: run the TWS simulator standalone so any IB client can be pointed at it; `oms sim price`,
`oms sim clock` and `oms sim restart` drive a running simulator (standalone or embedded in `oms run`)
through its control channel, found in the data directory (adapters/tws_sim/control.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

import msgspec

from adapters.ib.wire import CaptureError
from adapters.tws_sim import control as channel
from adapters.tws_sim.config import SimConfig, load_config
from adapters.tws_sim.control import CONTROL_FILE
from adapters.tws_sim.faults import parse_fault_args
from adapters.tws_sim.playback import WirePlayback
from adapters.tws_sim.server import TwsSimulator

EPILOG = """examples:
  oms sim                                   paper port 7497 on 127.0.0.1, seed 1, server version 178
  oms sim --port 0 --server-version 176     an ephemeral port, the newest layout ib_insync reads
  oms sim --clock-start 2026-11-30T18:00-05:00   start the clock after the US close (extended hours)
  oms sim --master-client-id 0 --max-msg-rate 0  client 0 sees every order live; no message limit
  oms sim --fault reject=0.2 --fault duplicate_exec=1 --fault-seed 7
  oms sim --state-dir ~/.oms/sim --partial-fills 3 --tick-ms 250
  oms sim price AAPL 191.25                 move AAPL's price (orders on it match there)
  oms sim clock 2026-12-04T15:59:00-05:00   set the simulator's clock (DAY, GTD, MOC... fall due)
  oms sim clock 16:00                       the close, New York time, on the simulator's day
  oms sim clock +10m                        move it on (+90s, +1h30m, +2d)
  oms sim restart                           IB's nightly restart: every API socket closes
  oms sim --reset-at 23:45 --restart-at 23:50    IB's nightly reset and TWS's daily restart
  oms sim --playback oms-data/wire/20261206T203000.000000Z   answer as the recorded TWS did
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "sim",
        help="run the TWS API simulator (ib_async / ib_insync connect to it)",
        description="A TWS API wire-protocol simulator with a simulated paper account.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="TOML file with SimConfig fields (flags override it)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7497, help="port (default 7497; 0: any free port)")
    p.add_argument("--seed", type=int, help="seed of the price paths (default 1)")
    p.add_argument("--account", action="append", help="managed account (repeatable; default DU123456)")
    p.add_argument("--server-version", type=int, help="highest server version to negotiate, 157..178")
    p.add_argument("--clock-start", help='"open" (default: 10:00 New York), "wall", or ISO 8601 with zone')
    p.add_argument("--tws-time-zone", help="TWS's time zone for execution times (default UTC)")
    p.add_argument("--max-msg-rate", type=int, help="requests/s per client before error 100 (0: off)")
    p.add_argument("--master-client-id", type=int, help="the client id that sees every order live")
    p.add_argument("--fault", action="append", default=[], metavar="NAME=P", help="inject a fault")
    p.add_argument("--fault-seed", type=int, default=0, help="seed of the fault decisions")
    p.add_argument("--state-dir", help="persist the paper account here across restarts")
    p.add_argument("--partial-fills", type=int, help="split each fill into N executions")
    p.add_argument("--tick-ms", type=float, help="advance the price paths every MS milliseconds")
    p.add_argument(
        "--reset-at", metavar="HH:MM", help="IB's nightly reset at this New York time (1100, 1101)"
    )
    p.add_argument("--restart-at", metavar="HH:MM", help="TWS's daily restart at this New York time")
    p.add_argument(
        "--playback", metavar="CAPTURE",
        help="answer as the TWS of a wire capture did (`--record-wire`); client k gets connection k",
    )  # fmt: skip
    p.add_argument(
        "--playback-speed", type=float, default=1.0, metavar="X", help="play recorded delays X times faster"
    )
    p.add_argument(
        "--playback-patience", type=float, metavar="S",
        help="skip a recorded request the client has not sent within S seconds (default: wait for it)",
    )  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true", help="log every client request")
    p.add_argument(
        "--data-dir", default="oms-data",
        help="where the control channel's file goes (default ./oms-data, as for oms run)",
    )  # fmt: skip
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="action", metavar="{price,clock,restart}")
    price = actions.add_parser("price", help="set or move a price: SYMBOL PRICE")
    price.add_argument("symbol", help="a stock symbol or a local symbol (ESZ6, EUR.USD)")
    price.add_argument("price", type=float, help="the new price (put on the instrument's tick grid)")
    clock = actions.add_parser(
        "clock", help="move the clock: TIME (ISO 8601 with zone, or HH:MM New York) or +DURATION"
    )
    clock.add_argument("when", help="2026-12-04T15:59:00-05:00, 15:59 (New York), or +90s, +10m, +1h30m, +2d")
    restart = actions.add_parser("restart", help="what IB's nightly restart does: every API socket closes")
    for action in (price, clock, restart):
        action.add_argument(
            "--data-dir", default=argparse.SUPPRESS,
            help="the data directory of `oms run` / `oms sim` (default ./oms-data)",
        )  # fmt: skip
        action.set_defaults(func=control)


def build_config(args: argparse.Namespace) -> SimConfig:
    """SimConfig from the TOML file (if any) with the flags given on top."""
    base = load_config(Path(args.config)) if args.config else SimConfig()
    changes = {
        "seed": args.seed,
        "accounts": tuple(args.account) if args.account else None,
        "max_server_version": args.server_version,
        "state_dir": args.state_dir,
        "partial_fills": args.partial_fills,
        "tick_interval_ms": args.tick_ms,
        "clock_start": args.clock_start,
        "tws_time_zone": args.tws_time_zone,
        "max_msg_rate": args.max_msg_rate,
        "master_client_id": args.master_client_id,
        "control_file": str(Path(args.data_dir) / CONTROL_FILE),
        "reset_at": args.reset_at,
        "restart_at": args.restart_at,
        "faults": parse_fault_args(args.fault, args.fault_seed) if args.fault else None,
    }
    merged = {**msgspec.structs.asdict(base), **{k: v for k, v in changes.items() if v is not None}}
    return msgspec.convert(merged, SimConfig)


def run(args: argparse.Namespace) -> int:
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(message)s")
    try:
        config = build_config(args)
    except (ValueError, TypeError) as exc:
        print(f"oms sim: {exc}")
        return 2
    if args.playback:
        return playback(args)

    Path(args.data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)

    async def serve() -> None:
        sim = TwsSimulator(config)
        await sim.start(args.host, args.port)
        version = config.max_server_version
        print(f"TWS simulator listening on {sim.host}:{sim.port} (server version <= {version})")
        print("Ctrl-C stops it.", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        print("stopped")
    return 0


def control(args: argparse.Namespace) -> int:
    """One command through the control channel; prints what the simulator says (exit 1 if refused)."""
    fields: dict[str, object] = {}
    if args.action == "price":
        fields = {"symbol": args.symbol, "price": args.price}
    elif args.action == "clock":
        fields = {"when": args.when}
    try:
        reply = asyncio.run(channel.send(Path(args.data_dir), args.action, fields))
    except ValueError as exc:
        print(f"oms sim {args.action}: {exc}", file=sys.stderr)
        return 1
    if not reply.ok:
        print(f"oms sim {args.action}: {reply.error}", file=sys.stderr)
        return 1
    if args.action == "price":
        print(f"{args.symbol} {reply.price:g} at {reply.time}")
    else:
        print(f"{args.action}: simulator clock {reply.time}")
    return 0


def playback(args: argparse.Namespace) -> int:
    try:
        server = WirePlayback(args.playback, speed=args.playback_speed, patience=args.playback_patience)
    except (CaptureError, ValueError) as exc:
        print(f"oms sim: {exc}")
        return 2

    async def serve() -> None:
        await server.start(args.host, args.port)
        print(
            f"TWS playback of {args.playback} listening on {server.host}:{server.port} "
            f"(server version {server.server_version}, {len(server.conversations)} connection(s))"
        )
        print("Ctrl-C stops it.", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        print("stopped")
    return 0
