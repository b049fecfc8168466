"""One client connection: the handshake, the start-up sync, and each request answered from the engine.

At connect, after managedAccounts and nextValidId, TWS reports its data farms (2104, 2106, 2158). More
than `max_msg_rate` requests in one second (of the simulator's clock) are refused with error 100, and a
client that keeps exceeding it (three seconds in a row) is disconnected, as TWS does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from adapters.tws_sim import hours, orders
from adapters.tws_sim import messages as m
from adapters.tws_sim import messages_data as md
from adapters.tws_sim.catalog import matches
from adapters.tws_sim.engine import Engine
from adapters.tws_sim.framing import (
    API_PREFIX,
    Field,
    FrameBuffer,
    FramingError,
    encode_frame,
    parse_version_range,
)
from adapters.tws_sim.history import bars, end_epoch, parse_history_request
from adapters.tws_sim.matching import SimOrder
from adapters.tws_sim.orders import NO_SECURITY
from adapters.tws_sim.requests import (
    RequestError,
    parse_contract_request,
    parse_exec_filter,
    parse_market_data_request,
    parse_place_order,
    to_int,
)

log = logging.getLogger(__name__)

SUMMARY_TAGS = ("NetLiquidation", "TotalCashValue", "BuyingPower", "AvailableFunds", "GrossPositionValue")
FARMS = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
# the requests that carry a reqId, and where (after the message id, and a version field for older ones)
REQ_ID_AT = {
    10: 2, 22: 1, 50: 2, 52: 2, 54: 2, 55: 2, 78: 1, 79: 1, 81: 1, 83: 1, 84: 1, 86: 1, 87: 1, 88: 1,
    92: 1, 94: 1, 96: 1, 97: 1, 100: 1, 101: 1, 102: 1, 103: 1, 104: 1, 105: 1,
}  # fmt: skip
HISTORICAL_KINDS = frozenset({87, 88, 96})  # head timestamp, histogram, historical ticks
# cancels of subscriptions and settings: TWS answers them with nothing
SILENT = frozenset({11, 12, 13, 14, 23, 25, 51, 53, 56, 57, 63, 64, 75, 77, 89, 90, 93, 95, 98})
NO_PERMISSION = (
    "Historical Market Data Service error message:No market data permissions for this request "
    "(the simulator serves reqHistoricalData bars only)"
)
BAD_END = "Historical Market Data Service error message:End date/time is invalid"
RATE_EXCEEDED = "Max rate of messages per second has been exceeded:max=%d rec=%d (1)"
VIOLATIONS_TO_DISCONNECT = 3


class Session:
    """Reads frames, answers them; everything it sends goes through `send` (also used by the engine)."""

    def __init__(self, engine: Engine, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.engine = engine
        self.reader = reader
        self.writer = writer
        self.version = 0
        self.client_id = -1
        self.positions_subscribed = False
        self.account_subscribed: str | None = None
        self.multi_subscriptions: dict[int, str] = {}
        self.market_data: dict[int, str] = {}
        self.pnl_subscriptions: dict[int, str] = {}
        self.auto_open = False
        self.frames_sent = 0
        self.peer = writer.get_extra_info("peername")
        self._window = 0  # the whole second of the simulator's clock being counted
        self._in_window = 0
        self._violations = 0  # consecutive seconds over the limit

    # ---- Peer protocol ---------------------------------------------------------------------------

    def send(self, fields: Iterable[Field]) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode_frame(fields))
            self.frames_sent += 1

    def send_raw(self, payload_fields: list[str]) -> None:
        """Send a recorded frame's fields exactly as captured (playback)."""
        self.send(payload_fields)

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()

    # ---- connection lifecycle --------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._serve()
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("client %s (clientId %s) disconnected", self.peer, self.client_id)
        except (FramingError, RequestError) as exc:
            log.warning(
                "dropping client %s (clientId %s) after bad input: %s", self.peer, self.client_id, exc
            )
        except Exception:  # never let one client's garbage take the simulator down
            log.exception("dropping client %s (clientId %s) after an error", self.peer, self.client_id)
        finally:
            self.engine.peers.remove(self)
            self.close()

    async def _serve(self) -> None:
        prefix = await self.reader.readexactly(len(API_PREFIX))
        if prefix != API_PREFIX:
            raise FramingError(f"expected API\\0, got {prefix!r}")
        frames = FrameBuffer()
        pending: list[list[str]] = []
        while not pending:
            pending = frames.feed(await self._read())
        low, high = parse_version_range(pending.pop(0))
        version = min(high, self.engine.config.max_server_version)
        if version < low:
            raise FramingError(f"client needs v{low}..{high}, simulator speaks up to {version}")
        self.version = version
        self.send(m.handshake(version, self.engine.connection_time()))
        await self.writer.drain()
        while True:
            for fields in pending:
                self.handle(fields)
            pending = []
            await self.writer.drain()
            if self.writer.is_closing():
                return
            pending = frames.feed(await self._read())

    async def _read(self) -> bytes:
        data = await self.reader.read(65536)
        if not data:
            raise ConnectionError("closed by client")
        return data

    # ---- requests --------------------------------------------------------------------------------

    def handle(self, fields: list[str]) -> None:
        if not fields:
            raise RequestError("empty message")
        msg_id = to_int(fields[0])
        handler = _HANDLERS.get(msg_id)
        if handler is None:
            handler = Session.unsupported
        if msg_id != 71 and self.client_id < 0:
            raise RequestError(f"request {msg_id} before startApi")
        if not self._within_rate(msg_id, fields):
            return
        self.engine.expire()
        handler(self, fields)

    def _within_rate(self, msg_id: int, fields: list[str]) -> bool:
        """Count the request in this second's window; over the limit it is refused with error 100."""
        limit = self.engine.config.max_msg_rate
        if not limit or msg_id == 71:
            return True
        second = int(self.engine.clock())  # the simulator's clock: tests step it instead of sleeping
        if second != self._window:
            if second != self._window + 1 or self._in_window <= limit:
                self._violations = 0
            self._window, self._in_window = second, 0
        self._in_window += 1
        if self._in_window <= limit:
            return True
        if self._in_window == limit + 1:
            self._violations += 1
        req_id = to_int(fields[1]) if msg_id == 3 and len(fields) > 1 else -1
        self.send(m.error(self.version, req_id, 100, RATE_EXCEEDED % (limit, self._in_window)))
        if self._violations >= VIOLATIONS_TO_DISCONNECT:
            log.warning("clientId %s: disconnected for exceeding %s messages/s", self.client_id, limit)
            self.close()
        return False

    def start_api(self, fields: list[str]) -> None:
        client_id = to_int(fields[2])
        if any(p.client_id == client_id for p in self.engine.peers.connected):
            self.send(m.error(self.version, -1, 326, "Unable to connect as the client id is already in use."))
            self.close()
            return
        self.client_id = client_id
        self.send(m.managed_accounts(self.engine.config.accounts))
        self.send(m.next_valid_id(self.engine.next_valid_id(client_id)))
        for code, text in FARMS:
            self.send(m.error(self.version, -1, code, text))
        if client_id in self.engine.peers.lost_clients:
            missed = self.engine.peers.lost_clients.pop(client_id)
            code = 1101 if missed else 1102
            text = "data lost" if missed else "data maintained"
            self.send(
                m.error(
                    self.version, -1, code, f"Connectivity between IB and TWS has been restored - {text}."
                )
            )
        self.engine.peers.connected.append(self)
        log.info(
            "client %s connected with clientId %s at server version %s", self.peer, client_id, self.version
        )

    def place_order(self, fields: list[str]) -> None:
        req = parse_place_order(fields, self.version)
        if req.unread_fields:
            log.warning("placeOrder %s: layout walk left %s fields", req.order_id, req.unread_fields)
        orders.place(self.engine, self.client_id, req)

    def cancel_order(self, fields: list[str]) -> None:
        orders.cancel(self.engine, self.client_id, to_int(fields[2]))

    def _send_orders(self, orders: list[SimOrder]) -> None:
        for order in sorted(orders, key=lambda o: o.perm_id):
            self.send(m.open_order(self.version, order))
            self.send(m.order_status(order))
        self.send(m.open_order_end())

    def open_orders(self, fields: list[str]) -> None:
        """This client's working orders; client 0 also binds and gets the orders typed into TWS, and
        the master client gets every client's."""
        if self.client_id == 0:
            self.engine.bind_manual_orders()
        everyone = self.client_id == self.engine.config.master_client_id
        self._send_orders(
            [o for o in self.engine.book.working() if everyone or o.client_id == self.client_id]
        )

    def all_open_orders(self, fields: list[str]) -> None:
        self._send_orders(self.engine.book.working())

    def completed_orders(self, fields: list[str]) -> None:
        """Today's filled and cancelled orders of every client (`apiOnly` leaves out the ones placed in
        TWS)."""
        api_only = len(fields) > 1 and to_int(fields[1]) != 0
        for order in self.engine.completed_today():
            if not (api_only and order.client_id == 0 and order.order_id < 0):
                self.send(m.completed_order(self.version, order, self.engine.completed_time(order)))
        self.send(m.completed_orders_end())

    def positions(self, fields: list[str]) -> None:
        self.positions_subscribed = True
        for account in self.engine.accounts.values():
            for pos in account.positions.values():
                self.send(md.position(pos))
        self.send(md.position_end())

    def _account_rows(self, name: str) -> list[tuple[str, str, str]]:
        return self.engine.feeds.account_rows(name)

    def account_updates(self, fields: list[str]) -> None:
        subscribe, name = to_int(fields[2]) != 0, fields[3] or self.engine.config.accounts[0]
        if not subscribe:
            self.account_subscribed = None
            return
        if name not in self.engine.accounts:
            self.send(m.error(self.version, -1, 321, f"Invalid account code {name}"))
            return
        self.account_subscribed = name
        self.engine.feeds.send_account(self, name, self.engine.clock())
        self.send(md.account_download_end(name))

    def account_updates_multi(self, fields: list[str]) -> None:
        req_id, name = to_int(fields[2]), fields[3]
        names = [name] if name and name != "All" else list(self.engine.accounts)
        for acct in names:
            if acct not in self.engine.accounts:
                continue
            self.multi_subscriptions[req_id] = acct
            for key, value, cur in self._account_rows(acct):
                self.send(md.account_update_multi(req_id, acct, key, value, cur))
        self.send(md.account_update_multi_end(req_id))

    def req_pnl(self, fields: list[str]) -> None:
        """reqPnL (92): the account's P&L now, then after every fill, until cancelPnL (93)."""
        req_id, name = to_int(fields[1]), fields[2]
        if name not in self.engine.accounts:
            self.send(
                m.error(
                    self.version,
                    req_id,
                    321,
                    f"Error validating request:-'bK' : cause - Invalid account {name}",
                )
            )
            return
        self.pnl_subscriptions[req_id] = name
        self.engine.feeds.send_pnl(self, req_id, name)

    def cancel_pnl(self, fields: list[str]) -> None:
        self.pnl_subscriptions.pop(to_int(fields[1]), None)

    def account_summary(self, fields: list[str]) -> None:
        req_id = to_int(fields[2])
        wanted = set((fields[4] if len(fields) > 4 else "").split(",")) - {""}
        for name in self.engine.accounts:
            for key, value, cur in self._account_rows(name):
                if (key in wanted) if wanted else (key in SUMMARY_TAGS):
                    self.send(md.account_summary(req_id, name, key, value, cur))
        self.send(md.account_summary_end(req_id))

    def executions(self, fields: list[str]) -> None:
        """Executions since midnight only (IB keeps no more), each followed by its commission."""
        f = parse_exec_filter(fields)
        for e in self.engine.executions_today():
            if (
                (not f.client_id or e.client_id == f.client_id)
                and (not f.account or e.account == f.account)
                and (not f.symbol or e.contract.symbol == f.symbol)
                and (not f.side or e.side == {"BUY": "BOT", "SELL": "SLD"}.get(f.side, f.side))
                and (not f.time or e.time[:17] >= f.time.replace("-", " ")[:17])
            ):
                self.send(m.exec_details(self.version, f.req_id, e))
                self.send(m.commission_report(e))  # real TWS pairs each reply with its commission
        self.send(m.exec_details_end(f.req_id))

    def current_time(self, fields: list[str]) -> None:
        self.send(md.current_time(int(self.engine.clock())))

    def req_ids(self, fields: list[str]) -> None:
        self.send(m.next_valid_id(self.engine.next_valid_id(self.client_id)))

    def contract_details(self, fields: list[str]) -> None:
        """Every catalog instrument the request matches, with its hours; none: error 200."""
        req_id, contract = parse_contract_request(fields)
        found = matches(contract)
        if not found:
            self.send(m.error(self.version, req_id, 200, NO_SECURITY))
            return
        now = self.engine.clock()
        for inst in found:
            tz = hours.SESSIONS[inst.session].tz
            trading = hours.hours_text(inst.session, now, liquid=False)
            liquid = hours.hours_text(inst.session, now, liquid=True)
            self.send(md.contract_details(self.version, req_id, inst, tz, trading, liquid))
        self.send(md.contract_details_end(req_id))

    def req_market_data(self, fields: list[str]) -> None:
        """reqMktData: a quote from the price path; a snapshot ends with tickSnapshotEnd, a stream goes on
        with a last-price tick whenever the path moves."""
        req = parse_market_data_request(fields)
        found = matches(req.contract)
        if len(found) != 1:
            self.send(m.error(self.version, req.req_id, 200, NO_SECURITY))
            return
        key = found[0].key
        self.engine.feeds.quote(self, req.req_id, key)
        if req.snapshot:
            self.send(md.tick_snapshot_end(req.req_id))
        else:
            self.market_data[req.req_id] = key

    def cancel_market_data(self, fields: list[str]) -> None:
        self.market_data.pop(to_int(fields[2]), None)

    def global_cancel(self, fields: list[str]) -> None:
        orders.global_cancel(self.engine)

    def auto_open_orders(self, fields: list[str]) -> None:
        """reqAutoOpenOrders(True): client 0 binds orders typed into TWS from now on and hears them live."""
        if self.client_id == 0:
            self.auto_open = to_int(fields[2]) != 0 if len(fields) > 2 else False
        else:
            self.send(
                m.error(
                    self.version,
                    -1,
                    321,
                    "Error validating request:-'bX' : cause - Only client id 0 can request auto open orders",
                )
            )

    def ignore(self, fields: list[str]) -> None:
        """Requests TWS answers with nothing: reqMarketDataType, and the cancels of subscriptions."""

    def managed_accounts(self, fields: list[str]) -> None:
        self.send(m.managed_accounts(self.engine.config.accounts))

    def historical_data(self, fields: list[str]) -> None:
        """reqHistoricalData: bars from the price path (`history`); an unknown contract is 200."""
        req = parse_history_request(fields)
        found = matches(req.contract)
        end = end_epoch(req.end, self.engine.clock(), self.engine.config.tws_time_zone)
        if len(found) != 1:
            self.send(m.error(self.version, req.req_id, 200, NO_SECURITY))
            return
        if end is None:
            self.send(m.error(self.version, req.req_id, 162, BAD_END))
            return
        price = self.engine.prices.price(found[0].key)
        answer = bars(req, found[0], price, end, self.engine.config.seed)
        if isinstance(answer, tuple):
            self.send(m.error(self.version, req.req_id, *answer))
        else:
            self.send(answer)

    def unsupported(self, fields: list[str]) -> None:
        """A request the simulator does not model still gets TWS's answer at once, never silence: the
        historical-data kinds IB's 162 (a paper account without the market data permission), the others
        IB's 322 ("Server error when processing an API client request") naming the request; neither is
        one of the codes ib_async treats as a warning, so the client's request ends at once."""
        log.info("clientId %s: unsupported request %s", self.client_id, fields[:3])
        answer = unsupported_answer(fields)
        if answer is not None:
            self.send(m.error(self.version, *answer))


_HANDLERS = {
    71: Session.start_api,
    3: Session.place_order,
    4: Session.cancel_order,
    5: Session.open_orders,
    16: Session.all_open_orders,
    15: Session.auto_open_orders,
    99: Session.completed_orders,
    61: Session.positions,
    6: Session.account_updates,
    76: Session.account_updates_multi,
    92: Session.req_pnl,
    93: Session.cancel_pnl,
    62: Session.account_summary,
    7: Session.executions,
    49: Session.current_time,
    8: Session.req_ids,
    9: Session.contract_details,
    58: Session.global_cancel,
    1: Session.req_market_data,
    2: Session.cancel_market_data,
    59: Session.ignore,
    20: Session.historical_data,
    17: Session.managed_accounts,
    **dict.fromkeys(SILENT, Session.ignore),
}


def unsupported_answer(fields: list[str]) -> tuple[int, int, str] | None:
    """(reqId, code, text) of TWS's error for a request the simulator does not model; None for the ones
    TWS answers with nothing."""
    msg_id = to_int(fields[0])
    at = REQ_ID_AT.get(msg_id)
    req_id = to_int(fields[at]) if at is not None and len(fields) > at else -1
    if msg_id in HISTORICAL_KINDS:
        return req_id, 162, NO_PERMISSION
    return req_id, 322, f"Error processing request.-'bP' : cause - Unsupported request {msg_id}"
