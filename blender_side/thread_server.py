"""A scene served by the real server in a thread of this process: a trainer's test double.

:class:`ThreadServer` runs :class:`~blender_side.server.Server` (the same protocol,
validation and error replies as a Blender instance) on a thread of the calling
process, so trainer-side code (``BlenderEnv(address=...)``, vector envs, streams,
the SB3 adapter) can be tested in milliseconds, without a Blender process::

    with ThreadServer("tests.scenes.echo:EchoScene") as server:
        env = BlenderEnv(address=server.address)

``transport="inproc"`` (default) serves on ``inproc://`` through the process's shared
ZeroMQ context (``zmq.Context.instance()``, which btgym's clients use too); forked
processes (``DataLoader`` workers) have a context of their own and cannot reach it,
so they need ``transport="ipc"``: a socket in a private (0700) temporary directory.
``transport="tcp"`` serves on loopback TCP (``tcp://127.0.0.1:<port>``), as a server
reached by address is.
Frames travel as bytes on the socket: a threaded server keeps its own frame-file
writer and scenes here do not render through Blender.

The scene runs on the server's thread: ``bpy`` is not thread-safe, so a scene that
changes Blender data in ``reset``/``step`` belongs in a real instance. ``build()`` runs
on the calling thread, before serving starts.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from types import TracebackType
from typing import Any

import zmq

from blender_side.loading import build_scene, scene_from
from blender_side.scene import Scene
from blender_side.server import Server
from btgym.errors import ConfigError
from btgym.wire.frame_files import FrameFileWriter

#: Seconds a server thread waits for requests before it looks whether to stop.
_WAKE_INTERVAL = 0.02
#: Seconds :meth:`ThreadServer.close` waits for the thread to finish its request.
_JOIN_TIMEOUT = 30.0


class ThreadServer:
    """Serves ``scene`` (a :class:`Scene` or a spec built with ``scene_kwargs``) on a thread.

    ``transport``: ``"inproc"``, ``"ipc"`` (reachable from forked children) or ``"tcp"``;
    :attr:`address` is what clients connect to. ``seed`` seeds the scene as the
    launcher's ``--seed`` does; ``instance`` is the id the server reports. The server
    stops on :meth:`close` (or a ``close`` request); :attr:`reason` says why it stopped.
    """

    def __init__(
        self,
        scene: Scene | str,
        *,
        transport: str = "inproc",
        seed: int | None = None,
        instance: Any = 0,
        **scene_kwargs: Any,
    ) -> None:
        if transport not in ("inproc", "ipc", "tcp"):
            raise ConfigError(f"expected transport 'inproc', 'ipc' or 'tcp', got {transport!r}")
        scene = scene_from(scene, scene_kwargs)
        self.scene = scene
        if seed is not None:
            scene.seed(seed)
        build_scene(scene)
        self._directory: str | None = None
        if transport == "ipc":
            self._directory = tempfile.mkdtemp(prefix="btgym-thread-server-")  # mode 0700
            bind = f"ipc://{self._directory}/server"
        elif transport == "tcp":
            bind = "tcp://127.0.0.1:0"
        else:
            bind = f"inproc://btgym-{secrets.token_hex(8)}"
        # inproc:// reaches only sockets of the same context: the one btgym's clients use.
        context = zmq.Context.instance() if transport == "inproc" else None
        self.server = Server(
            scene, bind, instance=instance, watchdog_interval=_WAKE_INTERVAL, context=context
        )
        # Its own writer: servers on other threads of this process keep theirs.
        self.server.frame_files = FrameFileWriter()
        self.address = self.server.address
        #: Why serving stopped (``"closed"``), or the exception that ended the thread.
        self.reason: str | BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(
            target=self._serve, name=f"btgym-server-{instance}", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        try:
            self.reason = self.server.serve_forever()
        except BaseException as exc:  # kept for close(), which raises it on the caller's thread
            self.reason = exc

    @property
    def serving(self) -> bool:
        """Whether the server thread still answers requests."""
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for serving to end (``close``); whether it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self) -> None:
        """Stop serving, wait for the thread, close the scene (idempotent).

        Raises what ended the server's thread, if it failed.
        """
        if self._closed:
            return
        self.server.stop()
        self._thread.join(_JOIN_TIMEOUT)
        if self._thread.is_alive():
            raise TimeoutError(
                f"expected the server thread at {self.address} to stop within "
                f"{_JOIN_TIMEOUT} s, it is still serving a request"
            )
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
        self._closed = True
        self.scene.close()
        if isinstance(self.reason, BaseException):
            raise self.reason

    def __enter__(self) -> ThreadServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


__all__ = ["ThreadServer"]
