"""CURVE authentication and encryption for servers reachable from other machines.

Servers bind to loopback by default. A server bound to any other address refuses to
start without CURVE keys: it then accepts only clients whose public key is in its
allow-list directory, and all traffic is encrypted (ZeroMQ's CurveZMQ). See
``docs/security.md`` for the threat model.

    server_public, server_secret = generate_keys("keys", "server")
    client_public, client_secret = generate_keys("keys/clients", "trainer")
    # server: --curve-secret keys/server.key_secret --curve-clients keys/clients
    keys = ClientKeys.load("keys/clients/trainer.key_secret", "keys/server.key")
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

from btgym.errors import LaunchError

#: The ZAP domain of every btgym server socket. Setting one also makes libzmq refuse
#: legacy ZMTP 1.0/2.0 peers (random bytes on the port would otherwise parse as one).
ZAP_DOMAIN = "btgym"


def generate_keys(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Create ``name.key`` (public) and ``name.key_secret`` in ``directory``; return both."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(directory), name)
    os.chmod(secret, 0o600)
    return Path(public), Path(secret)


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
    secret: bytes
    server_public: bytes

    @classmethod
    def load(
        cls, client_secret_file: str | os.PathLike[str], server_public_file: str | os.PathLike[str]
    ) -> ClientKeys:
        public, secret = zmq.auth.load_certificate(str(client_secret_file))
        server_public, _ = zmq.auth.load_certificate(str(server_public_file))
        if secret is None:
            raise ValueError(f"expected a secret key file, got {client_secret_file}")
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
    context: zmq.Context,
) -> Any:
    """Configure CURVE on a server socket before it binds; required off loopback.

    Returns the running authenticator (keep it alive), or None on loopback without keys.
    """
    if secret_file is None:
        if not is_loopback(bind):
            raise LaunchError(
                f"expected CURVE keys (--curve-secret and --curve-clients) to serve on the "
                f"non-loopback address {bind}; generate them with btgym.security.generate_keys"
            )
        return None
    if clients_dir is None or not Path(clients_dir).is_dir():
        raise LaunchError(f"expected a directory of authorized client keys, got {clients_dir!r}")
    from zmq.auth.thread import ThreadAuthenticator

    public, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise LaunchError(f"expected a secret key file, got {secret_file}")
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    # pyzmq's "*" does not match a named domain: configure the one our sockets use.
    authenticator.configure_curve(domain=ZAP_DOMAIN, location=str(clients_dir))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return authenticator


__all__ = ["ClientKeys", "generate_keys", "is_loopback", "secure_server"]
