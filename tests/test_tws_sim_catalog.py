"""The simulator's pure parts: the instrument catalog, the session calendar and clock, the account's money
per currency, and the append-only state (constant cost per change, folded into a snapshot on start)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from adapters.tws_sim import SimConfig, hours, orders
from adapters.tws_sim.account import Account, ExecRecord
from adapters.tws_sim.catalog import BY_KEY, INSTRUMENTS, matches, resolve
from adapters.tws_sim.engine import Engine
from adapters.tws_sim.persist import LOG_FILE, STATE_FILE
from adapters.tws_sim.requests import PlaceOrder
from events.schema import Contract

NY = ZoneInfo("America/New_York")


def ny(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=NY).timestamp()


def test_every_instrument_has_its_own_con_id_and_resolves_back() -> None:
    assert len({i.con_id for i in INSTRUMENTS}) == len(INSTRUMENTS)
    for inst in INSTRUMENTS:
        assert resolve(Contract(symbol="", con_id=inst.con_id)) == inst
        assert inst.on_tick(inst.price)
    assert resolve(Contract(symbol="ZZZZNOTREAL")) is None
    assert len(matches(Contract(symbol="ES", sec_type="FUT"))) == 2  # two expiries: ambiguous for an order
    es = resolve(Contract(symbol="ES", sec_type="FUT", last_trade_date="202703"))
    assert es is not None and (es.local_symbol, es.multiplier, es.min_tick) == ("ESH7", "50", 0.25)
    put = resolve(
        Contract(symbol="AAPL", sec_type="OPT", last_trade_date="20261218", strike=180.0, right="P")
    )
    assert put is not None and put.multiplier == "100" and put.con_id != 265598
    fx = resolve(Contract(symbol="EUR", sec_type="CASH", currency="USD", exchange="IDEALPRO"))
    assert fx is not None and fx.valid_size(20000.5) and not fx.valid_size(0.001)
    assert fx.valid_size(0.07) and not BY_KEY["AAPL"].valid_size(100.0000001)  # exact: no tolerance
    assert {i.currency for i in INSTRUMENTS if i.sec_type == "STK"} >= {"USD", "EUR", "JPY"}


def test_sessions_open_close_and_day_ends() -> None:
    assert hours.is_open("us_stock", ny("2026-11-30T10:00"), liquid=True)
    assert not hours.is_open("us_stock", ny("2026-11-30T18:00"), liquid=True)
    assert hours.is_open("us_stock", ny("2026-11-30T18:00"), liquid=False)
    assert not hours.is_open("us_stock", ny("2026-12-05T10:00"), liquid=False)  # Saturday
    assert hours.day_end("us_stock", ny("2026-11-30T10:00"), False) == ny("2026-11-30T16:00")
    assert hours.day_end("us_stock", ny("2026-11-30T10:00"), True) == ny("2026-11-30T20:00")
    assert hours.day_end("us_stock", ny("2026-11-30T17:00"), False) == ny("2026-12-01T16:00")
    tokyo_lunch = datetime(2026, 12, 1, 12, 0, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp()
    assert not hours.is_open("tse", tokyo_lunch, liquid=True) and hours.is_open(
        "tse", tokyo_lunch, liquid=False
    )
    assert hours.is_open("cme_equity", ny("2026-11-30T20:00"), liquid=False)  # Globex overnight
    text = hours.hours_text("us_stock", ny("2026-12-04T10:00"), liquid=True)
    assert text.startswith("20261204:0930-20261204:1600;20261205:CLOSED;20261206:CLOSED;20261207:0930")
    assert hours.midnight(ny("2026-11-30T10:00"), "America/New_York") == ny("2026-11-30T00:00")


def test_clock_runs_from_its_start_and_moves_when_told() -> None:
    mono = [100.0]
    clock = hours.SimClock(1_000.0, monotonic=lambda: mono[0])
    mono[0] = 101.5
    assert clock() == 1_001.5
    clock.advance(60)
    assert clock() == 1_061.5
    start = datetime.fromtimestamp(hours.start_epoch("open"), NY)
    assert (start.hour, start.minute) == (10, 0) and start.weekday() < 5
    with pytest.raises(ValueError, match="time zone"):
        hours.start_epoch("2026-11-30T10:00")


def _exec(con_id: int, side: str, shares: float, price: float, commission: float) -> ExecRecord:
    inst = resolve(Contract(symbol="", con_id=con_id))
    assert inst is not None
    c = inst.contract
    return ExecRecord(
        "e", 1, 1, 1, c, "DU1", side, shares, price, shares, price, "", "", 0.0, commission, c.currency
    )


def test_futures_avg_cost_has_the_multiplier_and_money_stays_per_currency() -> None:
    account = Account("DU1", cash={"USD": 1_000_000.0})
    account.record(_exec(649180695, "BOT", 2, 5400.0, 1.70))
    pos = account.positions[649180695]
    assert pos.avg_cost == pytest.approx(5400.0 * 50 + 0.85)
    assert account.cash["USD"] == 1_000_000.0  # a future moves no notional (its commission is in avgCost)
    realized = account.record(_exec(649180695, "SLD", 2, 5410.0, 1.70))
    assert realized == pytest.approx(10.0 * 50 * 2 - 1.70 - 1.70)
    assert account.cash["USD"] == pytest.approx(1_000_000.0 + realized)  # P&L settles into cash
    account.record(_exec(14204, "BOT", 10, 180.0, 1.0))  # SAP, in EUR
    assert account.cash["EUR"] == pytest.approx(-1801.0)
    rows = account.values(lambda p: 180.0, {"USD": 1.0, "EUR": 1.1})
    keyed = {(k, c): v for k, v, c in rows}
    assert keyed[("ExchangeRate", "EUR")] == "1.100000" and keyed[("ExchangeRate", "BASE")] == "1.00"
    assert float(keyed[("CashBalance", "BASE")]) == pytest.approx(account.cash["USD"] - 1801.0 * 1.1)
    assert ("NetLiquidation", "USD") in keyed and ("StockMarketValue", "EUR") in keyed


def _order(order_id: int, order_type: str = "MKT", lmt: float | None = None) -> PlaceOrder:
    return PlaceOrder(
        order_id, Contract(symbol="AAPL"), "BUY", 1.0, order_type, lmt, None, "GTC", "", "", f"r{order_id}",
        True, 0, False,
    )  # fmt: skip


def test_state_is_appended_per_change_and_folded_on_start(tmp_path: Path) -> None:
    config = SimConfig(state_dir=str(tmp_path), clock_start="2026-11-30T10:00:00-05:00")
    engine = Engine(config)
    orders.place(engine, 1, _order(1))
    orders.place(engine, 1, _order(2, "LMT", 1.0))
    snapshot = (tmp_path / STATE_FILE).read_bytes()
    log_lines = (tmp_path / LOG_FILE).read_bytes().splitlines()
    orders.place(engine, 1, _order(3, "LMT", 1.0))
    assert (tmp_path / STATE_FILE).read_bytes() == snapshot  # no rewrite per order
    grown = (tmp_path / LOG_FILE).read_bytes().splitlines()
    assert len(grown) > len(log_lines) and grown[: len(log_lines)] == log_lines  # appended, never rewritten
    with (tmp_path / LOG_FILE).open("ab") as f:
        f.write(b'{"type":"o","ord')  # a torn last line: ignored on start
    again = Engine(config)  # no close: the snapshot plus the log
    assert again.book.orders.keys() == engine.book.orders.keys()
    assert [o.status for o in again.book.working()] == ["Submitted", "Submitted"]
    assert again.accounts["DU123456"].positions[265598].quantity == 1
    assert again.next_valid_id(1) == 4
    assert not (tmp_path / LOG_FILE).exists() or (tmp_path / LOG_FILE).read_bytes() == b""
    saved = json.loads((tmp_path / STATE_FILE).read_bytes())
    assert len(saved["orders"]) == 3 and len(saved["executions"]) == 1
    assert (tmp_path / STATE_FILE).stat().st_mode & 0o777 == 0o600


def test_a_local_symbol_narrows_the_match_as_at_ib() -> None:
    h7 = resolve(Contract(symbol="ES", sec_type="FUT", exchange="CME", local_symbol="ESH7"))
    assert h7 is not None and h7.con_id == 649180702  # the symbol alone lists two expiries
    assert resolve(Contract(symbol="ES", sec_type="FUT", local_symbol="ESZ9")) is None  # no such contract
    assert resolve(Contract(symbol="AAPL", local_symbol="AAPL")) == BY_KEY["AAPL"]  # IB's own description
