"""CURVE for binds beyond loopback: key files, the bind rule, and the ZAP allow-list of client keys.

Key files use libzmq's certificate format (readable by `zmq.auth.load_certificate`): `NAME.key` holds the
public key (share it), `NAME.key_secret` both keys (mode 0600, keep it). The server loads its own
`.key_secret`; clients are allowed by dropping their `.key` files into the `authorized_clients` folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.asyncio
import zmq.auth
import zmq.auth.asyncio

from oms.service.config import ConfigError, CurveConfig

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def is_loopback(endpoint: str) -> bool:
    """ipc:// and inproc:// never leave the machine; tcp:// only on a loopback address."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = urlsplit(f"//{rest}").hostname or rest.rpartition(":")[0]
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def check_binds(endpoints: list[str], curve: CurveConfig) -> None:
    """Refuse to expose the service beyond this machine without CURVE, and say how to fix it."""
    exposed = [e for e in endpoints if not is_loopback(e)]
    if exposed and not curve.enabled:
        raise ConfigError(
            f"refusing to bind {', '.join(exposed)} without CURVE: beyond loopback the service requires "
            "curve.server_secret_key (create one with `oms keys DIR`) and curve.authorized_clients "
            "(a folder of allowed client public .key files)"
        )


def _write_private(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def write_keypair(directory: str | Path, name: str) -> tuple[Path, Path]:
    """(public file, secret file); refuses to overwrite existing keys."""
    folder = Path(directory)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    public, secret = zmq.curve_keypair()
    banner = f"#   ZeroMQ CURVE certificate for {name}, written {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
    body = f'metadata\ncurve\n    public-key = "{public.decode()}"\n'
    public_path, secret_path = folder / f"{name}.key", folder / f"{name}.key_secret"
    _write_private(secret_path, banner + body + f'    secret-key = "{secret.decode()}"\n', 0o600)
    _write_private(public_path, banner + body, 0o644)
    return public_path, secret_path


def load_secret(path: str | Path) -> tuple[bytes, bytes]:
    """(public, secret) from a `.key_secret` file."""
    public, secret = zmq.auth.load_certificate(os.fspath(path))
    if secret is None:
        raise ConfigError(f"{path} holds no secret key (pass the .key_secret file written by `oms keys`)")
    return public, secret


def server_keys(curve: CurveConfig) -> tuple[bytes | None, bytes | None]:
    """(public, secret) of the server, or (None, None) when CURVE is off."""
    if not curve.enabled:
        return None, None
    return load_secret(curve.server_secret_key or "")


def start_authenticator(
    ctx: zmq.asyncio.Context, curve: CurveConfig
) -> zmq.auth.asyncio.AsyncioAuthenticator:
    """ZAP handler for `ctx`: only clients whose public key is in `authorized_clients` may connect."""
    folder = curve.authorized_clients or ""
    if not Path(folder).is_dir():
        raise ConfigError(f"curve.authorized_clients {folder!r} is not a directory")
    auth = zmq.auth.asyncio.AsyncioAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=folder)
    return auth
