"""A pipelining client: several requests in flight to one server (ZeroMQ DEALER to REP).

A REQ socket allows one request at a time, so every frame costs a full round trip in
which the server idles. For streaming, :class:`PipelinedClient` keeps up to ``depth``
requests queued at the server: it renders the next frame while the last one travels
and the trainer works. The REP server answers a peer's requests in order, so replies
are matched to requests by position. Memory stays bounded by ``depth`` replies.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from btgym.client import remote_exception
from btgym.errors import (
    ClosedError,
    InstanceDiedError,
    InstanceTimeoutError,
    ProtocolError,
    UsedAfterForkError,
)
from btgym.wire import protocol
from btgym.wire.frame_files import FrameFileReader
from btgym.wire.security import ClientKeys

#: Most requests in flight: the replies a server queues for one client (its SNDHWM).
MAX_DEPTH = protocol.MAX_IN_FLIGHT


class PipelinedClient:
    """Up to ``depth`` requests in flight to the server at ``address``; replies in order.

    ``frame_files``: the reader a :class:`~btgym.client.Client`'s ``hello`` set up for
    this server, to take frames by reference (``None``: bytes on the socket). ``depth``
    is at most :data:`MAX_DEPTH`, the replies a server queues for one client.
    """

    def __init__(
        self,
        address: str,
        depth: int = 2,
        timeout: float = 30.0,
        instance: Any = None,
        is_alive: Callable[[], bool] | None = None,
        log_tail: Callable[[], str] | None = None,
        context: zmq.Context | None = None,
        curve: ClientKeys | None = None,
        frame_files: FrameFileReader | None = None,
    ) -> None:
        if not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"expected 1 <= depth <= {MAX_DEPTH}, got {depth}")
        self._pid = os.getpid()
        self.address, self.depth, self.timeout, self.instance = address, depth, timeout, instance
        self._is_alive, self._log_tail = is_alive, log_tail
        self.socket = (context or zmq.Context.instance()).socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            curve.apply(self.socket)
        self.socket.connect(address)
        self.pending: deque[Any] = deque()  # one tag per request in flight, oldest first
        self.sent_at: deque[float] = deque()
        self.closed = False
        self.frame_files = frame_files

    def is_alive(self) -> bool:
        """False when the instance's process is known to have exited."""
        return self._is_alive is None or self._is_alive()

    @property
    def full(self) -> bool:
        return len(self.pending) >= self.depth

    def send(self, op: str, body: Any = None, tag: Any = None) -> None:
        """Queue a request; ``tag`` comes back with its reply."""
        self._check_usable()
        if self.full:
            raise ProtocolError(f"expected at most {self.depth} requests in flight, got more")
        # The server keeps frame files of this many recent requests named for us.
        options = {"frame_files": self.depth + 1} if self.frame_files is not None else None
        # An empty delimiter frame makes the DEALER message look like a REQ one to REP.
        frames = protocol.encode(op, body, options=options)
        self.socket.send_multipart([b"", *frames], copy=False)
        self.pending.append(tag)
        self.sent_at.append(time.monotonic())

    def oldest_age(self) -> float:
        """Seconds since the oldest request in flight was sent (0 when none)."""
        return time.monotonic() - self.sent_at[0] if self.sent_at else 0.0

    def recv(self, timeout: float | None = None) -> tuple[Any, Any]:
        """The oldest request's ``(tag, reply body)``; raises on error replies and timeouts."""
        self._check_usable()
        if not self.pending:
            raise ProtocolError("expected a request in flight before recv(), got none")
        limit = self.timeout if timeout is None else timeout
        deadline = max(time.monotonic(), self.sent_at[0] + limit)  # from when it was sent
        while not self.socket.poll(min(100, max(1, int((deadline - time.monotonic()) * 1000)))):
            if not self.is_alive():
                raise InstanceDiedError(
                    f"expected a reply from instance {self.instance} at {self.address}, but its "
                    "process exited",
                    instance=self.instance,
                    log_tail=self._tail(),
                )
            if time.monotonic() >= deadline:
                raise InstanceTimeoutError(
                    f"expected a reply within {limit:g} s from instance {self.instance} at "
                    f"{self.address}, got none",
                    instance=self.instance,
                    log_tail=self._tail(),
                )
        frames = self.socket.recv_multipart(copy=False)
        tag = self.pending.popleft()
        self.sent_at.popleft()
        if len(frames) < 2 or frames[0].bytes != b"":
            raise ProtocolError("expected an empty delimiter frame before the reply")
        message = protocol.decode(frames[1:], self.frame_files)
        if message.kind == protocol.REPLY_ERROR:
            raise remote_exception(message.body, self.instance)
        if message.kind != protocol.REPLY_OK:
            raise ProtocolError(
                f"expected an 'ok' or 'error' reply, got {protocol.preview(message.kind)}"
            )
        return tag, message.body

    def close(self) -> None:
        """Close the socket (idempotent); in a forked child, only forget it."""
        if not self.closed:
            self.closed = True
            if os.getpid() == self._pid:
                self.socket.close(linger=0)

    def _check_usable(self) -> None:
        if self.closed:
            raise ClosedError(f"pipelined client for {self.address} is closed")
        if os.getpid() != self._pid:
            raise UsedAfterForkError(
                f"expected the pipelined client for {self.address} to be used by the process "
                f"that created it (pid {self._pid}), got pid {os.getpid()}"
            )

    def _tail(self) -> str:
        return self._log_tail() if self._log_tail is not None else ""


__all__ = ["MAX_DEPTH", "PipelinedClient"]
