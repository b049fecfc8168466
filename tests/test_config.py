"""Configuration layers: defaults <- TOML <- IBKR_* environment <- flags; refusals that protect money."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from oms.cli import build_parser
from oms.cli.run import overrides
from oms.service.config import ConfigError, load_config, parse_host_port
from oms.service.risk import RiskLimits, strategy_limits


def test_defaults() -> None:
    config = load_config(env={})
    assert config.ib_port is None and config.embedded_sim  # the embedded simulator
    assert config.pub == "tcp://127.0.0.1:5555" and config.router == "tcp://127.0.0.1:5556"
    assert config.durability == "group" and config.data_dir == "oms-data"


def test_layers_flags_win_over_env_over_toml(tmp_path: Path) -> None:
    toml = tmp_path / "oms.toml"
    toml.write_text(
        'ib_host = "10.0.0.1"\nib_port = 4002\nclient_id = 3\naccount = "DU9"\n[risk]\nmax_quantity = 5\n'
    )
    assert load_config(toml, env={}).ib_host == "10.0.0.1"
    env = {"IBKR_HOST": "10.0.0.2", "IBKR_PORT": "7497", "IBKR_CLIENT_ID": "4"}
    config = load_config(toml, env=env)
    assert (config.ib_host, config.ib_port, config.client_id, config.account) == ("10.0.0.2", 7497, 4, "DU9")
    config = load_config(
        toml, env=env, overrides={"client_id": 9, "risk": {"max_notional": 7.0, "max_quantity": None}}
    )
    assert config.client_id == 9 and config.risk.max_notional == 7.0
    assert config.risk.max_quantity == 5  # a flag not given keeps the file's value


def test_cli_flags_map_to_config(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["run", "--data-dir", str(tmp_path), "--ib", "127.0.0.1:4002", "--allowed-symbols", "AAPL, MSFT",
         "--max-order-age", "30", "--durability", "always"]
    )  # fmt: skip
    config = load_config(env={"IBKR_PORT": "7497"}, overrides=overrides(args))
    assert config.ib_port == 4002 and config.durability == "always"
    assert config.risk.allowed_symbols == ("AAPL", "MSFT") and config.risk.max_order_age_s == 30


def test_live_port_needs_live_flag() -> None:
    for port in (7496, 4001):
        with pytest.raises(ConfigError, match="LIVE"):
            load_config(env={"IBKR_PORT": str(port)})
        assert load_config(env={"IBKR_PORT": str(port)}, overrides={"live": True}).ib_port == port


def test_typos_and_bad_values_are_named(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text("[risk]\nmax_quantitty = 5\n")
    with pytest.raises(ConfigError, match="max_quantitty"):
        load_config(toml, env={})
    with pytest.raises(ConfigError, match="durability"):
        load_config(env={}, overrides={"durability": "sometimes"})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml", env={})
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_host_port("localhost:http")


def test_digest_is_stable_and_sensitive() -> None:
    assert load_config(env={}).digest() == load_config(env={}).digest()
    assert load_config(env={}).digest() != load_config(env={}, overrides={"client_id": 2}).digest()


@pytest.mark.parametrize("limit", ["max_quantity", "max_notional", "max_position", "max_order_age_s"])
@pytest.mark.parametrize("value", [-3, 0])
def test_zero_or_negative_risk_limits_are_refused_at_load(limit: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"risk.{limit} = {value}: a limit must be greater than 0"):
        load_config(env={}, overrides={"risk": {limit: value}})
    with pytest.raises(ConfigError, match="allowed_symbols is empty"):
        load_config(env={}, overrides={"risk": {"allowed_symbols": ()}})


def test_bad_environment_variables_are_named_and_break_nothing_else() -> None:
    import os
    import subprocess
    import sys

    for var, value in (("IBKR_PORT", "abc"), ("IBKR_CLIENT_ID", "x")):
        with pytest.raises(ConfigError, match=rf"environment variable {var}='{value}' is not a whole number"):
            load_config(env={var: value})
        env = {**os.environ, var: value}
        helped = subprocess.run(
            [sys.executable, "-m", "oms", "--help"], capture_output=True, text=True, env=env, timeout=60
        )
        assert helped.returncode == 0 and "COMMAND" in helped.stdout, helped.stderr
        for command in (["run", "--data-dir", "/nonexistent/never"], ["check"]):
            proc = subprocess.run(
                [sys.executable, "-m", "oms", *command], capture_output=True, text=True, env=env, timeout=60
            )
            assert proc.returncode == 2, proc.stderr
            assert f"{var}='{value}'" in proc.stderr and "Traceback" not in proc.stderr


def test_type_errors_read_as_sentences(tmp_path: Path) -> None:
    toml = tmp_path / "oms.toml"
    toml.write_text('client_id = "seven"\n[risk]\nmax_quantity = "ten"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(toml, env={})
    message = str(refused.value)
    assert "`" not in message and "$." not in message
    assert "client_id: expected a whole number, got text" in message


def test_risk_limits_are_exact_decimals_with_per_strategy_overrides(tmp_path: Path) -> None:
    toml = tmp_path / "oms.toml"
    toml.write_text(
        "[risk]\nmax_notional = 100000.10\ndaily_loss_limit = 500\nmax_position_pct_nlv = 10\n"
        'session_reset = "16:00 America/New_York"\n'
        "[risk.strategies.mom]\ndaily_loss_limit = 0.1\nmax_orders_per_minute = 30\n"
    )
    risk = load_config(toml, env={}).risk
    assert risk.max_notional == Decimal("100000.10") and type(risk.max_notional) is Decimal
    mom = strategy_limits(risk, "mom")
    assert (mom.daily_loss_limit, mom.max_orders_per_minute) == (Decimal("0.1"), 30)
    assert mom.max_position_pct_nlv == 10 and mom.session_reset == "16:00 America/New_York"
    assert strategy_limits(risk, "other") is risk
    default = RiskLimits().max_quantity
    assert default is not None and Decimal(20_000) <= default  # a standard EUR.USD order passes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[risk.strategies.mom]\nmax_working_orders = 0\n", "risk.strategies.mom.max_working_orders = 0"),
        ("[risk]\ndaily_loss_limit = -5\n", "risk.daily_loss_limit = -5"),
        ('[risk]\nsession_reset = "17:00"\n', "is not an IANA time zone"),
        ('[risk.strategies.x]\nsession_reset = "5pm UTC"\n', "expected a time and its zone"),
        ("[risk.strategies.x]\nmax_lots = 5\n", "max_lots"),
    ],
)
def test_bad_risk_limits_are_refused_at_load(tmp_path: Path, text: str, message: str) -> None:
    toml = tmp_path / "oms.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(toml, env={})
