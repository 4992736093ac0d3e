"""The REP server that runs a :class:`~blender_side.scene.Scene` inside Blender.

It answers every request, malformed ones with an ``error`` reply, and keeps serving
until a ``close`` request or until the process that started it goes away.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Callable
from typing import Any

import zmq

from blender_side.scene import Scene, no_such_attribute
from btgym.errors import (
    BtgymError,
    ConfigError,
    InvalidActionError,
    LimitError,
    ObservationError,
    ProtocolError,
)
from btgym.wire import compression, protocol
from btgym.wire._gate import DEFAULT_MAX_CONNECTIONS, ConnectionGate
from btgym.wire._reply_checks import observation_mismatch
from btgym.wire.frame_files import MAX_FRAMES_HELD, WRITER
from btgym.wire.security import ZAP_DOMAIN, secure_server
from btgym.wire.space_codec import space_to_data
from btgym.wire.validation import check_action

#: Largest ``frame_files`` a client may ask for: requests in flight plus one spare.
_MOST_KEPT = protocol.MAX_IN_FLIGHT + 1
#: ``BTGYM_CHECK_OBSERVATIONS=1``: check every observation against the scene's space.
CHECK_OBSERVATIONS_VARIABLE = "BTGYM_CHECK_OBSERVATIONS"


class Server:
    """Serves one scene on one REP socket.

    ``bind`` is a ZeroMQ address; port ``0`` (or ``*``) lets the OS pick a free port,
    readable afterwards from :attr:`address`. ``parent_pid``: stop serving when that
    process is gone (checked every ``watchdog_interval`` seconds).
    ``max_message_bytes`` bounds a whole request (all its frames); ZeroMQ also drops a
    peer sending one frame larger than that. ``check_observations`` (default: the
    ``BTGYM_CHECK_OBSERVATIONS`` environment variable) checks every observation
    against the observation space, naming the scene and the space when one is outside.
    ``blender_info`` (Blender's version and graphics backend) travels in ``hello``.
    ``max_connections``: most peers served at once; the handshake of any beyond is
    refused (:class:`~btgym.wire._gate.ConnectionGate`). ``max_server_bytes``: most bytes
    ZeroMQ may hold for all peers together; the frame bound (``max_message_bytes``, as
    ``hello`` says it) is cut to fit it (:func:`~btgym.wire.protocol.frame_bound`).
    Without ``context`` the server makes its own.
    """

    def __init__(
        self,
        scene: Scene,
        bind: str = "tcp://127.0.0.1:0",
        instance: Any = 0,
        parent_pid: int | None = None,
        max_message_bytes: int = protocol.DEFAULT_MAX_MESSAGE_BYTES,
        watchdog_interval: float = 0.25,
        context: zmq.Context | None = None,
        curve_secret: str | None = None,
        curve_clients: str | None = None,
        check_observations: bool | None = None,
        blender_info: dict[str, Any] | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_server_bytes: int = protocol.DEFAULT_MAX_SERVER_BYTES,
    ) -> None:
        if type(max_connections) is not int or max_connections < 1:
            raise ConfigError(f"expected max_connections as an int >= 1, got {max_connections!r}")
        if type(max_server_bytes) is not int or max_server_bytes < 1:
            raise ConfigError(f"expected max_server_bytes as an int >= 1, got {max_server_bytes!r}")
        self.scene = scene
        self.blender_info = blender_info  # Blender's version and graphics backend, for hello
        if check_observations is None:
            check_observations = os.environ.get(CHECK_OBSERVATIONS_VARIABLE, "0") == "1"
        self.check_observations = check_observations
        self.instance = instance
        self.parent_pid = parent_pid
        self.max_server_bytes = max_server_bytes
        # Whole requests and each frame: cut so that what is queued fits max_server_bytes.
        self.max_message_bytes = protocol.frame_bound(
            max_message_bytes, max_server_bytes, max_connections
        )
        self.watchdog_interval = watchdog_interval
        # Its own context by default: the connection gate is the context's one ZAP handler.
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.socket = self.context.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 1000)
        self.socket.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        # Bounded queues: a client that never reads cannot pile replies (and the frames
        # they map) up here, and one that floods gets its requests held in its own buffers.
        self.socket.setsockopt(zmq.RCVHWM, protocol.MAX_QUEUED_REQUESTS)
        self.socket.setsockopt(zmq.SNDHWM, protocol.MAX_IN_FLIGHT)
        self.socket.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
        # Off loopback, CURVE is required: only listed client keys get in, traffic encrypted.
        allowed_keys = secure_server(self.socket, bind, curve_secret, curve_clients)
        # At most max_connections peers: the bytes queued per server stay bounded. An
        # inproc:// server (a thread of this process, in a context it shares) has no
        # other process at its door and leaves the context's one ZAP handler alone.
        self.gate = (
            None
            if bind.startswith("inproc://")
            else ConnectionGate(self.context, self.socket, max_connections, allowed_keys)
        )
        try:
            self.socket.bind(_with_port_wildcard(bind))
        except BaseException:
            self.socket.close(linger=0)
            if self.gate is not None:
                self.gate.stop()
            raise
        self.address: str = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.requests_served = 0
        self.frame_files = WRITER
        self._probe_path: str | None = None
        self._running = False
        self._handlers: dict[str, Callable[[Any], Any]] = {
            "hello": self._hello,
            "reset": self._reset,
            "step": self._step,
            "steps": self._steps,
            "render": self._render,
            "call": self._call,
            "ping": self._ping,
            "close": self._close,
        }

    # -- loop ------------------------------------------------------------------------
    def serve_forever(self) -> str:
        """Serve until ``close`` or the parent's death; return why it stopped."""
        self._running = True
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        reason = "closed"
        try:
            while self._running:
                if not poller.poll(self.watchdog_interval * 1000):
                    if not self._parent_alive():
                        reason = "parent process gone"
                        break
                    continue
                self._serve_one()
        finally:
            self._shutdown()
        return reason

    def serve_in_ui(
        self,
        on_stop: Callable[[str], None],
        interval: float = 0.01,
        burst: float = 0.1,
        linger: float = 0.005,
    ) -> None:
        """Serve from Blender's event loop (``bpy.app.timers``), so that its window redraws.

        For Blender's UI mode: every ``interval`` seconds a timer answers the waiting
        requests, asks the window to redraw, checks the parent, and returns; Blender
        draws in between. Each change of the scene makes Blender redraw the window before
        the timer can run again, so a timer that answered one request each would make
        every step wait for a redraw (in software OpenGL, more than the step itself).
        So after each reply it waits up to ``linger`` seconds for the client's next
        request and serves that too, for at most ``burst`` seconds: a client stepping
        without pause gets background-mode steps, and the window shows the scene at
        least once per ``burst`` plus a redraw (``burst=0``: one request per tick).
        ``on_stop(reason)`` runs once serving ends (``close``, the parent's death, or
        :meth:`stop`).
        """
        import bpy

        self._running = True
        next_check = time.monotonic() + self.watchdog_interval
        linger_ms = max(0, round(linger * 1000)) if burst > 0 else 0

        def tick() -> float | None:
            nonlocal next_check
            handled, wait_ms = 0, 0
            until = time.monotonic() + burst
            while self._running and self.socket.poll(wait_ms):
                self._serve_one()
                handled += 1
                if time.monotonic() >= until:
                    break
                wait_ms = linger_ms
            if handled:
                _tag_redraw(bpy)
            reason = "closed" if not self._running else ""
            if not reason and time.monotonic() >= next_check:
                next_check = time.monotonic() + self.watchdog_interval
                if not self._parent_alive():
                    reason = "parent process gone"
            if not reason:
                return interval
            self._running = False
            self._shutdown()
            on_stop(reason)
            return None

        bpy.app.timers.register(tick, first_interval=0.0, persistent=True)

    def stop(self) -> None:
        """Ask the loop to end after the request it is serving (signal handlers use this)."""
        self._running = False

    def _serve_one(self) -> None:
        frames = self.socket.recv_multipart(copy=False)
        self.socket.send_multipart(self.handle(frames), copy=False)
        self.requests_served += 1
        self.frame_files.prepare_spares()  # while the client reads the reply

    def _shutdown(self) -> None:
        self.socket.close()
        if self.gate is not None:
            self.gate.stop()
        if self._own_context:
            self.context.term()  # waits out the socket's linger for the last reply
        self.frame_files.close()
        self._remove_probe()

    def handle(self, frames: list[Any]) -> list[Any]:
        """Answer one request's frames with reply frames; never raises."""
        self._remove_probe()  # a hello's client reads it before its next request
        try:
            size = sum(len(frame) for frame in frames)
            if size > self.max_message_bytes:
                raise LimitError(
                    f"expected a request of at most {self.max_message_bytes} bytes "
                    f"(max_message_bytes), got {size} bytes in {len(frames)} frames"
                )
            # Compressed arrays declare raw sizes: bounded like a request's, and actions'
            # shapes checked against the action space, before anything is decompressed.
            message = protocol.decode(
                frames,
                max_bytes=self.max_message_bytes,
                codecs=compression.available(),
                check=self._check_action_shapes,
            )
            handler = self._handlers.get(message.kind)
            if handler is None:
                raise ProtocolError(
                    f"expected an operation in {list(self._handlers)}, "
                    f"got {protocol.preview(message.kind)}"
                )
            body = message.body if message.body is not None else {}
            if not isinstance(body, dict):
                raise ProtocolError(
                    f"expected the {protocol.preview(message.kind)} request body as a map, "
                    f"got {type(body).__name__}"
                )
            # A client on this host that can map our frame files says (in the header) how
            # many requests it keeps in flight; older names are removed (it mapped them).
            keep = _frames_kept(message.options, body, message.kind)
            self.frame_files.begin_request(self.requests_served + 1, keep)
            body = handler(body)
            events = self.scene.take_events()  # emitted since the last reply: ride along
            if events and isinstance(body, dict):
                body["events"] = [_encodable_event(event) for event in events]
            locate = self.frame_files.locate if keep is not None else None
            codec = message.options.get("compression")  # the client's, agreed at hello
            if codec is not None:
                compression.check_codec(codec)
            return protocol.encode(protocol.REPLY_OK, body, locate, compress=codec)
        except Exception as exc:  # every failure becomes an error reply; the server lives on
            return self._error_reply(exc)

    def _error_reply(self, exc: BaseException) -> list[Any]:
        """An ``error`` reply for ``exc``, bounded, and built even when ``exc`` misbehaves."""
        try:
            text = "" if isinstance(exc, ProtocolError) else traceback.format_exc()
        except Exception:  # noqa: BLE001 - a broken __str__ inside the traceback
            text = f"<traceback unavailable: {type(exc).__name__} could not be formatted>"
        try:
            return protocol.encode(
                protocol.REPLY_ERROR, protocol.error_body(exc, text, self.instance)
            )
        except BtgymError:  # a message that cannot be encoded: send a plain description
            fallback = RuntimeError(f"{type(exc).__name__} (its message could not be encoded)")
            return protocol.encode(
                protocol.REPLY_ERROR, protocol.error_body(fallback, text, self.instance)
            )

    def _check_action_shapes(self, message: protocol.Message) -> None:
        """Compressed actions of ``step``/``steps`` must have the action space's shapes.

        Runs before they are decompressed (cheap: shapes only). Only requests that name a
        codec can hold compressed arrays; the others go straight to ``check_action``.
        """
        body = message.body
        if "compression" not in message.options or message.kind not in ("step", "steps"):
            return
        if not isinstance(body, dict):
            return
        actions = body.get("actions") if message.kind == "steps" else [body.get("action")]
        if not isinstance(actions, list):
            return  # the handler says what is wrong
        for action in actions:
            problem = observation_mismatch(self.scene.action_space, action)
            if problem is not None:
                raise InvalidActionError(
                    f"expected actions of {self.scene.action_space}, got {problem}"
                )

    def _remove_probe(self) -> None:
        if self._probe_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._probe_path)
            self._probe_path = None

    def _parent_alive(self) -> bool:
        if self.parent_pid is None:
            return True
        if os.getppid() != self.parent_pid:
            return False
        try:
            os.kill(self.parent_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else
            return True
        return True

    # -- operations ------------------------------------------------------------------
    def _hello(self, body: dict[str, Any]) -> dict[str, Any]:
        probe = self.frame_files.make_probe()  # lets a client on this host prove it
        if probe is not None:
            self._probe_path = os.path.join(probe["directory"], probe["probe"])
        return {
            "protocol": protocol.PROTOCOL_VERSION,
            "instance": self.instance,
            "pid": os.getpid(),
            "max_message_bytes": self.max_message_bytes,
            "max_server_bytes": self.max_server_bytes,
            "frame_files": probe,
            # The codec of the client's offer this server has too (None: no compression).
            "compression": compression.choose(body.get("compression")),
            **({"blender": self.blender_info} if self.blender_info else {}),
            "action_space": space_to_data(self.scene.action_space),
            "observation_space": space_to_data(self.scene.observation_space),
            **self.scene.describe(),
        }

    def _reset(self, body: dict[str, Any]) -> dict[str, Any]:
        seed = body.get("seed")
        if seed is not None and not (isinstance(seed, int) and seed >= 0):
            raise ConfigError(f"expected seed as a non-negative int or None, got {seed!r}")
        options = body.get("options")
        if options is not None and not isinstance(options, dict):
            raise ConfigError(f"expected options as a dict or None, got {type(options).__name__}")
        observation, info = self.scene.run_reset(seed=seed, options=options)
        return {"obs": self._checked(observation, "reset"), "info": info or {}}

    def _step(self, body: dict[str, Any]) -> dict[str, Any]:
        if "action" not in body:
            raise ConfigError("expected a step request with an 'action', got none")
        action = check_action(self.scene.action_space, body["action"])
        # run_step counts the step and applies the scene's max_episode_steps, once.
        observation, reward, terminated, truncated, info = self.scene.run_step(action)
        reply = {
            "obs": self._checked(observation, "step"),
            "reward": float(reward),
            "terminated": bool(terminated),
            "truncated": bool(truncated),
            "info": info or {},
        }
        if body.get("autoreset") and (terminated or truncated):
            # Same-step autoreset in one round trip: the next episode starts right away.
            reply["final_obs"], reply["final_info"] = reply["obs"], reply["info"]
            if body["autoreset"] == "unseeded":
                # Gymnasium's autoreset (vector envs): a plain reset(), the generator goes on.
                observation, info = self.scene.run_reset(seed=None, options=None)
            else:
                # Streams: an explicit seed drawn from the scene's generator keeps the chain
                # deterministic and travels, so the episode can be replayed.
                seed = int(self.scene.np_random.integers(2**31))
                observation, info = self.scene.run_autoreset(seed)
                reply["reset_seed"] = seed
            reply["obs"], reply["info"] = self._checked(observation, "autoreset"), info or {}
        return reply

    def _steps(self, body: dict[str, Any]) -> dict[str, Any]:
        """Several steps in one round trip (streams): one reply per action, in order.

        Per-message costs (wake-ups, header coding, socket calls) are paid once for all
        of them; each step is exactly a ``step`` request's, autoreset included.
        """
        actions, most = body.get("actions"), protocol.MAX_STEPS_PER_REQUEST
        if not isinstance(actions, list) or not 1 <= len(actions) <= most:
            count = len(actions) if isinstance(actions, list) else 0
            raise ConfigError(
                f"expected 'actions' as a list of 1 to {most} actions, "
                f"got {type(actions).__name__} of {count}"
            )
        autoreset = body.get("autoreset")  # False, True (seeded) or "unseeded", as for step
        return {"steps": [self._step({"action": a, "autoreset": autoreset}) for a in actions]}

    def _render(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"frame": self.scene.render()}

    def _call(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        args, kwargs = body.get("args") or [], body.get("kwargs") or {}
        if not isinstance(name, str) or not name or name.startswith("_"):
            raise AttributeError(
                f"expected a public scene method or attribute, got {protocol.preview(name)}"
            )
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ConfigError("expected call args as a list and kwargs as a dict")
        if not hasattr(self.scene, name):
            raise AttributeError(no_such_attribute(self.scene, name))
        target = getattr(self.scene, name)
        if callable(target):
            result = target(*args, **kwargs)
        elif args or kwargs:
            raise TypeError(f"scene attribute {name!r} is not callable; call it without args")
        else:
            result = target
        return {"result": result}

    def _ping(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "time": time.time(),
            "served": self.requests_served,
            "frames_held": self.frame_files.held,
        }

    def _close(self, body: dict[str, Any]) -> dict[str, Any]:
        self._running = False
        return {"instance": self.instance}

    def _checked(self, observation: Any, where: str) -> Any:
        """``observation``, after checking it against the space in debug mode."""
        if self.check_observations and not self.scene.observation_space.contains(observation):
            raise ObservationError(
                f"expected {type(self.scene).__name__}.{where} to return an observation in "
                f"{self.scene.observation_space}, got {_describe(observation)}"
            )
        return observation


def _tag_redraw(bpy: Any) -> None:
    """Ask every area of every Blender window to redraw (UI mode)."""
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            area.tag_redraw()


def _frames_kept(options: dict[str, Any], body: dict[str, Any], kind: str) -> int | None:
    """How many requests' frame files the client keeps (None: it takes bytes); bounded."""
    keep = options.get("frame_files")
    if keep is None:
        return None
    if not isinstance(keep, int) or isinstance(keep, bool) or not 1 <= keep <= _MOST_KEPT:
        raise LimitError(
            f"expected frame_files as an int from 1 to {_MOST_KEPT} (requests kept in flight "
            f"+ 1), got {protocol.preview(keep)}"
        )
    actions = body.get("actions") if kind == "steps" else None
    frames = keep * (len(actions) if isinstance(actions, list) else 1)
    if frames > MAX_FRAMES_HELD:
        raise LimitError(
            f"expected at most {MAX_FRAMES_HELD} frame files kept for a client (frame_files x "
            f"steps per request), got {keep} x {frames // keep} = {frames}"
        )
    return keep


#: The event that stands in for one that cannot travel (its name and why, instead).
UNENCODABLE_EVENT = "btgym.unencodable_event"


def _encodable_event(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` if it can travel; else an event naming it and why (the reply still goes).

    A scene's bad event must cost neither its step nor the steps after it.
    """
    try:
        protocol.encode(protocol.REPLY_OK, event)
    except BtgymError as exc:
        return {
            "event": UNENCODABLE_EVENT,
            "data": {
                "event": str(event.get("event"))[:200],
                "error": str(exc)[: protocol.MAX_ERROR_MESSAGE_CHARS],
            },
        }
    return event


def _describe(value: Any) -> str:
    """A short description of a value for error messages (arrays by dtype, shape, range)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        if value.size and value.dtype.kind in "biuf":
            return f"array {value.dtype} {value.shape} in [{value.min()}, {value.max()}]"
        return f"array {value.dtype} {value.shape}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in list(value.items())[:8]) + "}"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _with_port_wildcard(address: str) -> str:
    """ZeroMQ spells 'any free port' as ``*``; accept ``:0`` too."""
    return address[:-2] + ":*" if address.endswith(":0") else address


__all__ = ["Server"]
