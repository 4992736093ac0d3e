"""A server's door: at most ``max_connections`` peers at once, CURVE keys checked (ZAP).

ZeroMQ bounds what it queues per connection (``RCVHWM`` requests of at most
``max_message_bytes`` per frame), not per server: every new connection brings its own
queue. :class:`ConnectionGate` is the ZAP handler of the server's context: it counts the
connections the server socket accepted (from its socket monitor) and refuses the
handshake of any beyond ``max_connections``, so the bytes a server queues are bounded by
``max_connections`` x its per-connection bound. For a CURVE server it also lets in only
the client keys of the allow-list. A refused peer learns it at once (its handshake
fails with code 400); it gets in once a connection closes.
"""

from __future__ import annotations

import threading
from typing import Any

import zmq
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

#: Most peers a server serves at once (trainer clients: one per env, two per stream worker).
DEFAULT_MAX_CONNECTIONS = 16
#: Where libzmq sends ZAP requests (one handler per context).
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
_POLL_MS = 100


class ConnectionGate:
    """ZAP handler thread for ``socket`` (call before it binds; :meth:`stop` after it closes).

    ``allowed_keys``: z85 public keys of CURVE clients let in (None: no CURVE, NULL peers).
    The context must have no other ZAP handler (a server makes its own context).
    """

    def __init__(
        self,
        context: zmq.Context,
        socket: zmq.Socket,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        allowed_keys: frozenset[bytes] | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.allowed_keys = allowed_keys
        self.refused = 0  # handshakes refused, for tests and logs
        self._open: set[int] = set()  # descriptors of accepted connections
        self._stopping = threading.Event()
        self._zap = context.socket(zmq.REP)
        self._zap.setsockopt(zmq.LINGER, 0)
        self._zap.bind(ZAP_ENDPOINT)
        self._socket = socket
        self._monitor = socket.get_monitor_socket(_EVENTS)
        self._thread = threading.Thread(target=self._run, name="btgym-gate", daemon=True)
        self._thread.start()

    @property
    def connections(self) -> int:
        """Connections open now (as last seen by the gate's thread)."""
        return len(self._open)

    def stop(self) -> None:
        """End the thread and close its sockets (idempotent)."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._zap, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        try:
            while not self._stopping.is_set():
                ready = dict(poller.poll(_POLL_MS))
                self._count_events()
                if self._zap in ready:
                    self._answer(self._zap.recv_multipart())
        except zmq.ZMQError:
            pass  # the context is terminating: the server is gone
        finally:
            self._monitor.close(linger=0)
            self._zap.close(linger=0)

    def _count_events(self) -> None:
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._open.add(event["value"])
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self._open.discard(event["value"])

    def _answer(self, request: list[bytes]) -> None:
        if len(request) < 6:
            return  # not a ZAP request: nothing to answer it with
        version, request_id, _domain, _address, _identity, mechanism = request[:6]
        status, text = self._decide(mechanism, request[6:])
        self.refused += status != b"200"
        self._zap.send_multipart([version, request_id, status, text, b"", b""])

    def _decide(self, mechanism: bytes, credentials: list[Any]) -> tuple[bytes, bytes]:
        if len(self._open) > self.max_connections:
            return b"400", b"too many connections (max_connections)"
        if self.allowed_keys is not None:
            if mechanism != b"CURVE" or not credentials:
                return b"400", b"CURVE required"
            if z85.encode(credentials[0]) not in self.allowed_keys:
                return b"400", b"client key not allowed"
        return b"200", b"OK"


__all__ = ["DEFAULT_MAX_CONNECTIONS", "ConnectionGate"]
