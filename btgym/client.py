"""A REQ client for one btgym server, with timeouts on every wait.

Lazy-Pirate style: a request that gets no reply in time closes the socket (LINGER 0)
and opens a fresh one, so the client stays usable; idempotent operations (``hello``,
``ping``) are retried a bounded number of times, the others raise at once because
repeating a ``step`` would step twice. While waiting, the client also watches the
instance's process (when it knows it) and reports a crash without waiting out the
timeout.

Between processes on one host, frames travel by reference to the renderer's output
file once ``hello`` has proved the client can read the server's files
(:mod:`btgym.frame_files`); ``frame_files=False`` or ``BTGYM_FRAME_FILES=0`` keeps
every byte on the socket.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import zmq

from btgym import protocol
from btgym.errors import (
    ClosedError,
    DecodeError,
    EncodeError,
    InstanceDiedError,
    InstanceTimeoutError,
    InvalidActionError,
    ProtocolError,
    RemoteError,
    SpaceError,
    VersionMismatchError,
)
from btgym.frame_files import FrameFileReader
from btgym.security import ClientKeys

IDEMPOTENT = frozenset({"hello", "ping"})
_POLL_SLICE_MS = 100


class Client:
    """Talks to one server at ``address``.

    ``timeout`` bounds every request in seconds. ``is_alive`` and ``log_tail``, when
    given (the launcher gives them), let errors say that the process died and show
    the end of its log. ``frame_files``: take frames by reference when the server
    shares this host's shared memory (proved at :meth:`hello`).
    """

    def __init__(
        self,
        address: str,
        timeout: float = 30.0,
        instance: Any = None,
        retries: int = 2,
        is_alive: Callable[[], bool] | None = None,
        log_tail: Callable[[], str] | None = None,
        context: zmq.Context | None = None,
        curve: ClientKeys | None = None,
        frame_files: bool = True,
    ) -> None:
        self.address = address
        self.curve = curve
        self.timeout = timeout
        self.instance = instance
        self.retries = retries
        self._is_alive = is_alive
        self._log_tail = log_tail
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self._pending: str | None = None
        self.max_message_bytes: int | None = None  # learnt from the server in hello()
        self.use_frame_files = frame_files and os.environ.get("BTGYM_FRAME_FILES", "1") != "0"
        #: Maps frames the server sends by reference; set by :meth:`hello` when possible.
        self.frame_files: FrameFileReader | None = None
        self._closed = False
        self._open_socket()

    # -- public API ------------------------------------------------------------------
    def request(self, op: str, body: Any = None, timeout: float | None = None) -> Any:
        """Send ``op`` with ``body``, wait for the reply and return its body."""
        attempts = 1 + (self.retries if op in IDEMPOTENT else 0)
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
        self._check_open()
        if self._pending is not None:
            raise ProtocolError(
                f"expected a reply to {self._pending!r} to be received before sending {op!r}"
            )
        if self.frame_files is not None and (body is None or isinstance(body, dict)):
            body = {**(body or {}), "frame_files": 1}  # one request in flight
        frames = protocol.encode(op, body)
        if self.max_message_bytes is not None:
            largest = max(memoryview(frame).nbytes for frame in frames)
            if largest > self.max_message_bytes:
                raise ProtocolError(
                    f"expected frames of at most {self.max_message_bytes} bytes for "
                    f"{self._where()}, got one of {largest} bytes in {op!r}"
                )
        assert self._socket is not None
        self._socket.send_multipart(frames, copy=False)
        self._pending = op

    def recv(self, timeout: float | None = None) -> Any:
        """Wait for the reply to the pending request; raise on error replies and timeouts."""
        self._check_open()
        if self._pending is None:
            raise ProtocolError("expected a pending request before recv(), got none")
        op, self._pending = self._pending, None
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        assert self._socket is not None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._reopen()
                raise InstanceTimeoutError(
                    f"expected a reply to {op!r} within {limit:g} s from {self._where()}, "
                    "got none (the instance is hung or overloaded)",
                    instance=self.instance,
                    log_tail=self.log_tail(),
                )
            if self._socket.poll(min(_POLL_SLICE_MS, max(1, int(remaining * 1000)))):
                frames = self._socket.recv_multipart(copy=False)
                return self._unpack_reply(op, frames)
            if not self.is_alive():
                self._reopen()
                raise InstanceDiedError(
                    f"expected a reply to {op!r} from {self._where()}, but its process exited",
                    instance=self.instance,
                    log_tail=self.log_tail(),
                )

    def is_alive(self) -> bool:
        """False when the instance's process is known to have exited."""
        return self._is_alive is None or self._is_alive()

    @property
    def socket(self) -> zmq.Socket:
        """The REQ socket, for polling several clients at once (do not send on it)."""
        self._check_open()
        assert self._socket is not None
        return self._socket

    @property
    def pending(self) -> str | None:
        """The operation awaiting its reply, if any."""
        return self._pending

    def hello(self) -> dict[str, Any]:
        """Handshake: the server's protocol version, spaces and scene description."""
        info = self.request("hello", {"protocol": protocol.PROTOCOL_VERSION})
        if info.get("protocol") != protocol.PROTOCOL_VERSION:
            raise VersionMismatchError(protocol.PROTOCOL_VERSION, info.get("protocol"), "server")
        self.max_message_bytes = info.get("max_message_bytes")
        if self.use_frame_files:
            self.frame_files = FrameFileReader.from_hello(info.get("frame_files"))
        return info

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    @property
    def closed(self) -> bool:
        return self._closed

    # -- internals -------------------------------------------------------------------
    def _unpack_reply(self, op: str, frames: list[Any]) -> Any:
        message = protocol.decode(frames, self.frame_files)
        if message.kind == protocol.REPLY_OK:
            return message.body
        if message.kind == protocol.REPLY_ERROR:
            raise remote_exception(message.body, self.instance)
        raise ProtocolError(f"expected an 'ok' or 'error' reply to {op!r}, got {message.kind!r}")

    def _open_socket(self) -> None:
        socket = self._context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:
            self.curve.apply(socket)
        socket.connect(self.address)
        self._socket = socket

    def _reopen(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
        self._pending = None
        self._open_socket()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"client for {self._where()} is closed")

    def _where(self) -> str:
        name = f"instance {self.instance}" if self.instance is not None else "server"
        return f"{name} at {self.address}"

    def log_tail(self) -> str:
        """The end of the instance's log, when the launcher told us where it is."""
        return self._log_tail() if self._log_tail is not None else ""


def remote_exception(body: Any, instance: Any) -> Exception:
    """Rebuild the error a server sent: protocol and action errors keep their btgym type."""
    if not isinstance(body, dict):
        return ProtocolError(f"expected an error reply body as a dict, got {body!r:.80}")
    remote_type = str(body.get("type", "Exception"))
    message = str(body.get("message", ""))
    where = body.get("instance", instance)
    own = _SAME_TYPE_ON_BOTH_SIDES.get(remote_type)
    if own is not None:
        return own(f"{message} (reported by instance {where})")
    return RemoteError(remote_type, message, str(body.get("traceback", "")), where)


_SAME_TYPE_ON_BOTH_SIDES: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (ProtocolError, DecodeError, EncodeError, InvalidActionError, SpaceError)
}


__all__ = ["Client", "IDEMPOTENT"]
