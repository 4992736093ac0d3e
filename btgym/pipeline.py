"""A pipelining client: several requests in flight to one server (ZeroMQ DEALER to REP).

A REQ socket allows one request at a time, so every frame costs a full round trip in
which the server idles. For streaming, :class:`PipelinedClient` keeps up to ``depth``
requests queued at the server: it renders the next frame while the last one travels
and the trainer works. The REP server answers a peer's requests in order, so replies
are matched to requests by position. Memory stays bounded by ``depth`` replies.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from btgym._launch_config import DEFAULTS
from btgym.errors import AlreadyPendingCallError, ConfigError, NoAsyncCallError, ProtocolError
from btgym.peer import ServerPeer
from btgym.wire import protocol
from btgym.wire.frame_files import FrameFileReader
from btgym.wire.security import ClientKeys

if TYPE_CHECKING:
    from btgym.client import Client

#: Most requests in flight: the replies a server queues for one client (its SNDHWM).
MAX_DEPTH = protocol.MAX_IN_FLIGHT
_POLL_SLICE_MS = 100


class PipelinedClient(ServerPeer):
    """Up to ``depth`` requests in flight to the server at ``address``; replies in order.

    ``frame_files``: the reader a :class:`~btgym.client.Client`'s ``hello`` set up for
    this server, to take frames by reference (``None``: bytes on the socket);
    ``compression``: the codec its ``hello`` agreed (``None``: none). ``depth``
    is at most :data:`MAX_DEPTH`, the replies a server queues for one client. Liveness,
    log tail, fork check and reply unpacking are :class:`~btgym.peer.ServerPeer`'s.
    """

    kind = "pipelined client"

    def __init__(
        self,
        address: str,
        depth: int = 2,
        timeout: float = DEFAULTS.timeout,
        instance: Any = None,
        is_alive: Callable[[], bool] | None = None,
        log_tail: Callable[[], str] | None = None,
        context: zmq.Context | None = None,
        curve: ClientKeys | None = None,
        frame_files: FrameFileReader | None = None,
        compression: str | None = None,
    ) -> None:
        if not 1 <= depth <= MAX_DEPTH:
            raise ConfigError(f"expected 1 <= depth <= {MAX_DEPTH}, got {depth}")
        super().__init__(address, timeout, instance, is_alive, log_tail, frame_files, compression)
        self.depth = depth
        self.socket = (context or zmq.Context.instance()).socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, self.max_reply_bytes)  # no bigger frame is read
        if curve is not None:
            curve.apply(self.socket)
        self.socket.connect(address)
        self.pending: deque[Any] = deque()  # one tag per request in flight, oldest first
        self._sent: deque[tuple[str, float]] = deque()  # (op, when) per request in flight

    @classmethod
    def for_client(cls, client: Client, depth: int, instance: Any = None) -> PipelinedClient:
        """A pipelined client to the server ``client`` (a handshaken Client) talks to.

        Same address, timeout, keys, liveness, log and declared observation space; frames
        by reference when the client's ``hello`` proved it can read them, compressed when
        it agreed a codec.
        """
        pipe = cls(
            client.address,
            depth,
            client.timeout,
            instance=client.instance if instance is None else instance,
            is_alive=client.is_alive,
            log_tail=client.log_tail,
            curve=client.curve,
            frame_files=client.frame_files,
            compression=client.compression,
        )
        pipe.observation_space = client.observation_space  # replies must fit it too
        pipe.max_message_bytes = client.max_message_bytes
        return pipe

    @property
    def full(self) -> bool:
        """Whether ``depth`` requests are pending, so the next send must wait for a reply."""
        return len(self.pending) >= self.depth

    def send(self, op: str, body: Any = None, tag: Any = None) -> None:
        """Queue a request; ``tag`` comes back with its reply."""
        self._check_usable()
        if self.full:
            raise AlreadyPendingCallError(
                f"expected at most {self.depth} requests in flight to {self._where()}, "
                f"got {len(self.pending) + 1} with {op!r}"
            )
        # The server keeps frame files of this many recent requests named for us.
        options = {"frame_files": self.depth + 1} if self.frame_files is not None else None
        # An empty delimiter frame makes the DEALER message look like a REQ one to REP.
        frames = protocol.encode(op, body, options=options, compress=self.compression)
        self._check_request_size(op, frames)
        self.socket.send_multipart([b"", *frames], copy=False)
        self.pending.append(tag)
        self._sent.append((op, time.monotonic()))

    def oldest_age(self) -> float:
        """Seconds since the oldest request in flight was sent (0 when none)."""
        return time.monotonic() - self._sent[0][1] if self._sent else 0.0

    def recv(self, timeout: float | None = None) -> tuple[Any, Any]:
        """The oldest request's ``(tag, reply body)``; raises on error replies and timeouts."""
        self._check_usable()
        if not self.pending:
            raise NoAsyncCallError(
                f"expected a request in flight to {self._where()} before recv(), got none"
            )
        op, sent = self._sent[0]
        limit = self.timeout if timeout is None else timeout
        deadline = max(time.monotonic(), sent + limit)  # counted from when it was sent
        while not self.socket.poll(
            min(_POLL_SLICE_MS, max(1, int((deadline - time.monotonic()) * 1000)))
        ):
            if not self.is_alive():
                raise self._died(op)
            if time.monotonic() >= deadline:
                raise self._timed_out(op, limit)
        frames = self.socket.recv_multipart(copy=False)
        tag = self.pending.popleft()
        self._sent.popleft()
        if len(frames) < 2 or frames[0].bytes != b"":
            raise ProtocolError(
                f"expected an empty delimiter frame before the reply to {op!r}, got "
                f"{len(frames)} frames"
            )
        return tag, self._unpack_reply(op, frames[1:])

    def close(self) -> None:
        """Close the socket (idempotent); in a forked child, only forget it."""
        if not self._closed:
            self._closed = True
            if self._owned_here():
                self.socket.close(linger=0)


__all__ = ["MAX_DEPTH", "PipelinedClient"]
