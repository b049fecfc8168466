"""A complete client of the OMS in one file, using only pyzmq and msgspec (no project imports).

It follows docs/protocol.md step by step: find the sockets, subscribe first, take a snapshot, keep the
strategy's orders and positions current from PUB (re-snapshot on a gap or after a silent service),
place a market order, wait until it is filled, and print the position.

    python docs/examples/strategy_client.py --data-dir oms-data --symbol AAPL --quantity 10

The test suite runs this file against a real service (tests/test_protocol_doc.py).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import zmq

HEARTBEAT_TIMEOUT_S = 3.0  # the service publishes a heartbeat at least once a second
REQUEST_TIMEOUT_S = 5.0


class Service:
    """The two sockets and the followed state (orders and strategy positions, keyed like the service)."""

    def __init__(self, router: str, pub: str, strategy: str) -> None:
        self.context = zmq.Context()
        self.strategy = strategy
        self.router_endpoint = router
        self.dealer = self._dealer()
        # 1. Subscribe FIRST, so nothing published from now on is missed.
        self.sub = self.context.socket(zmq.SUB)
        self.sub.linger = 0
        for topic in ("evt.", f"order.{strategy}.", f"spos.{strategy}.", "posmove", "hb"):
            self.sub.subscribe(topic.encode())  # every event (to see every seq), our entities, heartbeats
        self.sub.connect(pub)
        self.next_id = 0
        self.heartbeats = 0
        self.snapshot_seq = 0
        self.applied = 0  # seq of the last event seen in order
        self.orders: dict[str, dict[str, Any]] = {}
        self.positions: dict[str, dict[str, Any]] = {}

    def _dealer(self) -> zmq.Socket:  # type: ignore[type-arg]
        dealer = self.context.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.connect(self.router_endpoint)
        return dealer

    def request(self, op: str, **fields: Any) -> Any:
        """One request frame out, one reply frame back; an error reply raises with its stable code."""
        self.next_id += 1
        self.dealer.send(msgspec.msgpack.encode({"op": op, "id": self.next_id, **fields}))
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        while (left := deadline - time.monotonic()) > 0:
            if not self.dealer.poll(int(left * 1000)):
                break
            reply = msgspec.msgpack.decode(self.dealer.recv())
            if reply.get("id") != self.next_id:
                continue  # a late reply to an earlier request
            if not reply["ok"]:
                error = reply["error"]
                raise RuntimeError(f"{op} refused: {error['code']}: {error['message']}")
            return reply["result"]
        self.dealer.close()  # Lazy Pirate: never let a request we gave up on arrive later
        self.dealer = self._dealer()
        raise TimeoutError(f"no reply to {op} within {REQUEST_TIMEOUT_S} s: is the service running?")

    def snapshot(self) -> None:
        """2. The state and the seq it reflects; later updates at or below that seq are dropped."""
        result = self.request("snapshot")
        state = result["state"]
        self.snapshot_seq = self.applied = result["seq"]
        self.orders = {
            k: o for k, o in state.get("orders", {}).items() if o.get("strategy_id") == self.strategy
        }
        self.positions = {
            k: p
            for k, p in state.get("strategy_positions", {}).items()
            if p.get("strategy_id") == self.strategy
        }
        print(
            f"snapshot at seq {self.snapshot_seq}: {len(self.orders)} orders, {len(self.positions)} positions"
        )

    def poll(self, timeout_s: float) -> None:
        """3. Apply what PUB sends, in order; a gap or a silent service means: take a new snapshot."""
        if not self.sub.poll(int(timeout_s * 1000)):
            print("service silent: waiting for its heartbeat")
            while not self.sub.poll(int(HEARTBEAT_TIMEOUT_S * 1000)):
                pass
            self.snapshot()
            return
        _topic, payload = self.sub.recv_multipart()
        message = msgspec.msgpack.decode(payload)
        kind, seq = message["type"], message["seq"]
        if kind == "heartbeat":
            self.heartbeats += 1
            if seq > self.applied:  # events were published that never reached us
                print(f"gap: heartbeat at seq {seq}, applied {self.applied}")
                self.snapshot()
        elif kind == "event":
            if seq == self.applied + 1:
                self.applied = seq
            elif seq > self.applied + 1:
                print(f"gap: event seq {seq} after {self.applied}")
                self.snapshot()
        elif seq > self.snapshot_seq and kind == "order":
            order = message["data"]
            before = self.orders.get(order["client_order_id"])
            self.orders[order["client_order_id"]] = order
            if before is None or describe(order) != describe(before):
                print(f"order {order['client_order_id']} {describe(order)}")
        elif seq > self.snapshot_seq and kind == "strategy_position":
            self.positions[message["data"]["key"]] = message["data"]
        elif seq > self.snapshot_seq and kind == "position_moved":  # re-keyed once IB named conId/account
            self.positions.pop(message["data"]["key"], None)


def describe(order: dict[str, Any]) -> str:
    """Quantities and prices arrive as exact decimal strings ("10", "190.25"): kept as Decimal."""
    status, filled = order["status"], Decimal(order["filled"])
    return status + (f" {filled} @ {Decimal(order['avg_fill_price']).normalize():f}" if filled else "")


def done(order: dict[str, Any]) -> bool:
    status = order["status"]
    if status == "filled":
        return Decimal(order["filled"]) >= Decimal(order["quantity"])
    return status in ("cancelled", "rejected", "inactive")


def find_endpoints(args: argparse.Namespace) -> tuple[str, str]:
    if args.router and args.pub:
        return args.router, args.pub
    endpoints = json.loads((Path(args.data_dir) / "endpoints.json").read_text())
    return endpoints["router"], endpoints["pub"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", default="oms-data", help="the service's data directory (endpoints.json)"
    )
    parser.add_argument("--router", help="ROUTER endpoint (instead of --data-dir)")
    parser.add_argument("--pub", help="PUB endpoint (instead of --data-dir)")
    parser.add_argument("--symbol", default="AAPL")
    parser.add_argument("--quantity", type=Decimal, default=Decimal(10))
    parser.add_argument("--strategy", default="example")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the fill")
    args = parser.parse_args()

    router, pub = find_endpoints(args)
    service = Service(router, pub, args.strategy)
    print(f"service at router={router} pub={pub}: {service.request('ping')}")
    service.snapshot()

    # 4. Place: the client order id is ours, so retrying after a timeout can never place twice.
    coid = f"{args.strategy}-{time.time_ns() // 1_000_000:x}-{secrets.token_hex(4)}"
    contract = {"symbol": args.symbol}
    result = service.request("place", contract=contract, side="BUY", quantity=str(args.quantity),
                             order_type="MKT", strategy_id=args.strategy, client_order_id=coid)  # fmt: skip
    print(f"placed {result['client_order_id']} (logged at seq {result['seq']})")

    # 5. Follow until the order is done: filled with every share executed, or ended otherwise.
    deadline = time.monotonic() + args.timeout
    while coid not in service.orders or not done(service.orders[coid]):
        if time.monotonic() > deadline:
            print(f"order {coid} not done after {args.timeout} s", file=sys.stderr)
            return 1
        service.poll(HEARTBEAT_TIMEOUT_S)
    order = service.orders[coid]
    if order["status"] != "filled":
        print(f"order {coid} ended {order['status']}: {order['reason']}", file=sys.stderr)
        return 1
    # The position update of the last fill follows the order's update; a heartbeat comes after both.
    heartbeats = service.heartbeats
    while service.heartbeats == heartbeats:
        service.poll(HEARTBEAT_TIMEOUT_S)

    # 6. The position, as the service folded it from the fills.
    for position in service.positions.values():
        if position["contract"]["symbol"] == args.symbol:
            quantity, price, status = position["quantity"], position["avg_price"], position["status"]
            print(f"position {args.symbol} {quantity} @ {Decimal(price).normalize():f} ({status})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
