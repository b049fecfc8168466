"""`oms order`, `oms cancel`, `oms orders`, `oms positions`, `oms tail`: a person's client of the service.

Each finds the service through DATA_DIR/endpoints.json (or --router/--pub), and exits with 2 and a
plain message when no service answers, 1 when the service refused the request (its error code shown).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec
from rich.console import Console
from rich.live import Live

from events.codec import to_json
from events.schema import KINDS, Envelope, kind_of
from oms.client import (
    AsyncClient,
    CurveKeys,
    ServiceError,
    ServiceNotRunning,
    ServiceUnavailable,
    read_endpoints,
)
from oms.client.jetstream import JetStreamClient
from oms.client.jetstream_wire import NatsConfigError, redact_url, settings_from
from oms.client.render import event_line, never_filled, orders_table, positions_table
from oms.ids import new_client_order_id
from oms.readable import plain
from oms.state.model import TERMINAL, Order

EXIT_REFUSED = 1
EXIT_NO_SERVICE = 2


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _event_kinds() -> list[str]:
    return sorted(kind for kind in KINDS if kind != "unknown")


def _event_kind(text: str) -> str:
    if text not in _event_kinds():
        raise argparse.ArgumentTypeError(f"no event kind {text!r}; the kinds are {', '.join(_event_kinds())}")
    return text


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("finding the service")
    group.add_argument(
        "--data-dir",
        default="oms-data",
        help="the service's data directory, whose endpoints.json names its sockets",
    )
    group.add_argument("--router", help="ROUTER endpoint, e.g. tcp://127.0.0.1:5556 (instead of --data-dir)")
    group.add_argument("--pub", help="PUB endpoint, e.g. tcp://127.0.0.1:5555 (instead of --data-dir)")
    group.add_argument(
        "--timeout", type=_positive, default=3.0, help="seconds to wait for a reply (default 3)"
    )
    group.add_argument("--curve-key", help="this client's secret key file (`oms keys`), for a CURVE service")
    group.add_argument(
        "--server-key", help="the server's public key (Z85 or .key file); default: endpoints.json"
    )


def _add_listing(parser: argparse.ArgumentParser, strategy_help: str, open_help: str) -> None:
    """`oms orders` and `oms positions`: the same flags over two parts of the state."""
    parser.add_argument("--strategy", help=strategy_help)
    parser.add_argument("--open", action="store_true", help=open_help)
    parser.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    parser.add_argument("--watch", action="store_true", help="a live table, kept current until Ctrl-C")
    add_service_arguments(parser)
    parser.set_defaults(func=lambda args: run_client(args, _list))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    order = subparsers.add_parser(
        "order",
        help="place an order",
        formatter_class=formatter,
        epilog="examples:\n  oms order buy AAPL 10\n"
        "  oms order sell MSFT 5 --limit 420.5 --tif GTC --strategy mom\n"
        "  oms order buy AAPL 10 --wait        # until filled, cancelled or rejected",
    )
    order.add_argument("side", type=str.upper, choices=["BUY", "SELL"], help="buy or sell")
    order.add_argument("symbol", help="e.g. AAPL")
    order.add_argument("quantity", type=_positive, help="number of shares")
    order.add_argument("--limit", type=_positive, help="limit price (a LMT order; STP LMT with --stop)")
    order.add_argument("--stop", type=_positive, help="stop price (a STP order; STP LMT with --limit)")
    order.add_argument(
        "--tif", type=str.upper, choices=["DAY", "GTC", "IOC"], default="DAY", help="time in force"
    )
    order.add_argument("--strategy", default="cli", help="strategy id the order belongs to (default cli)")
    order.add_argument("--account", help="IB account (default: the service's)")
    order.add_argument("--id", dest="client_order_id", help="client order id (default: generated)")
    order.add_argument("--outside-rth", action="store_true", help="allow filling outside regular hours")
    order.add_argument(
        "--wait", action="store_true", help="follow the order until it is done; exit 0 if filled"
    )
    order.add_argument(
        "--wait-timeout", type=_positive, default=30.0, help="seconds --wait waits (default 30)"
    )
    add_service_arguments(order)
    order.set_defaults(func=lambda args: run_client(args, _order))

    cancel = subparsers.add_parser(
        "cancel",
        help="cancel an order",
        epilog="example:\n  oms cancel cli-0190a1b2c3d-4e5f60718293",
        formatter_class=formatter,
    )
    cancel.add_argument("client_order_id", metavar="ID", help="the client order id")
    add_service_arguments(cancel)
    cancel.set_defaults(func=lambda args: run_client(args, _cancel))

    _add_listing(
        subparsers.add_parser(
            "orders",
            help="list orders",
            formatter_class=formatter,
            epilog="examples:\n  oms orders\n  oms orders --strategy mom --open\n  oms orders --json | jq .\n"
            "  oms orders --watch                 # a live table",
        ),
        strategy_help="only this strategy's orders",
        open_help="only working orders",
    )
    positions = subparsers.add_parser(
        "positions",
        help="list positions",
        formatter_class=formatter,
        epilog="examples:\n  oms positions\n  oms positions --strategy mom   # one strategy's share\n"
        "  oms positions --watch          # a live table\n"
        "  oms positions --all            # also entries cancelled or rejected before any fill",
    )
    positions.add_argument(
        "--all",
        action="store_true",
        help="also entries that ended without a fill (cancelled or rejected before any share traded)",
    )
    _add_listing(
        positions, strategy_help="one strategy's view of the positions", open_help="hide closed positions"
    )

    tail = subparsers.add_parser(
        "tail",
        help="print events live",
        formatter_class=formatter,
        epilog="examples:\n  oms tail\n  oms tail --kind execution --kind commission\n"
        "  oms tail --order mom-0190a1b2c3d-4e5f60718293 --json",
    )
    tail.add_argument(
        "--kind",
        action="append",
        type=_event_kind,
        metavar="KIND",
        help="only events of this kind (repeatable): " + ", ".join(_event_kinds()),
    )
    tail.add_argument("--order", help="only events that name or change this client order id")
    tail.add_argument(
        "--strategy", help="only events that name or change this strategy's orders or positions"
    )
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument("--count", type=int, default=0, help="stop after this many events (default: never)")
    tail.add_argument(
        "--nats",
        metavar="URL",
        help="follow a mirror in NATS JetStream instead of the service (nats://HOST:PORT/STREAM)",
    )
    add_service_arguments(tail)
    tail.set_defaults(func=lambda args: run_client(args, _tail))


def run_client(
    args: argparse.Namespace, command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
) -> int:
    try:
        return asyncio.run(command(args))
    except ServiceNotRunning as exc:
        print(f"oms {args.command}: {exc}", file=sys.stderr)
        return EXIT_NO_SERVICE
    except ServiceUnavailable as exc:
        print(f"oms {args.command}: the service is not running or not answering: {exc}", file=sys.stderr)
        return EXIT_NO_SERVICE
    except ServiceError as exc:
        print(f"oms {args.command}: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED


async def connect(args: argparse.Namespace, follow: bool) -> AsyncClient:
    curve = None
    if args.curve_key:
        server_key = args.server_key or read_endpoints(args.data_dir).curve_server_key
        if not server_key:
            raise SystemExit("oms: --curve-key needs --server-key (endpoints.json names no server key)")
        curve = CurveKeys.load(args.curve_key, server_key)
    return await AsyncClient.connect(
        args.data_dir,
        router=args.router,
        pub=args.pub,
        follow=follow,
        curve=curve,
        request_timeout=args.timeout,
    )


async def _connect_nats(url: str) -> JetStreamClient:
    """A follower of the mirror at `url` (credentials and TLS from OMS_NATS_*; see docs/scaling.md)."""
    try:
        settings = settings_from(url, env=os.environ)
    except NatsConfigError as exc:
        raise SystemExit(f"oms tail: {exc}") from None
    try:
        return await JetStreamClient.connect(settings=settings)
    except Exception as exc:  # nats-py raises its own errors for no server, no stream, refused login
        raise ServiceUnavailable(f"no mirror at {redact_url(url)}: {type(exc).__name__}: {exc}") from None


def _console() -> Any:
    console = Console(soft_wrap=False)
    if not console.is_terminal:  # piped or captured: room for every column instead of 80
        console.width = 240
    return console


async def _order(args: argparse.Namespace) -> int:
    client = await connect(args, follow=args.wait)
    coid = args.client_order_id or new_client_order_id(args.strategy)
    seen: list[tuple[str, object]] = []

    def transition(order: Order) -> None:
        """With --wait: one line per change of status (and of the filled quantity)."""
        if order.client_order_id != coid or (seen and seen[-1] == (order.status, order.filled)):
            return
        seen.append((order.status, order.filled))
        fill = f" {plain(order.filled)} @ {plain(order.avg_fill_price)}" if order.filled else ""
        why = f" ({order.reason})" if order.reason and order.status in TERMINAL else ""
        print(f"{coid} {order.status}{fill}{why}", flush=True)

    if args.wait:
        client.on_order(transition)
    try:
        await client.place(
            args.symbol.upper(),
            args.side,
            args.quantity,
            limit_price=args.limit,
            stop_price=args.stop,
            tif=args.tif,
            strategy_id=args.strategy,
            account=args.account,
            client_order_id=coid,
            outside_rth=args.outside_rth,
        )
        print(f"placed {coid}", flush=True)
        if not args.wait:
            return 0
        current = client.order(coid)
        if current is not None:
            transition(current)  # the state the order is in now, if no event has shown it yet
        try:
            order = await client.wait_for_order(coid, TERMINAL, timeout=args.wait_timeout)
        except TimeoutError:
            current = client.order(coid)
            status = current.status if current else "unknown"
            print(f"oms order: {coid} still {status} after {args.wait_timeout:g} s", file=sys.stderr)
            return EXIT_REFUSED
        _console().print(orders_table([order]))
        return 0 if order.status == "filled" else EXIT_REFUSED
    finally:
        await client.close()


async def _cancel(args: argparse.Namespace) -> int:
    client = await connect(args, follow=False)
    try:
        print(f"cancel requested for {await client.cancel(args.client_order_id)}")
        return 0
    finally:
        await client.close()


async def _list(args: argparse.Namespace) -> int:
    """`oms orders` / `oms positions`: the service's answer once, or a live table from the followed state."""
    orders = args.command == "orders"

    def table(rows: list[Any]) -> Any:
        if orders:
            return orders_table(rows)
        return positions_table(rows if args.all else [p for p in rows if not never_filled(p)])

    def followed(client: AsyncClient) -> Any:
        rows = client.orders if orders else client.positions
        return table(rows(args.strategy, args.open))

    if args.watch:
        return await _watch(args, followed)
    client = await connect(args, follow=False)
    try:
        fetch = client.fetch_orders if orders else client.fetch_positions
        rows: list[Any] = await fetch(args.strategy, args.open)
    finally:
        await client.close()
    _show(args, rows, table)
    return 0


async def _watch(args: argparse.Namespace, render: Callable[[AsyncClient], Any]) -> int:
    """A table kept current from the followed state, redrawn at most 10 times a second, until Ctrl-C."""
    client = await connect(args, follow=True)
    changed = asyncio.Event()
    client.on_event(lambda _env, _changes: changed.set())
    print(f"oms {args.command}: watching from seq {client.seq} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        with Live(render(client), console=_console(), auto_refresh=False) as live:
            while True:
                await changed.wait()
                changed.clear()
                live.update(render(client), refresh=True)
                await asyncio.sleep(0.1)  # throttle: a burst of events is one redraw
    finally:
        await client.close()


def _show(args: argparse.Namespace, rows: list[Any], table: Callable[[list[Any]], Any]) -> None:
    if args.json:
        sys.stdout.write(msgspec.json.encode(rows).decode() + "\n")
    else:
        _console().print(table(rows))


async def _tail(args: argparse.Namespace) -> int:
    client = await (_connect_nats(args.nats) if args.nats else connect(args, follow=True))
    done = asyncio.Event()
    shown = 0

    def show(env: Envelope, changes: tuple[object, ...]) -> None:
        nonlocal shown
        if done.is_set() or not _matches(args, env, changes):
            return
        print(to_json(env).decode() if args.json else event_line(env), flush=True)
        shown += 1
        if args.count and shown >= args.count:
            done.set()

    def connection(up: bool) -> None:
        message = "following again" if up else "the service is silent (no heartbeat); waiting for it"
        print(f"oms tail: {message}", file=sys.stderr, flush=True)

    client.on_event(show)
    client.on_connection(connection)
    print(f"oms tail: following from seq {client.seq} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        await done.wait()
    finally:
        await client.close()
    return 0


def _matches(args: argparse.Namespace, env: Envelope, changes: tuple[object, ...]) -> bool:
    event = env.event
    if args.kind and kind_of(event) not in args.kind:
        return False
    names = {getattr(event, "client_order_id", None), getattr(event, "order_ref", None)}
    if (
        args.order
        and args.order not in names
        and not any(getattr(c, "client_order_id", None) == args.order for c in changes)
    ):
        return False
    return not args.strategy or any(
        getattr(x, "strategy_id", None) == args.strategy for x in (event, *changes)
    )
