"""Service configuration: defaults <- TOML file <- environment (IBKR_*) <- command-line flags.

One frozen msgspec Struct, so a typo in the TOML file is an error naming the key, and the whole
configuration has a stable digest (logged in SessionStarted) to tell sessions apart.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec
from msgspec import Struct

from oms.readable import plain, validation_message
from oms.service.risk import LIMIT_KEYS, RiskLimits, StrategyLimits
from oms.service.sessions import parse_reset

Durability = Literal["always", "group", "never"]
Library = Literal["ib_async", "ib_insync"]

PAPER_PORTS = (7497, 4002)
LIVE_PORTS = (7496, 4001)
ENV_KEYS = {
    "IBKR_HOST": "ib_host",
    "IBKR_PORT": "ib_port",
    "IBKR_CLIENT_ID": "client_id",
    "IBKR_ACCOUNT": "account",
}
ENV_INTS = ("IBKR_PORT", "IBKR_CLIENT_ID")


class ConfigError(ValueError):
    """A configuration the service must not start with; the message says what to change."""

    code = "bad_config"


class ClientGrant(Struct, frozen=True, forbid_unknown_fields=True):
    """What one CURVE client key (`[curve.clients.NAME]` for NAME.key) may do beyond queries: place,
    modify and cancel for these strategies; `admin` also the kill switch and cancel-all across
    strategies (and any strategy)."""

    strategies: tuple[str, ...] = ()
    admin: bool = False


class CurveConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """CURVE for non-loopback binds: the server's certificate (written by `oms keys`), a directory of
    allowed client public keys (`*.key` files), and what each of them may do (`clients`, by file stem;
    a key with no entry may only query)."""

    server_secret_key: str | None = None
    authorized_clients: str | None = None
    clients: dict[str, ClientGrant] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.server_secret_key and self.authorized_clients)


class Config(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    data_dir: str = "oms-data"
    ib_host: str = "127.0.0.1"
    ib_port: int | None = None  # None: start the embedded TWS simulator
    client_id: int = 1
    master_client: bool = False  # connect as client id 0 so orders placed in TWS arrive live (ib-adapter.md)
    mirror: dict[str, Any] = msgspec.field(
        default_factory=dict
    )  # [mirror]: the JetStream mirror (scaling.md)
    account: str = ""  # default account for orders; "" = the first account IB reports
    live: bool = False  # required to connect to a live-trading port (7496, 4001)
    library: Library = "ib_async"
    record_wire: bool = False  # every byte to and from TWS into DATA_DIR/wire (operations.md)
    connect_timeout_s: float = 10.0
    pub: str = "tcp://127.0.0.1:5555"
    router: str = "tcp://127.0.0.1:5556"
    pub_hwm: int = 100_000
    durability: Durability = "group"
    group_commit_ms: float = 2.0
    snapshot_every: int = 100_000  # events between periodic snapshots
    status_interval_s: float = 0.5
    risk: RiskLimits = RiskLimits()
    curve: CurveConfig = CurveConfig()

    def digest(self) -> str:
        """Stable across runs for the same settings (keys sorted)."""
        encoded = msgspec.json.encode(msgspec.to_builtins(self), order="sorted")
        return hashlib.sha256(encoded).hexdigest()[:16]

    @property
    def embedded_sim(self) -> bool:
        return self.ib_port is None


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Merge the layers; `overrides` are flags (None values are "not given"; a `risk` dict is merged
    key by key)."""
    merged: dict[str, Any] = {}
    if path is not None:
        try:
            merged = tomllib.loads(Path(path).read_text(), parse_float=Decimal)  # limits are exact
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    for var, key in ENV_KEYS.items():
        if env and env.get(var):
            merged[key] = env_int(env, var, 0) if var in ENV_INTS else env[var]
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping):
            merged[key] = {**merged.get(key, {}), **{k: v for k, v in value.items() if v is not None}}
        elif value is not None:
            merged[key] = value
    try:
        config = msgspec.convert(merged, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {validation_message(exc)}") from None
    check_config(config)
    return config


def check_config(config: Config) -> None:
    if config.ib_port in LIVE_PORTS and not config.live:
        raise ConfigError(
            f"port {config.ib_port} is a LIVE trading port; pass --live (or live = true) to trade "
            f"real money, or use a paper port {PAPER_PORTS}"
        )
    if config.group_commit_ms <= 0 or config.snapshot_every <= 0 or config.pub_hwm <= 0:
        raise ConfigError("group_commit_ms, snapshot_every and pub_hwm must be > 0")
    check_limits(config.risk)


def check_limits(risk: RiskLimits) -> None:
    """A limit of zero or below would refuse every order: refuse the configuration instead."""
    check_scope("risk", risk, (*LIMIT_KEYS, "max_order_age_s"))
    for name, override in risk.strategies.items():
        check_scope(f"risk.strategies.{name}", override, LIMIT_KEYS)
    if risk.allowed_symbols is not None and not risk.allowed_symbols:
        raise ConfigError(
            "risk.allowed_symbols is empty, which would refuse every order: list the symbols "
            "(leave it out to allow every symbol)"
        )


def check_scope(where: str, limits: RiskLimits | StrategyLimits, keys: tuple[str, ...]) -> None:
    for name in keys:
        value = getattr(limits, name)
        if name == "session_reset":
            try:
                parse_reset(value) if value is not None else None
            except ValueError as exc:
                raise ConfigError(f"{where}.{exc}") from None
        elif value is not None and not value > 0:
            raise ConfigError(
                f"{where}.{name} = {plain(value)}: a limit must be greater than 0 "
                "(leave it out to turn that check off)"
            )


def env_int(env: Mapping[str, str], var: str, default: int) -> int:
    """An integer environment variable, or `default` when unset; a ConfigError naming it otherwise."""
    text = env.get(var, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(
            f"environment variable {var}={text!r} is not a whole number; fix or unset it"
        ) from None


def parse_host_port(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `PORT` (host 127.0.0.1)."""
    host, _, port = text.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError as exc:
        raise ConfigError(f"expected HOST:PORT, got {text!r}") from exc
