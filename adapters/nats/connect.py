"""The mirror's configuration: where the stream is, how to log in (oms.client.jetstream_wire), and how
the mirror runs. Read from the `[mirror]` table of the service's TOML file, OMS_NATS_* variables and
flags, in that order of precedence (last wins):

    [mirror]
    url = "tls://nats1.example.com:4222,tls://nats2.example.com:4222,tls://nats3.example.com:4222"
    stream = "OMS_DU123456"
    user = "oms"                   # the password comes from OMS_NATS_PASSWORD, not the file
    tls_ca = "/etc/oms/nats-ca.pem"
    replicas = 3
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from oms.client.jetstream_wire import NatsConfigError, NatsSettings, settings_from

_MIRROR_KEYS = ("replicas", "max_in_flight", "batch", "poll_s", "status_interval_s", "ack_timeout_s")


class MirrorConfig(msgspec.Struct, frozen=True, kw_only=True):
    """`nats`: connection and stream; the rest tunes the mirror (the defaults suit one machine)."""

    nats: NatsSettings = msgspec.field(default_factory=NatsSettings)
    replicas: int = 1  # of the stream and the snapshot store: 3 in production (docs/scaling.md)
    max_in_flight: int = 4096  # publishes awaiting their ack
    batch: int = 4096  # envelopes read from the journal per turn
    poll_s: float = 0.005  # how often a caught-up mirror looks for new journal frames
    status_interval_s: float = 1.0  # lag published and written this often
    ack_timeout_s: float = 2.0  # an ack not back by then: resynchronize from the stream's last seq

    def __post_init__(self) -> None:
        if self.replicas not in (1, 3, 5):
            raise NatsConfigError(f"replicas must be 1, 3 or 5, not {self.replicas}")
        if self.max_in_flight < 1 or self.batch < 1 or self.poll_s <= 0 or self.ack_timeout_s <= 0:
            raise NatsConfigError("max_in_flight, batch, poll_s and ack_timeout_s must be positive")


def mirror_config(
    table: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    url: str | None = None,
    stream: str | None = None,
    replicas: int | None = None,
) -> MirrorConfig:
    """The `[mirror]` table (connection keys and the mirror's own), the environment, then flags."""
    table = dict(table or {})
    own = {key: table.pop(key) for key in _MIRROR_KEYS if key in table}
    if replicas is not None:
        own["replicas"] = replicas
    settings = settings_from(url, table, env, stream)
    try:
        tuned = msgspec.convert(own, MirrorConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise NatsConfigError(f"[mirror]: {exc}") from None
    return msgspec.structs.replace(tuned, nats=settings)


def mirror_table(config_file: str | Path | None) -> dict[str, Any]:
    """The `[mirror]` table of a TOML file (empty without a file or a table)."""
    if config_file is None:
        return {}
    try:
        with open(config_file, "rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise NatsConfigError(f"{config_file}: {exc}") from None
    table = data.get("mirror", {})
    if not isinstance(table, dict):
        raise NatsConfigError(f"{config_file}: [mirror] must be a table")
    return table
