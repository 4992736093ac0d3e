"""CURVE authentication and encryption for servers reachable from other machines.

Servers bind to loopback by default. A server bound to any other address refuses to
start without CURVE keys: it then accepts only clients whose public key is in its
allow-list directory, and all traffic is encrypted (ZeroMQ's CurveZMQ). See
``docs/security.md`` for the threat model.

    generate_keys("keys", "server")  # keys/server.key, keys/server.key_secret
    trainer_public, _ = generate_keys("keys", "trainer")  # keys/trainer.key(_secret)
    allow_client("keys/clients", trainer_public)  # the allow-list: public keys only
    # server: --curve-secret keys/server.key_secret --curve-clients keys/clients
    keys = ClientKeys.load("keys/trainer.key_secret", "keys/server.key")

``btgym keys keys --clients trainer`` does the first three lines. Secret key files are
created with mode 0600 (never readable by others, not even briefly), and existing key
files are only replaced with ``force=True``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth

from btgym.errors import ConfigError, LaunchError, UntrustedPathError
from btgym.wire._private_files import trusted_directory, untrusted_reason

#: The ZAP domain of every btgym server socket. Setting one also makes libzmq refuse
#: legacy ZMTP 1.0/2.0 peers (random bytes on the port would otherwise parse as one).
ZAP_DOMAIN = "btgym"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# The ZPL certificate format of pyzmq's zmq.auth.create_certificates (and czmq), which
# zmq.auth.load_certificate and the authenticator's allow-list directory read.
_SECRET_BANNER = """#   ****  Generated on {0} by btgym  ****
#   ZeroMQ CURVE **Secret** Certificate
#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.

"""
_PUBLIC_BANNER = """#   ****  Generated on {0} by btgym  ****
#   ZeroMQ CURVE Public Certificate
#   Exchange securely, or use a secure mechanism to verify the contents
#   of this file after exchange.

"""


def _certificate(public: bytes, secret: bytes | None = None) -> str:
    """The text of a certificate file: public only, or public and secret."""
    banner = _SECRET_BANNER if secret is not None else _PUBLIC_BANNER
    text = banner.format(datetime.datetime.now()) + "metadata\ncurve\n"
    text += f'    public-key = "{public.decode("ascii")}"\n'
    if secret is not None:
        text += f'    secret-key = "{secret.decode("ascii")}"\n'
    return text


def check_key_name(name: str) -> str:
    """``name`` if it is usable as a key file name (no path, no hidden file); else ValueError."""
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"expected a key name of letters, digits, '_', '.' or '-' (not starting with "
            f"'.' or '-'), got {name!r}"
        )
    return name


def _refuse_existing(paths: list[Path]) -> None:
    existing = [str(path) for path in paths if path.exists() or path.is_symlink()]
    if existing:
        raise FileExistsError(
            f"expected no key files at {', '.join(existing)}, got existing ones; "
            "pass force=True to replace them"
        )


def _create(path: Path, text: str, mode: int) -> None:
    """Write a new file that has ``mode`` from its creation on (no umask, no symlinks)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(path, flags, mode), "w", encoding="ascii") as file:
        os.fchmod(file.fileno(), mode)  # the umask may have narrowed it, never widened
        file.write(text)


def _write(path: Path, text: str, mode: int, force: bool) -> None:
    """Create ``path``; with ``force``, atomically replace what is there (a temp + rename)."""
    if not force:
        _create(path, text, mode)
        return
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        _create(temporary, text, mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def generate_keys(
    directory: str | os.PathLike[str], name: str, *, force: bool = False
) -> tuple[Path, Path]:
    """Create ``name.key`` (public, 0644) and ``name.key_secret`` (0600) in ``directory``.

    Returns both paths. Existing key files are only replaced with ``force`` (atomically).
    A directory created here has mode 0700: it holds a secret. One that another user owns
    or can write (or a directory above it) is refused with
    :class:`~btgym.errors.UntrustedPathError`: they could swap ``server.key`` or add a key.
    """
    check_key_name(name)
    root = Path(trusted_directory(directory, "the keys directory"))
    public_file, secret_file = root / f"{name}.key", root / f"{name}.key_secret"
    if not force:
        _refuse_existing([public_file, secret_file])
    public, secret = zmq.curve_keypair()
    _write(secret_file, _certificate(public, secret), 0o600, force)
    _write(public_file, _certificate(public), 0o644, force)
    return public_file, secret_file


def allow_client(
    clients_dir: str | os.PathLike[str],
    key_file: str | os.PathLike[str],
    name: str | None = None,
    *,
    force: bool = False,
) -> Path:
    """Put the public key of ``key_file`` into the allow-list ``clients_dir`` as ``name.key``.

    Only the public key is written, even from a secret key file. ``name`` defaults to the
    key file's name without its suffix; an existing entry is replaced only with ``force``.
    A ``clients_dir`` another user owns or can write is refused (they could add keys).
    """
    if name is None:
        name = Path(key_file).name.removesuffix(".key_secret").removesuffix(".key")
    check_key_name(name)
    public, _ = zmq.auth.load_certificate(str(key_file))
    clients = trusted_directory(clients_dir, "the clients directory", mode=0o755)
    target = Path(clients) / f"{name}.key"
    if not force:
        _refuse_existing([target])
    _write(target, _certificate(public), 0o644, force)
    return target


def is_loopback(address: str) -> bool:
    """Whether a ZeroMQ address only accepts connections from this machine."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: reachable from outside


@dataclass(frozen=True)
class ClientKeys:
    """A client's key pair and the public key of the server it talks to."""

    public: bytes
    secret: bytes = field(repr=False)  # never in repr() or str(): logs and tracebacks
    server_public: bytes

    @classmethod
    def load(
        cls, client_secret_file: str | os.PathLike[str], server_public_file: str | os.PathLike[str]
    ) -> ClientKeys:
        """The keys in a client's secret certificate and the server's public certificate."""
        public, secret = zmq.auth.load_certificate(str(client_secret_file))
        server_public, _ = zmq.auth.load_certificate(str(server_public_file))
        if secret is None:
            raise ConfigError(f"expected a secret key file, got {client_secret_file}")
        return cls(public, secret, server_public)

    def apply(self, socket: zmq.Socket) -> None:
        """Make ``socket`` a CURVE client of the server (before connecting)."""
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret
        socket.curve_serverkey = self.server_public


def secure_server(
    socket: zmq.Socket,
    bind: str,
    secret_file: str | None,
    clients_dir: str | None,
) -> frozenset[bytes] | None:
    """Configure CURVE on a server socket before it binds; required off loopback.

    Returns the z85 public keys of the allow-list (the server's
    :class:`~btgym.wire._gate.ConnectionGate` lets only those in), or None on loopback
    without keys.
    """
    if secret_file is None:
        if not is_loopback(bind):
            raise LaunchError(
                f"expected CURVE keys (--curve-secret and --curve-clients) to serve on the "
                f"non-loopback address {bind}; generate them with btgym.wire.security.generate_keys"
            )
        return None
    if clients_dir is None or not Path(clients_dir).is_dir():
        raise LaunchError(f"expected a directory of authorized client keys, got {clients_dir!r}")
    reason = untrusted_reason(str(clients_dir))
    if reason is not None:  # whoever can write it can let any key in
        raise UntrustedPathError(
            f"expected the clients directory {clients_dir} to be one only uid {os.geteuid()} "
            f"can change, got one that another user could: {reason}"
        )
    public, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise LaunchError(f"expected a secret key file, got {secret_file}")
    allowed = frozenset(zmq.auth.load_certificates(str(clients_dir)))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return allowed


__all__ = [
    "ClientKeys",
    "allow_client",
    "check_key_name",
    "generate_keys",
    "is_loopback",
    "secure_server",
]
