"""`oms order`, `modify`, `cancel`, `kill`, `orders`, `positions`, `fills`, `account`, `tail`: a
person's client of the service.

Each finds the service through DATA_DIR/endpoints.json (or --router/--pub), and exits with 2 and a
plain message when no service answers or the command line is wrong, 1 when the service refused the
request (its error code shown). Every listing has `--json` (exact decimal text, oms.client.render).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import sys
from collections.abc import Callable, Coroutine
from decimal import Decimal, InvalidOperation
from typing import Any, get_args

from rich.console import Console
from rich.live import Live

from events.codec import to_json
from events.schema import KINDS, AlgoPriority, Envelope, OrderType, TimeInForce, kind_of
from oms.client import (
    AsyncClient,
    ContractSpec,
    CurveKeys,
    ServiceError,
    ServiceNotRunning,
    ServiceUnavailable,
    read_endpoints,
)
from oms.client.jetstream import JetStreamClient
from oms.client.jetstream_wire import NatsConfigError, settings_from
from oms.client.render import (
    account_table,
    event_line,
    fills_table,
    json_text,
    orders_table,
    positions_table,
    price,
)
from oms.ids import new_client_order_id
from oms.listing import listed_by_default
from oms.readable import plain
from oms.state.model import TERMINAL, Order

EXIT_REFUSED = 1
EXIT_NO_SERVICE = 2
EXIT_USAGE = 2  # as argparse exits for a wrong command line


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _quantity(text: str) -> Decimal:
    """An exact quantity (0.01 of EUR.USD is 0.01, never a float's neighbour)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


SEC_TYPES = ("STK", "FUT", "OPT", "FOP", "CASH")
DERIVATIVES = ("FUT", "OPT", "FOP")
DEFAULT_EXCHANGE = {"STK": "SMART", "OPT": "SMART", "CASH": "IDEALPRO"}  # IB routes these; futures: name it
PAIR = re.compile(r"^([A-Z]{3})\.([A-Z]{3})$")  # EUR.USD: a currency pair, IB's CASH on IDEALPRO


def _expiry(text: str) -> str:
    if not re.fullmatch(r"\d{6}(\d{2})?", text) or not 1 <= int(text[4:6]) <= 12:
        raise argparse.ArgumentTypeError(f"expected YYYYMM or YYYYMMDD, got {text}")
    return text


def _right(text: str) -> str:
    right = {"C": "C", "CALL": "C", "P": "P", "PUT": "P"}.get(text.upper())
    if right is None:
        raise argparse.ArgumentTypeError(f"expected C or P, got {text}")
    return right


def _con_id(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"expected IB's conId, a positive whole number, got {text}")
    return int(text)


class ContractError(ValueError):
    """The contract flags do not name an instrument IB could resolve (`oms order` exits 2)."""


def contract_spec(args: argparse.Namespace) -> ContractSpec:
    """The instrument `oms order` names, with IB's fields: `EUR.USD` alone is CASH on IDEALPRO; a future
    or an option needs its expiry (and strike and right), or its conId or local symbol."""
    symbol, sec_type = args.symbol.upper(), args.sec_type
    currency = args.currency
    pair = PAIR.fullmatch(symbol)
    if pair and sec_type in (None, "CASH"):
        symbol, sec_type = pair[1], "CASH"
        if currency not in (None, pair[2]):
            raise ContractError(f"{args.symbol} is quoted in {pair[2]}, not {currency}")
        currency = pair[2]
    sec_type = sec_type or "STK"
    named = bool(args.con_id or args.local_symbol)
    given = {"--expiry": args.expiry, "--strike": args.strike, "--right": args.right}
    if sec_type not in DERIVATIVES and (extra := [flag for flag, value in given.items() if value]):
        raise ContractError(f"{', '.join(extra)} only name a future or an option, not {sec_type}")
    if sec_type == "FUT" and (args.strike is not None or args.right):
        raise ContractError("a future has no --strike or --right (did you mean --sec-type FOP?)")
    needed = ["--expiry"] + (["--strike", "--right"] if sec_type in ("OPT", "FOP") else [])
    if sec_type in DERIVATIVES and not named and (missing := [f for f in needed if not given[f]]):
        raise ContractError(f"{sec_type} {symbol} needs {', '.join(missing)} (or --con-id / --local-symbol)")
    exchange = args.exchange or DEFAULT_EXCHANGE.get(sec_type)
    if exchange is None:
        raise ContractError(f"{sec_type} {symbol} needs --exchange: the exchange IB lists it on (CME for ES)")
    return ContractSpec(
        symbol=symbol,
        sec_type=sec_type,
        exchange=exchange.upper(),
        currency=(currency or "USD").upper(),
        con_id=args.con_id or 0,
        last_trade_date=args.expiry or "",
        strike=float(args.strike) if args.strike is not None else 0.0,
        right=args.right or "",
        multiplier=plain(args.multiplier) if args.multiplier is not None else "",
        local_symbol=args.local_symbol or "",
    )


def _offset(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, not {text!r}")
    return value


def _algo(text: str) -> str:
    """`Adaptive` or `Adaptive:PRIORITY` -> the priority (Normal when not given)."""
    name, _, priority = text.partition(":")
    priorities = [p for p in get_args(AlgoPriority) if p]
    chosen = next((p for p in priorities if p.lower() == (priority or "Normal").lower()), None)
    if name.lower() != "adaptive" or chosen is None:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the algo is Adaptive, optionally with a priority: Adaptive:{'|'.join(priorities)}"
        )
    return chosen


def _add_order_type_arguments(order: argparse.ArgumentParser) -> None:
    """The order types and terms beyond --limit / --stop / --tif (docs/protocol.md, "place")."""
    order.add_argument(
        "--type", type=str.upper, choices=list(get_args(OrderType)),
        help="order type (default: from --limit / --stop: MKT, LMT, STP, STP LMT)",
    )  # fmt: skip
    order.add_argument("--trail-amount", type=_positive, help="TRAIL / TRAIL LIMIT: trail by this amount")
    order.add_argument("--trail-percent", type=_positive, help="TRAIL / TRAIL LIMIT: trail by this percent")
    order.add_argument("--limit-offset", type=_offset, help="TRAIL LIMIT: the limit's offset from the stop")
    order.add_argument("--touch", type=_positive, help="MIT / LIT: the touch (trigger) price")
    order.add_argument("--good-till", help="GTD: when it ends, with its zone (2026-12-07T15:30-05:00)")
    order.add_argument("--oca-group", help="one-cancels-all group name")
    order.add_argument(
        "--oca-type", type=int, choices=[1, 2, 3],
        help="1 cancel the others with block (default), 2 reduce with block, 3 reduce without block",
    )  # fmt: skip
    order.add_argument("--algo", type=_algo, help="IB's Adaptive algo: Adaptive[:Patient|Normal|Urgent]")


def _add_contract_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the instrument (IB's contract fields; a stock needs none)")
    group.add_argument(
        "--sec-type", type=str.upper, choices=SEC_TYPES, help="security type (default STK; EUR.USD: CASH)"
    )
    group.add_argument(
        "--exchange",
        help="IB's exchange (default SMART for STK and OPT, IDEALPRO for CASH; FUT and FOP: required)",
    )
    group.add_argument("--currency", type=str.upper, help="the currency it trades in (default USD)")
    group.add_argument("--expiry", type=_expiry, metavar="YYYYMM[DD]", help="a future's or option's expiry")
    group.add_argument("--strike", type=_quantity, help="an option's strike")
    group.add_argument("--right", type=_right, metavar="C|P", help="an option's right: C (call) or P (put)")
    group.add_argument("--multiplier", type=_quantity, help="the contract multiplier (IB's wins for risk)")
    group.add_argument("--con-id", type=_con_id, metavar="CONID", help="IB's contract id")
    group.add_argument("--local-symbol", help="IB's local symbol, e.g. ESZ6")


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


JSON_HELP = "a JSON array instead of a table (decimals as exact text)"


def _add_listing(parser: argparse.ArgumentParser, strategy_help: str, open_help: str) -> None:
    """`oms orders` and `oms positions`: the same flags over two parts of the state."""
    parser.add_argument("--strategy", help=strategy_help)
    parser.add_argument("--open", action="store_true", help=open_help)
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
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
        "  oms order buy AAPL 10 --wait        # until filled, cancelled or rejected\n"
        "  oms order buy ES 1 --sec-type FUT --exchange CME --expiry 202612\n"
        "  oms order buy AAPL 2 --sec-type OPT --expiry 20261218 --strike 200 --right C\n"
        "  oms order buy EUR.USD 20000          # CASH on IDEALPRO\n"
        "  oms order buy ES 1 --con-id 649180695 --sec-type FUT --exchange CME\n"
        "  oms order sell AAPL 10 --type TRAIL --trail-amount 2.5\n"
        "  oms order sell AAPL 10 --type 'TRAIL LIMIT' --trail-percent 1 --limit-offset 0.1\n"
        "  oms order buy AAPL 10 --type LIT --touch 180 --limit 180.5\n"
        "  oms order buy IBM 10 --type MOC\n"
        "  oms order buy AAPL 10 --limit 190 --tif GTD --good-till 2026-12-07T15:30-05:00\n"
        "  oms order sell AAPL 10 --limit 200 --oca-group exit1 --oca-type 1\n"
        "  oms order buy AAPL 10 --limit 190 --algo Adaptive:Urgent",
    )
    order.add_argument("side", type=str.upper, choices=["BUY", "SELL"], help="buy or sell")
    order.add_argument("symbol", help="e.g. AAPL, ES, EUR.USD")
    order.add_argument("quantity", type=_quantity, help="shares, contracts or units of the base currency")
    order.add_argument("--limit", type=_positive, help="limit price (a LMT order; STP LMT with --stop)")
    order.add_argument("--stop", type=_positive, help="stop price (a STP order; STP LMT with --limit)")
    order.add_argument(
        "--tif", type=str.upper, choices=list(get_args(TimeInForce)), default="DAY",
        help="time in force (GTD with --good-till)",
    )  # fmt: skip
    _add_order_type_arguments(order)
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
    _add_contract_arguments(order)
    add_service_arguments(order)
    order.set_defaults(func=lambda args: run_client(args, _order))

    modify = subparsers.add_parser(
        "modify",
        help="change a working order's limit, stop or quantity",
        epilog="examples:\n  oms modify cli-0190a1b2c3d-4e5f60718293 --limit 189.5\n"
        "  oms modify cli-0190a1b2c3d-4e5f60718293 --quantity 5 --stop 180",
        formatter_class=formatter,
    )
    modify.add_argument("client_order_id", metavar="ID", help="the client order id")
    modify.add_argument("--limit", type=_positive, help="new limit price")
    modify.add_argument("--stop", type=_positive, help="new stop price")
    modify.add_argument("--quantity", type=_quantity, help="new total quantity")
    modify.add_argument("--trail-amount", type=_positive, help="new trailing amount (TRAIL, TRAIL LIMIT)")
    modify.add_argument("--trail-percent", type=_positive, help="new trailing percent (TRAIL, TRAIL LIMIT)")
    modify.add_argument("--limit-offset", type=_offset, help="new limit offset (TRAIL LIMIT)")
    modify.add_argument("--touch", type=_positive, help="new touch price (MIT, LIT)")
    modify.add_argument("--good-till", help="new end of a GTD order, with its zone")
    add_service_arguments(modify)
    modify.set_defaults(func=lambda args: run_client(args, _modify))

    cancel = subparsers.add_parser(
        "cancel",
        help="cancel an order, or every working order",
        epilog="examples:\n  oms cancel cli-0190a1b2c3d-4e5f60718293\n"
        "  oms cancel --all                 # every working order this service placed\n"
        "  oms cancel --all --strategy mom  # ... of one strategy",
        formatter_class=formatter,
    )
    cancel.add_argument("client_order_id", metavar="ID", nargs="?", help="the client order id")
    cancel.add_argument("--all", action="store_true", help="every working order (not those placed in TWS)")
    cancel.add_argument("--strategy", help="with --all: only this strategy's orders")
    add_service_arguments(cancel)
    cancel.set_defaults(func=lambda args: run_client(args, _cancel))

    kill = subparsers.add_parser(
        "kill",
        help="the kill switch: cancel every working order and refuse new ones (--release: accept again)",
        epilog="examples:\n  oms kill --reason 'runaway strategy'\n  oms kill --release\n"
        "  oms kill --strategy mom --reason 'drawdown'\n  oms kill --release --strategy mom",
        formatter_class=formatter,
    )
    kill.add_argument("--release", action="store_true", help="disengage: accept new orders again")
    kill.add_argument("--reason", default="", help="why, recorded in the journal")
    scope = kill.add_mutually_exclusive_group()
    scope.add_argument(
        "--strategy",
        help="only this strategy: its working orders cancelled, its orders that add exposure refused "
        "(--release also ends a daily loss limit's kill early)",
    )
    scope.add_argument("--account", help="only this account, likewise")
    add_service_arguments(kill)
    kill.set_defaults(func=lambda args: run_client(args, _kill))

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

    fills = subparsers.add_parser(
        "fills",
        help="list executions",
        formatter_class=formatter,
        epilog="examples:\n  oms fills\n  oms fills --strategy mom --json\n  oms fills --order c-42\n"
        "finished orders leave the live state after a while: `oms replay --order` finds theirs",
    )
    fills.add_argument("--strategy", help="only this strategy's fills")
    fills.add_argument("--order", help="only this client order id's fills")
    fills.add_argument("--json", action="store_true", help=JSON_HELP)
    add_service_arguments(fills)
    fills.set_defaults(func=lambda args: run_client(args, _fills))

    account = subparsers.add_parser(
        "account",
        help="account values per currency and in the base currency, and the money our fills made",
        formatter_class=formatter,
        epilog="examples:\n  oms account\n  oms account --json",
    )
    account.add_argument("--account", dest="only", metavar="ACCOUNT", help="only this IB account")
    account.add_argument("--json", action="store_true", help=JSON_HELP)
    add_service_arguments(account)
    account.set_defaults(func=lambda args: run_client(args, _account))

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


def mirror_client(command: str, url: str) -> JetStreamClient:
    """A follower of the mirror at `url` (one server or a comma-separated list, then /STREAM;
    credentials and TLS from OMS_NATS_*; see docs/scaling.md), not yet following; a bad URL exits."""
    try:
        return JetStreamClient(settings_from(url, env=os.environ))
    except NatsConfigError as exc:
        raise SystemExit(f"oms {command}: {exc}") from None


async def follow_mirror(client: JetStreamClient, *, use_snapshot: bool = True) -> JetStreamClient:
    """`client` following its stream, or `ServiceUnavailable` naming the mirror it could not follow."""
    try:
        await client.follow(use_snapshot=use_snapshot)
    except Exception as exc:  # nats-py raises its own errors for no server, no stream, refused login
        where = f"{client.settings.shown_url}/{client.settings.stream}"
        raise ServiceUnavailable(f"no mirror at {where}: {type(exc).__name__}: {exc}") from None
    return client


def _console() -> Any:
    console = Console(soft_wrap=False)
    if not console.is_terminal:  # piped or captured: room for every column instead of 80
        console.width = 240
    return console


def _usage(args: argparse.Namespace, message: str) -> int:
    print(f"oms {args.command}: {message}", file=sys.stderr)
    return EXIT_USAGE


async def _order(args: argparse.Namespace) -> int:
    try:
        contract = contract_spec(args)
    except ContractError as exc:
        return _usage(args, str(exc))
    client = await connect(args, follow=args.wait)
    coid = args.client_order_id or new_client_order_id(args.strategy)
    seen: list[tuple[str, object]] = []

    def transition(order: Order) -> None:
        """With --wait: one line per change of status (and of the filled quantity)."""
        if order.client_order_id != coid or (seen and seen[-1] == (order.status, order.filled)):
            return
        seen.append((order.status, order.filled))
        fill = f" {plain(order.filled)} @ {price(order.avg_fill_price)}" if order.filled else ""
        why = f" ({order.reason})" if order.reason and order.status in TERMINAL else ""
        print(f"{coid} {order.status}{fill}{why}", flush=True)

    if args.wait:
        client.on_order(transition)
    try:
        await client.place(
            contract,
            args.side,
            args.quantity,
            limit_price=args.limit,
            stop_price=args.stop,
            tif=args.tif,
            strategy_id=args.strategy,
            account=args.account,
            client_order_id=coid,
            outside_rth=args.outside_rth,
            order_type=args.type,
            trailing_amount=args.trail_amount,
            trailing_percent=args.trail_percent,
            limit_offset=args.limit_offset,
            touch_price=args.touch,
            good_till=args.good_till,
            oca_group=args.oca_group or "",
            oca_type=args.oca_type,
            algo="Adaptive" if args.algo else None,
            algo_priority=args.algo or "",
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


async def _modify(args: argparse.Namespace) -> int:
    terms = {
        "quantity": args.quantity, "limit_price": args.limit, "stop_price": args.stop,
        "trailing_amount": args.trail_amount, "trailing_percent": args.trail_percent,
        "limit_offset": args.limit_offset, "touch_price": args.touch, "good_till": args.good_till,
    }  # fmt: skip
    if all(v is None for v in terms.values()):
        return _usage(
            args,
            "give at least one of --limit, --stop, --quantity, --trail-amount, --trail-percent, "
            "--limit-offset, --touch, --good-till",
        )
    client = await connect(args, follow=False)
    try:
        coid = await client.modify(args.client_order_id, **terms)
        print(f"modify requested for {coid}")
        return 0
    finally:
        await client.close()


async def _cancel(args: argparse.Namespace) -> int:
    if args.all == bool(args.client_order_id):
        return _usage(args, "give an order ID, or --all (not both)")
    if args.strategy and not args.all:
        return _usage(args, "--strategy goes with --all")
    client = await connect(args, follow=False)
    try:
        if not args.all:
            print(f"cancel requested for {await client.cancel(args.client_order_id)}")
            return 0
        cancelled = await client.cancel_all(args.strategy)
        whose = f" of strategy {args.strategy}" if args.strategy else ""
        print(f"cancel requested for {len(cancelled)} working order{'s' * (len(cancelled) != 1)}{whose}")
        for coid in cancelled:
            print(f"  {coid}")
        return 0
    finally:
        await client.close()


async def _kill(args: argparse.Namespace) -> int:
    """Engage (cancel every working order, refuse new ones) or, with --release, disengage; for
    everything, or for one strategy or account."""
    client = await connect(args, follow=False)
    try:
        result = await client.kill_switch(not args.release, args.reason, args.strategy, args.account)
    finally:
        await client.close()
    scope = (
        f"strategy {args.strategy}" if args.strategy else f"account {args.account}" if args.account else ""
    )
    switch, flag = (f"{scope}'s kill switch", f" --{scope}") if scope else ("kill switch", "")
    if not result.engaged:
        print(f"{switch} released at seq {result.seq}: new orders are accepted")
        return 0
    refused = "its orders that add exposure are refused" if scope else "new orders are refused"
    print(
        f"{switch} ENGAGED at seq {result.seq}: {refused} (`oms kill --release{flag}` to accept "
        f"again); cancel requested for {len(result.cancelled)} working order"
        f"{'s' * (len(result.cancelled) != 1)}"
    )
    for coid in result.cancelled:
        print(f"  {coid}")
    return 0


async def _list(args: argparse.Namespace) -> int:
    """`oms orders` / `oms positions`: the service's answer once, or a live table from the followed state."""
    orders = args.command == "orders"

    def listed(rows: list[Any]) -> list[Any]:
        """Positions: by default those open, working or that had fills (`--all`: every lifecycle)."""
        return rows if orders or args.all else [p for p in rows if listed_by_default(p)]

    def table(rows: list[Any]) -> Any:
        return orders_table(rows) if orders else positions_table(rows)

    def followed(client: AsyncClient) -> Any:
        rows = (
            client.orders(args.strategy, args.open) if orders else client.positions(args.strategy, args.open)
        )
        return table(listed(rows))

    if args.watch:
        return await _watch(args, followed)
    client = await connect(args, follow=False)
    try:
        fetch = client.fetch_orders if orders else client.fetch_positions
        rows: list[Any] = await fetch(args.strategy, args.open)
    finally:
        await client.close()
    _show(args, listed(rows), table)
    return 0


async def _fills(args: argparse.Namespace) -> int:
    """The executions in the service's state (a snapshot: one request, nothing followed afterwards)."""
    client = await connect(args, follow=True)
    try:
        fills = [
            f
            for f in client.state.fills.values()
            if (not args.strategy or f.strategy_id == args.strategy)
            and (not args.order or f.client_order_id == args.order)
        ]
    finally:
        await client.close()
    _show(args, sorted(fills, key=lambda f: (f.seq, f.exec_id)), fills_table)
    return 0


async def _account(args: argparse.Namespace) -> int:
    client = await connect(args, follow=True)
    try:
        accounts = [a for name, a in sorted(client.state.accounts.items()) if args.only in (None, name)]
    finally:
        await client.close()
    if args.json:
        sys.stdout.write(json_text(accounts) + "\n")
        return 0
    if not accounts:
        print(f"no account {args.only} has reported yet" if args.only else "no account has reported yet")
    for account in accounts:
        _console().print(account_table(account))
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
        sys.stdout.write(json_text(rows) + "\n")
    else:
        _console().print(table(rows))


async def _tail(args: argparse.Namespace) -> int:
    client = await (
        follow_mirror(mirror_client(args.command, args.nats)) if args.nats else connect(args, follow=True)
    )
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
