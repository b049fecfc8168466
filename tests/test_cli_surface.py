"""What a person meets at the command line without a service: exact numbers, instruments named as IB
names them, contract flags checked, a mistyped flag, a closed pipe (issue 18, items 6, 8, 9 and 10)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from events.schema import Contract
from oms.cli import build_parser
from oms.cli import main as oms_main
from oms.cli.client import contract_spec
from oms.client import ContractSpec
from oms.client.render import account_table, json_text, positions_table, tidy
from oms.listing import instrument_name
from oms.state.model import Account, Position
from tests.client_helpers import REPO
from tests.test_replay_support import explicit_events, write_journal

Capture = pytest.CaptureFixture[str]
ES = Contract(symbol="ES", sec_type="FUT", exchange="CME", con_id=649180695, last_trade_date="20261218",
              multiplier="50", local_symbol="ESZ6")  # fmt: skip
CALL = Contract(symbol="AAPL", sec_type="OPT", con_id=700000101, last_trade_date="20261218", strike=200.0,
                right="C", multiplier="100", local_symbol="AAPL  261218C00200000")  # fmt: skip


def text(renderable: object) -> str:
    console = Console(width=300, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def test_tables_print_money_to_its_currencys_precision_and_json_exact_text() -> None:
    noisy = Position(
        key="DU1|649180695", account="DU1", contract=ES, quantity=Decimal(3),
        avg_price=Decimal("5400.3333333333"), realized_pnl_gross={"USD": Decimal("-11.3500000005")},
        commission={"USD": Decimal("2.55"), "JPY": Decimal("120.4")},
        realized_pnl_net={"USD": Decimal("-0.0001")}, status="filled", lifecycle=1,
    )  # fmt: skip
    table = text(positions_table([noisy]))
    assert "-11.35 USD" in table and "0000" not in table.replace("649180695", "")
    assert "2.55 USD, 120 JPY" in table and "5400.333333" in table
    assert "810050.00 USD" in table  # cost: 3 x 5400.3333333333 x 50, to the cent
    assert "-0.00" not in table and " 0.00 USD" in table  # a rounded-away loss is not negative zero
    account = Account(
        account="DU1",
        values={"RealizedPnL:USD": "-17.58999999999974", "ExchangeRate:EUR": "1.0812345", "AccountType": "X"},
        broker_realized_pnl={"USD": Decimal("-17.5899999999997474")},
    )  # fmt: skip
    shown = text(account_table(account))
    assert "-17.59" in shown and "99999" not in shown and "1.0812345" in shown
    assert json.loads(json_text([noisy]))[0]["realized_pnl_gross"] == {"USD": "-11.3500000005"}  # exact
    assert json.loads(json_text({"a": Decimal("0E-10"), "b": Decimal("1.2500000000")})) == {
        "a": "0",
        "b": "1.25",
    }


def test_csv_gives_money_maps_one_column_per_currency_and_exact_decimals() -> None:
    columns, rows = tidy(
        ["key", "commission", "gross", "qty"],
        [
            ("a", {"USD": Decimal("0.8500000000")}, {}, Decimal("0E-10")),
            ("b", {"EUR": Decimal("1.5"), "USD": Decimal("2")}, {}, Decimal("2.0000000000")),
        ],
    )
    assert columns == ["key", "commission.EUR", "commission.USD", "gross", "qty"]
    assert rows == [["a", "", "0.85", "", "0"], ["b", "1.5", "2", "", "2"]]


def test_oms_query_csv_and_json_carry_exact_decimals_never_a_repr(tmp_path: Path, capsys: Capture) -> None:
    write_journal(tmp_path / "data" / "journal", explicit_events())
    archive = tmp_path / "s.duckdb"
    assert oms_main(["archive", str(tmp_path / "data"), str(archive)]) == 0
    capsys.readouterr()
    sql = "SELECT MAP {'USD': -11.3500000000::DECIMAL(38,10)} AS pnl, 0::DECIMAL(38,10) AS zero"
    assert oms_main(["query", str(archive), sql, "--csv"]) == 0
    assert capsys.readouterr().out == "pnl.USD,zero\n-11.35,0\n"
    assert oms_main(["query", str(archive), sql, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"pnl": {"USD": "-11.35"}, "zero": "0"}
    assert oms_main(["query", str(archive), "SELECT * FROM positions", "--csv"]) == 0
    out = capsys.readouterr().out
    assert "Decimal(" not in out and "E-10" not in out and "{'" not in out


def test_options_and_futures_are_named_as_ib_names_them() -> None:
    assert instrument_name(CALL) == "AAPL 20261218 200 C"
    assert instrument_name(ES) == "ESZ6"
    assert instrument_name(Contract(symbol="ES", sec_type="FUT", last_trade_date="202703")) == "ESH7"
    assert instrument_name(Contract(symbol="EUR", sec_type="CASH", currency="USD")) == "EUR.USD"
    assert "AAPL 20261218 200 C" in text(positions_table([Position(key="k", account="DU1", contract=CALL)]))


def order_args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["order", "buy", *flags])


def test_contract_flags_build_ibs_contract_and_eur_usd_alone_is_cash_on_idealpro() -> None:
    assert contract_spec(order_args("EUR.USD", "20000")) == ContractSpec(
        symbol="EUR", sec_type="CASH", exchange="IDEALPRO", currency="USD"
    )
    option = ["AAPL", "1", "--sec-type", "opt", "--expiry", "20261218", "--strike", "200", "--right", "call"]
    assert contract_spec(order_args(*option)) == ContractSpec(
        symbol="AAPL", sec_type="OPT", last_trade_date="20261218", strike=200.0, right="C"
    )
    future = ["ES", "1", "--sec-type", "FUT", "--exchange", "cme", "--expiry", "202612", "--multiplier", "50",
              "--con-id", "649180695", "--local-symbol", "ESZ6", "--currency", "usd"]  # fmt: skip
    assert contract_spec(order_args(*future)) == ContractSpec(
        symbol="ES", sec_type="FUT", exchange="CME", currency="USD", con_id=649180695,
        last_trade_date="202612", multiplier="50", local_symbol="ESZ6",
    )  # fmt: skip
    assert order_args("EUR.USD", "0.01").quantity == Decimal("0.01")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["ES", "1", "--sec-type", "FUT", "--exchange", "CME"], "needs --expiry"),
        (["ES", "1", "--sec-type", "FUT", "--expiry", "202612"], "needs --exchange"),
        (["AAPL", "1", "--sec-type", "OPT", "--expiry", "20261218"], "needs --strike, --right"),
        (["AAPL", "1", "--strike", "200"], "--strike only name a future or an option"),
        (["EUR.USD", "1", "--currency", "JPY"], "quoted in USD, not JPY"),
    ],
)
def test_contract_flags_that_cannot_name_an_instrument_are_refused_before_any_request(
    flags: list[str], says: str, tmp_path: Path, capsys: Capture
) -> None:
    assert oms_main(["order", "buy", *flags, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert says in err and "not running" not in err


@pytest.mark.parametrize(
    ("flags", "says"),
    [(["--expiry", "2026-12"], "YYYYMM"), (["--right", "X"], "C or P"), (["--con-id", "-1"], "conId")],
)
def test_malformed_contract_flags_are_usage_errors(flags: list[str], says: str, capsys: Capture) -> None:
    with pytest.raises(SystemExit) as exited:
        oms_main(["order", "buy", "AAPL", "1", *flags])
    assert exited.value.code == 2 and says in capsys.readouterr().err


def test_a_mistyped_flag_is_answered_with_the_closest_flag_and_the_commands_usage(capsys: Capture) -> None:
    with pytest.raises(SystemExit) as exited:
        oms_main(["order", "buy", "AAPL", "1", "--limt", "5"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert "usage: oms order" in err and "--limt (did you mean --limit?)" in err
    with pytest.raises(SystemExit):
        oms_main(["positions", "--jsno"])
    assert "--jsno (did you mean --json?)" in capsys.readouterr().err


def test_replay_into_a_closed_pipe_stays_silent(tmp_path: Path) -> None:
    write_journal(tmp_path / "data" / "journal", explicit_events())
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "oms", "replay", str(tmp_path / "data"), "--json"],
            cwd=REPO, stdout=write, stderr=subprocess.PIPE, text=True, timeout=30,
        )  # fmt: skip
    finally:
        os.close(write)
    assert done.stderr == "" and done.returncode == 141


def test_verify_of_a_mirror_says_why_and_what_to_use(capsys: Capture) -> None:
    assert oms_main(["replay", "nats://user:secret@127.0.0.1:1/OMS", "--verify"]) == 2
    err = capsys.readouterr().err
    assert "no snapshots" in err and "oms replay DATA_DIR --verify" in err and "secret" not in err


def test_every_nats_server_example_listens_on_loopback_only(capsys: Capture) -> None:
    docs = (REPO / "docs" / "scaling.md").read_text()
    with pytest.raises(SystemExit):
        oms_main(["mirror", "--help"])
    commands = [
        line for line in (docs + capsys.readouterr().out).splitlines() if re.search(r"nats-server -", line)
    ]
    assert commands and all("-a 127.0.0.1" in line for line in commands), commands
