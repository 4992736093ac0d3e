"""A REQ client for one btgym server, with timeouts on every wait.

Lazy-Pirate style: a request that gets no reply in time closes the socket (LINGER 0)
and opens a fresh one, so the client stays usable; idempotent operations (``hello``,
``ping``) are retried a bounded number of times, the others raise at once because
repeating a ``step`` would step twice. While waiting, the client also watches the
instance's process (when it knows it) and reports a crash without waiting out the
timeout.

Between processes on one host, frames travel by reference to the renderer's output
file once ``hello`` has proved the client can read the server's files
(:mod:`btgym.wire.frame_files`); ``frame_files=False`` or ``BTGYM_FRAME_FILES=0`` keeps
every byte on the socket. Between hosts, large arrays travel LZ4-compressed when both
ends have the codec (:mod:`btgym.wire.compression`; ``compression="off"`` or
``BTGYM_COMPRESSION=off`` turns that off).

A client is safe to share between threads: requests are serialized by a lock (a REQ
socket carries one request at a time). It belongs to the process that created it: in
a forked child every use raises :class:`~btgym.errors.UsedAfterForkError` at once,
and closing it there leaves the parent's socket alone. A handshake that a CURVE server
refuses is reported as :class:`~btgym.errors.AuthenticationError` (from ZeroMQ's
socket monitor), not as a timeout; so is a server that closes the connection while a
request waits (a frame over its bound: :class:`~btgym.errors.LimitError`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq
from gymnasium import spaces
from zmq.utils.monitor import recv_monitor_message

from btgym._launch_config import DEFAULTS
from btgym._moved import moved_attribute
from btgym.errors import (
    AlreadyPendingCallError,
    AuthenticationError,
    InstanceTimeoutError,
    NoAsyncCallError,
    ProtocolError,
    VersionMismatchError,
)
from btgym.peer import ServerPeer
from btgym.wire import compression as compressions
from btgym.wire import protocol
from btgym.wire.frame_files import FrameFileReader
from btgym.wire.security import ClientKeys, is_loopback
from btgym.wire.space_codec import space_from_data

IDEMPOTENT = frozenset({"hello", "ping"})
_POLL_SLICE_MS = 100
#: Monitor events that mean the server refused our handshake.
_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


class Client(ServerPeer):
    """Talks to one server at ``address``, one request at a time.

    ``timeout`` bounds every request in seconds. ``is_alive`` and ``log_tail``, when
    given (the launcher gives them), let errors say that the process died and show
    the end of its log (:class:`~btgym.peer.ServerPeer`). ``frame_files``: take frames
    by reference when the server shares this host's shared memory (proved at
    :meth:`hello`, which sets :attr:`frame_files` to the reader). ``compression``
    (default: ``BTGYM_COMPRESSION``, else ``"auto"``): ``"auto"`` offers the codecs this
    process has to a server at a non-loopback address, ``"off"`` never, ``"force"`` to
    every server (to test compression on one host). :meth:`hello` sets
    :attr:`compression` to the codec agreed, used only where frames are not taken by
    reference (frames on one host never travel compressed).
    """

    def __init__(
        self,
        address: str,
        timeout: float = DEFAULTS.timeout,
        instance: Any = None,
        retries: int = 2,
        is_alive: Callable[[], bool] | None = None,
        log_tail: Callable[[], str] | None = None,
        context: zmq.Context | None = None,
        curve: ClientKeys | None = None,
        frame_files: bool = True,
        compression: str | None = None,
    ) -> None:
        super().__init__(address, timeout, instance, is_alive, log_tail)
        self.curve = curve
        self.retries = retries
        self._context = context or zmq.Context.instance()
        self._lock = threading.RLock()
        self._socket: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._pending: str | None = None
        self._refusal = ""  # a refused handshake the monitor reported before a request
        self._largest_frame = 0  # of the request in flight
        self.use_frame_files = frame_files and os.environ.get("BTGYM_FRAME_FILES", "1") != "0"
        self.compression_mode = compressions.mode_from(compression)
        self._open_socket()

    # -- public API ------------------------------------------------------------------
    def request(self, op: str, body: Any = None, timeout: float | None = None) -> Any:
        """Send ``op`` with ``body``, wait for the reply and return its body."""
        attempts = 1 + (self.retries if op in IDEMPOTENT else 0)
        with self._lock:
            for attempt in range(attempts):
                self.send(op, body)
                try:
                    return self.recv(timeout)
                except InstanceTimeoutError:
                    if attempt + 1 == attempts:
                        raise
        raise AssertionError("unreachable")

    def send(self, op: str, body: Any = None) -> None:
        """Send a request without waiting; pair every ``send`` with one :meth:`recv`."""
        with self._lock:
            self._send(op, body)

    def _send(self, op: str, body: Any) -> None:
        self._check_usable()
        if self._pending is not None:
            raise AlreadyPendingCallError(
                f"expected a reply to {self._pending!r} to be received before sending {op!r} "
                "(one request at a time per client: several threads must use request(), "
                "which waits its turn, not send()/recv())"
            )
        # Frames by reference: one request in flight, so the server may drop older names.
        options = {"frame_files": 1} if self.frame_files is not None else None
        frames = protocol.encode(op, body, options=options, compress=self.compression)
        largest = self._check_request_size(op, frames)
        self._refusal, _ = self._peer_events()  # a disconnect before this request is no news
        assert self._socket is not None
        self._socket.send_multipart(frames, copy=False)
        self._pending, self._largest_frame = op, largest

    def recv(self, timeout: float | None = None) -> Any:
        """Wait for the reply to the pending request; raise on error replies and timeouts."""
        with self._lock:
            return self._recv(timeout)

    def _recv(self, timeout: float | None) -> Any:
        self._check_usable()
        if self._pending is None:
            raise NoAsyncCallError("expected a pending request before recv(), got none")
        op, self._pending = self._pending, None
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        assert self._socket is not None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._reopen()
                raise self._timed_out(op, limit)
            if self._socket.poll(min(_POLL_SLICE_MS, max(1, int(remaining * 1000)))):
                frames = self._socket.recv_multipart(copy=False)
                return self._unpack_reply(op, frames)
            refused, dropped = self._peer_events()
            if dropped and not refused:  # the server closed the connection: no reply comes
                error = self._dropped(op, self._largest_frame)
                self._reopen()
                raise error
            if refused:  # a refused handshake also ends in a disconnect: this says why
                self._reopen()
                raise AuthenticationError(
                    f"expected {self._where()} to accept our connection for {op!r}, but it "
                    f"refused the handshake ({refused}): the server serves at most "
                    "max_connections peers at once (close unused envs and streams), and a "
                    "CURVE server only keys in its clients directory (check "
                    "curve=ClientKeys.load(...))",
                    instance=self.instance,
                )
            if not self.is_alive():
                self._reopen()
                raise self._died(op)

    @property
    def socket(self) -> zmq.Socket:
        """The REQ socket, for polling several clients at once (do not send on it)."""
        self._check_usable()
        assert self._socket is not None
        return self._socket

    @property
    def pending(self) -> str | None:
        """The operation awaiting its reply, if any."""
        return self._pending

    def hello(self) -> dict[str, Any]:
        """Handshake: the server's protocol version, spaces and scene description."""
        offered = compressions.offer(self.compression_mode, not is_loopback(self.address))
        request: dict[str, Any] = {"protocol": protocol.PROTOCOL_VERSION}
        if offered:
            request["compression"] = offered
        self.compression = None  # the hello itself and a repeated hello travel plain
        info = self.request("hello", request)
        if info.get("protocol") != protocol.PROTOCOL_VERSION:
            raise VersionMismatchError(protocol.PROTOCOL_VERSION, info.get("protocol"), "server")
        self.max_message_bytes = info.get("max_message_bytes")
        self.observation_space = _declared_space(info.get("observation_space"), self._where())
        if self.use_frame_files:
            self.frame_files = FrameFileReader.from_hello(info.get("frame_files"))
        codec = info.get("compression")
        if codec is not None and codec not in offered:
            raise ProtocolError(
                f"expected the hello reply from {self._where()} to choose a codec from "
                f"{offered} or none, got {protocol.preview(codec)}"
            )
        # On one host frames travel by reference: compression only where they are inline.
        self.compression = codec if self.frame_files is None else None
        return info

    def close(self) -> None:
        """Close the socket (idempotent); in a forked child, only forget it."""
        if self._closed:
            return
        self._closed = True
        if not self._owned_here():
            self._socket = self._monitor = None  # the parent's: never touch it here
            return
        self._close_sockets()
        self._socket = None

    # -- internals -------------------------------------------------------------------
    def _open_socket(self) -> None:
        socket = self._context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.MAXMSGSIZE, self.max_reply_bytes)  # no bigger frame is read
        if self.curve is not None:
            self.curve.apply(socket)
        if self.address.startswith(("tcp://", "ipc://")):  # learn of a refused handshake
            self._monitor = socket.get_monitor_socket(_HANDSHAKE_FAILED | zmq.EVENT_DISCONNECTED)
        socket.connect(self.address)
        self._socket = socket

    def _peer_events(self) -> tuple[str, bool]:
        """What the monitor reported since the last look: a description of a refused
        handshake (or ''), and whether the server closed a connection.
        """
        refused, dropped = self._refusal, False
        self._refusal = ""
        while self._monitor is not None and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            if event["event"] & _HANDSHAKE_FAILED:
                refused = f"{zmq.Event(event['event']).name}, code {event['value']}"
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                dropped = True
        return refused, dropped

    def _close_sockets(self) -> None:
        if self._socket is not None:
            if self._monitor is not None:
                self._socket.disable_monitor()
                self._monitor.close(linger=0)
                self._monitor = None
            self._socket.close(linger=0)

    def _reopen(self) -> None:
        self._close_sockets()
        self._pending = None
        self._open_socket()


def _declared_space(data: Any, where: str) -> spaces.Space | None:
    """The observation space a server declared in ``hello`` (None: none declared).

    Raises :class:`ProtocolError` for a description that is not a space.
    """
    if data is None:
        return None
    try:
        return space_from_data(data)
    except Exception as exc:  # noqa: BLE001 - any malformed description
        raise ProtocolError(
            f"expected an observation space description in the hello reply from {where}, "
            f"got {protocol.preview(data)} ({type(exc).__name__})"
        ) from None


def __getattr__(name: str) -> Any:
    return moved_attribute(__name__, name)  # names that moved, for one release


__all__ = ["Client", "IDEMPOTENT"]
