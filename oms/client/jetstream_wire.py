"""What the JetStream mirror and its readers agree on: names, the snapshot record, the status message,
and how to connect (credentials and TLS) without ever showing a secret.

One stream per service (design section 10): stream NAME holds subject `oms.NAME.events`, one message per
journal envelope (the journal's own msgpack bytes), stream sequence = journal seq. The latest snapshot
sits in the object store NAME_SNAPSHOT as object `latest`; the mirror's status (its lag) is published on
`oms.NAME.mirror`. Lives in the client because the client follows the stream too and never imports
adapters; the mirror (adapters/nats) imports it from here.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient

log = logging.getLogger(__name__)

DEFAULT_URL = "nats://127.0.0.1:4222"
DEFAULT_STREAM = "OMS"
SNAPSHOT_OBJECT = "latest"
STATUS_FILE = "mirror.json"  # in the service's data directory: the mirror's last MirrorStatus
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SECRET_FIELDS = ("password", "token")
ENV_PREFIX = "OMS_NATS_"


class NatsConfigError(ValueError):
    """A NATS setting that cannot work (bad URL, bad stream name, a TLS file that does not load)."""

    code = "bad_nats_config"


def events_subject(stream: str) -> str:
    return f"oms.{stream}.events"


def status_subject(stream: str) -> str:
    return f"oms.{stream}.mirror"


def snapshot_bucket(stream: str) -> str:
    return f"{stream}_SNAPSHOT"


class SnapshotRecord(msgspec.Struct, frozen=True):
    """The object store's `latest`: the service's encoded state (oms.state.codec) including seq."""

    seq: int
    state: bytes


class ReplicaStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One non-leader copy of the stream, as its leader sees it: `current` when it has everything,
    `offline` when it does not answer, `lag` in operations behind the leader."""

    name: str
    current: bool
    offline: bool = False
    lag: int = 0


class MirrorStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What the mirror publishes once a second and writes to DATA_DIR/mirror.json: lag = journal seq
    minus mirrored seq. `error` is set when the mirror stopped on a fault it must not paper over. On a
    cluster: its name, the stream's leader and the other replicas (empty on a lone server), as of the
    last status interval; `server` is the node the mirror is connected to."""

    stream: str
    url: str
    journal_seq: int
    mirrored_seq: int
    lag: int
    snapshot_seq: int
    connected: bool
    ts_ns: int
    error: str = ""
    server: str = ""
    cluster: str = ""
    leader: str = ""
    replicas: tuple[ReplicaStatus, ...] = ()


def read_status(data_dir: str | os.PathLike[str]) -> MirrorStatus | None:
    """DATA_DIR/mirror.json, or None when no mirror has reported there (what `oms status` shows)."""
    try:
        return msgspec.json.decode((Path(data_dir) / STATUS_FILE).read_bytes(), type=MirrorStatus)
    except (FileNotFoundError, msgspec.DecodeError):
        return None


class NatsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where the stream is and how to log in. `password` and `token` are secrets: `repr`, `str` and
    `describe()` never show them, and neither does anything this project logs."""

    url: str = DEFAULT_URL  # one server, or a comma-separated list (the nodes of a cluster)
    stream: str = DEFAULT_STREAM
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds_file: str | None = None  # a .creds file (JWT + nkey seed); needs the `nkeys` package
    nkey_seed_file: str | None = None  # an nkey seed file; needs the `nkeys` package
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    connect_timeout: float = 2.0

    def __post_init__(self) -> None:
        if not _STREAM_NAME.match(self.stream):
            raise NatsConfigError(f"stream name {self.stream!r}: use letters, digits, '_' or '-'")
        for server in self.servers:
            if not server.startswith(("nats://", "tls://", "ws://", "wss://")):
                raise NatsConfigError(f"NATS URL {redact_url(server)!r} must start with nats:// or tls://")

    @property
    def servers(self) -> list[str]:
        """The URLs in `url`, in order (the client tries them all and reconnects to any of them)."""
        return [part.strip() for part in self.url.split(",") if part.strip()] or [""]

    @property
    def shown_url(self) -> str:
        """The servers as a message may show them: the user kept, the password as '***'."""
        if not self.user:
            return self.url
        return ",".join(
            urlunsplit(parts._replace(netloc=f"{self.user}:***@{parts.netloc}"))
            for parts in map(urlsplit, self.servers)
        )

    def __repr__(self) -> str:
        return f"NatsSettings({self.describe()})"

    __str__ = __repr__

    def describe(self) -> str:
        """The settings for a log line or a status file: secrets replaced by '***'."""
        shown = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "url":
                value = redact_url(value)
            shown.append(f"{name}={'***' if name in _SECRET_FIELDS else value!r}")
        return ", ".join(shown)


def redact_url(url: str) -> str:
    """The URL (or each of a comma-separated list) without a password (nats://user:secret@host ->
    nats://user:***@host)."""
    if "," in url:
        return ",".join(redact_url(part.strip()) for part in url.split(","))
    parts = urlsplit(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}" if user else f"***@{host}"))


def settings_from(
    url: str | None = None,
    table: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    stream: str | None = None,
) -> NatsSettings:
    """Settings from a TOML table (`[mirror]`), then OMS_NATS_* environment variables, then the URL and
    stream given on the command line. A URL may be a comma-separated list of servers (the nodes of one
    cluster; in the table also a TOML array). Any of them may carry `user:password@` and a `/STREAM`
    path; both are taken out (the URLs kept are clean), though the environment is the better place for
    a secret."""
    values: dict[str, Any] = dict(table or {})
    if isinstance(values.get("url"), list):
        values["url"] = ",".join(str(server) for server in values["url"])
    for name in NatsSettings.__struct_fields__:
        key = ENV_PREFIX + name.upper()
        if env and env.get(key):
            values[name] = env[key]
    if url:
        clean = []
        for server in (part.strip() for part in url.split(",")):
            if not server:
                continue
            parts = urlsplit(server)
            if parts.username:
                values["user"] = parts.username
            if parts.password:
                values["password"] = parts.password
            if parts.path.strip("/"):
                values["stream"] = parts.path.strip("/")
            clean.append(urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "", "", "")))
        values["url"] = ",".join(clean)
    if stream:
        values["stream"] = stream
    try:
        return msgspec.convert(values, NatsSettings, strict=False)
    except msgspec.ValidationError as exc:
        raise NatsConfigError(f"NATS settings: {exc}") from None


def tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    """A verifying TLS context when the URL is tls:// or a CA/certificate is configured."""
    tls_urls = any(server.startswith("tls://") for server in settings.servers)
    if not (tls_urls or settings.tls_ca or settings.tls_cert):
        return None
    try:
        context = ssl.create_default_context(cafile=settings.tls_ca)
        if settings.tls_cert:
            context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise NatsConfigError(f"TLS files do not load: {exc}") from None
    return context


def connect_options(settings: NatsSettings) -> dict[str, Any]:
    """nats.connect() keyword arguments: credentials and TLS, every server of the list (and those a
    cluster announces), reconnecting for ever."""
    options: dict[str, Any] = {
        "servers": settings.servers,
        "connect_timeout": settings.connect_timeout,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.25,
        "allow_reconnect": True,
    }
    if settings.user:
        options["user"] = settings.user
        options["password"] = settings.password or ""
    if settings.token:
        options["token"] = settings.token
    if settings.creds_file:
        options["user_credentials"] = os.fspath(settings.creds_file)
    if settings.nkey_seed_file:
        options["nkeys_seed"] = os.fspath(settings.nkey_seed_file)
    context = tls_context(settings)
    if context is not None:
        options["tls"] = context
    return options


async def connect(settings: NatsSettings, name: str, attempts: int = 2, **callbacks: Any) -> NatsClient:
    """A connected nats-py client, or the error after `attempts` tries; once connected it reconnects for
    ever. Errors are logged by type and message only (never the settings)."""
    import asyncio

    import nats
    from nats.errors import UnexpectedEOF
    from nats.js.errors import APIError

    async def error_cb(exc: Exception) -> None:
        # a server going away and refusing connections while it restarts (the callers see the disconnect),
        # and per-message JetStream refusals (the mirror resynchronizes), would flood the log: DEBUG
        quiet = isinstance(exc, OSError | asyncio.TimeoutError | UnexpectedEOF | APIError)
        log.log(logging.DEBUG if quiet else logging.WARNING, "NATS %s: %s", type(exc).__name__, exc)

    options = connect_options(settings) | {"name": name, "error_cb": error_cb} | callbacks
    options["max_reconnect_attempts"] = attempts
    client = await nats.connect(**options)
    client.options["max_reconnect_attempts"] = -1  # nats-py reads it at each reconnect
    return client
