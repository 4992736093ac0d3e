"""What every client of one btgym server shares: where the server is and what its reply means.

:class:`~btgym.client.Client` (REQ, one request at a time) and
:class:`~btgym.pipeline.PipelinedClient` (DEALER, several in flight) differ in how they
send and wait; the rest lives here once: address, timeout, the instance's liveness and
log tail, ownership by the creating process, the errors for a dead or silent instance,
and the unpacking of a reply (an ``error`` reply becomes the exception it describes).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from gymnasium import spaces

from btgym.errors import (
    BtgymError,
    ClosedError,
    ConfigError,
    DecodeError,
    EncodeError,
    InstanceDiedError,
    InstanceTimeoutError,
    InvalidActionError,
    InvalidActionTypeError,
    LimitError,
    ObservationError,
    ProtocolError,
    RemoteAttributeError,
    RemoteError,
    RenderError,
    SpaceError,
    UsedAfterForkError,
)
from btgym.wire import protocol
from btgym.wire._gate import DEFAULT_MAX_CONNECTIONS
from btgym.wire._reply_checks import reply_mismatch
from btgym.wire.frame_files import FrameFileReader

#: Scene events a client keeps until they are popped (the oldest go first).
MAX_EVENTS = 1024
#: Seconds to wait for a process whose server closed our connection to be seen exiting.
DIED_GRACE = 1.0
#: The frame bound of a server with the default bounds (what a client assumes before hello).
DEFAULT_FRAME_BYTES = protocol.frame_bound(
    protocol.DEFAULT_MAX_MESSAGE_BYTES, protocol.DEFAULT_MAX_SERVER_BYTES, DEFAULT_MAX_CONNECTIONS
)


class ServerPeer:
    """One server at ``address`` as a client sees it.

    ``timeout`` bounds every wait (seconds). ``is_alive`` and ``log_tail``, when given
    (the launcher gives them), let errors say that the process died and show the end of
    its log. ``frame_files`` maps frames the server sends by reference (``None``: bytes);
    ``compression`` is the codec agreed at ``hello`` (``None``: none), with which large
    arrays travel both ways.
    A peer belongs to the process that created it: in a forked child every use raises
    :class:`~btgym.errors.UsedAfterForkError`.
    """

    #: How errors name this kind of client.
    kind = "client"

    def __init__(
        self,
        address: str,
        timeout: float,
        instance: Any = None,
        is_alive: Callable[[], bool] | None = None,
        log_tail: Callable[[], str] | None = None,
        frame_files: FrameFileReader | None = None,
        compression: str | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.instance = instance
        self.frame_files = frame_files
        self.compression = compression
        #: The observation space the server declared at ``hello``: replies must fit it.
        self.observation_space: spaces.Space | None = None
        #: Most bytes of arrays one reply may declare (also the socket's MAXMSGSIZE).
        self.max_reply_bytes = protocol.DEFAULT_MAX_REPLY_BYTES
        #: The most bytes the server takes in one request (it says so in ``hello``).
        self.max_message_bytes: int | None = None
        self._is_alive = is_alive
        self._log_tail = log_tail
        self._pid = os.getpid()
        self._closed = False
        #: Events the scene emitted (``Scene.emit``), oldest first, each with its instance.
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def is_alive(self) -> bool:
        """False when the instance's process is known to have exited."""
        return self._is_alive is None or self._is_alive()

    def log_tail(self) -> str:
        """The end of the instance's log, when the launcher told us where it is."""
        return self._log_tail() if self._log_tail is not None else ""

    # -- for subclasses --------------------------------------------------------------
    def _owned_here(self) -> bool:
        """Whether this process created the peer (a forked child must not touch its socket)."""
        return os.getpid() == self._pid

    def _check_usable(self) -> None:
        if self._closed:
            raise ClosedError(f"expected an open {self.kind} for {self._where()}, but it is closed")
        if not self._owned_here():
            raise UsedAfterForkError(
                f"expected the {self.kind} for {self._where()} to be used by the process that "
                f"created it (pid {self._pid}), got pid {os.getpid()}: after a fork, make a "
                "new env in the child (sockets and Blender processes are not inherited)"
            )

    def _where(self) -> str:
        name = f"instance {self.instance}" if self.instance is not None else "server"
        return f"{name} at {self.address}"

    def _check_request_size(self, op: str, frames: list[Any]) -> int:
        """Refuse a request over the server's bound before sending it; its largest frame.

        ZeroMQ drops a peer that sends a frame over the server's ``max_message_bytes``
        without a word, so a request the server would refuse never leaves.
        """
        sizes = [memoryview(frame).nbytes for frame in frames]
        if self.max_message_bytes is not None and sum(sizes) > self.max_message_bytes:
            raise LimitError(
                f"expected a request of at most {self.max_message_bytes} bytes for "
                f"{self._where()} (its max_message_bytes), got {sum(sizes)} bytes in {op!r}"
            )
        return max(sizes)

    def _dropped(self, op: str, largest_frame: int) -> BtgymError:
        """The error for a server that closed our connection while ``op`` was pending.

        A frame over the server's bound is why a live server does that (ZeroMQ's
        MAXMSGSIZE disconnects the peer without a word); otherwise its process stopped (a
        dying process closes its sockets a moment before it can be seen to have exited).
        """
        known = self.max_message_bytes
        if known is not None and largest_frame > known:
            return self._too_big(op, largest_frame, f"its bound of {known} bytes")
        deadline = time.monotonic() + DIED_GRACE
        while self._is_alive is not None and time.monotonic() < deadline:
            if not self.is_alive():
                return self._died(op)
            time.sleep(0.02)
        if known is None and largest_frame > DEFAULT_FRAME_BYTES:  # no hello told us
            return self._too_big(
                op,
                largest_frame,
                f"a default server's bound of {DEFAULT_FRAME_BYTES} bytes (this one's is not "
                "known here: no hello)",
            )
        unsure = "" if known is not None else ", or our request was over its bound (no hello)"
        return InstanceDiedError(
            f"expected a reply to {op!r} from {self._where()}, but the server closed our "
            f"connection (it stopped, or a server at this address was replaced{unsure})",
            instance=self.instance,
            log_tail=self.log_tail(),
        )

    def _too_big(self, op: str, largest_frame: int, bound: str) -> LimitError:
        return LimitError(
            f"expected {self._where()} to take our {op!r} request, but it closed the "
            f"connection: our largest frame, {largest_frame} bytes, is over {bound} "
            "(max_message_bytes); ZeroMQ disconnects a peer that sends a bigger frame"
        )

    def _died(self, op: str) -> InstanceDiedError:
        return InstanceDiedError(
            f"expected a reply to {op!r} from {self._where()}, but its process exited",
            instance=self.instance,
            log_tail=self.log_tail(),
        )

    def _timed_out(self, op: str, limit: float) -> InstanceTimeoutError:
        return InstanceTimeoutError(
            f"expected a reply to {op!r} within {limit:g} s from {self._where()}, got none "
            "(the instance is hung or overloaded)",
            instance=self.instance,
            log_tail=self.log_tail(),
        )

    def _unpack_reply(self, op: str, frames: list[Any]) -> Any:
        """The body of an ``ok`` reply; an ``error`` reply is raised as its exception."""
        codecs = () if self.compression is None else (self.compression,)

        def check(message: protocol.Message) -> None:  # before anything is decompressed
            if message.kind == protocol.REPLY_OK and self.observation_space is not None:
                problem = reply_mismatch(self.observation_space, op, message.body)
                if problem is not None:
                    raise ObservationError(
                        f"expected the reply to {op!r} from {self._where()} to carry "
                        f"observations of {self.observation_space}, got {problem}"
                    )

        try:
            message = protocol.decode(
                frames, self.frame_files, self.max_reply_bytes, codecs=codecs, check=check
            )
        except LimitError as exc:
            raise LimitError(
                f"expected a reply to {op!r} from {self._where()} within max_reply_bytes "
                f"({self.max_reply_bytes}) and the observation space "
                f"{self.observation_space}, got more: {exc}"
            ) from None
        if message.kind == protocol.REPLY_OK:
            body = message.body
            if isinstance(body, dict) and "events" in body:
                self._take_events(op, body.pop("events"))
            return body
        if message.kind == protocol.REPLY_ERROR:
            raise remote_exception(message.body, self.instance)
        raise ProtocolError(
            f"expected an 'ok' or 'error' reply to {op!r}, got {protocol.preview(message.kind)}"
        )

    def _take_events(self, op: str, events: Any) -> None:
        """Keep the scene's events a reply carried: a list of maps, each with its name."""
        if not isinstance(events, list) or not all(
            isinstance(event, dict) and isinstance(event.get("event"), str) for event in events
        ):
            raise ProtocolError(
                f"expected the events of the reply to {op!r} from {self._where()} as a list "
                f"of maps with an 'event' name, got {protocol.preview(events)}"
            )
        for event in events:
            self.events.append({**event, "instance": self.instance})


def remote_exception(body: Any, instance: Any) -> Exception:
    """Rebuild the error a server sent: protocol and action errors keep their btgym type.

    A scene's ``AttributeError`` (no such attribute) comes back as
    :class:`~btgym.errors.RemoteAttributeError`, also an ``AttributeError``: callers that
    probe attributes (``hasattr``, SB3's ``has_attr``) catch that built-in.
    """
    if not isinstance(body, dict):
        return ProtocolError(f"expected an error reply body as a dict, got {body!r:.80}")
    remote_type = str(body.get("type", "Exception"))
    message = str(body.get("message", ""))
    where = body.get("instance", instance)
    own = _SAME_TYPE_ON_BOTH_SIDES.get(remote_type)
    if own is not None:
        return own(f"{message} (reported by instance {where})")
    remote = RemoteAttributeError if remote_type == "AttributeError" else RemoteError
    return remote(remote_type, message, str(body.get("traceback", "")), where)


_SAME_TYPE_ON_BOTH_SIDES: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        ConfigError,
        ProtocolError,
        DecodeError,
        EncodeError,
        LimitError,
        InvalidActionError,
        InvalidActionTypeError,
        ObservationError,
        RenderError,
        SpaceError,
    )
}


__all__ = ["ServerPeer", "remote_exception"]
