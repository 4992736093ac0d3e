"""``BlenderEnv``: one Blender scene as a Gymnasium env."""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np

from btgym import _env_shared
from btgym._connection import connect
from btgym._launch_config import LaunchConfig, resolve_launch
from btgym._launch_info import running_servers
from btgym._moved import moved_attribute
from btgym.errors import ClosedError
from btgym.wire.security import ClientKeys
from btgym.wire.space_codec import restore
from btgym.wire.validation import check_action


class BlenderEnv(gym.Env):
    """A Gymnasium env whose simulation runs in a Blender process.

    Either starts its own Blender instance for ``scene`` (``module:Class`` or
    ``file.py:Class``; extra keyword arguments go to the scene's constructor) or,
    with ``address=`` (or ``launch_info=``, the file ``btgym serve --info`` wrote: its
    first server), connects to a server that is already running.

    ``launch``: a :class:`~btgym._launch_config.LaunchConfig` (backend, timeouts, keys,
    restart limits, logs, ...), the same for every btgym entry point. The keywords
    ``seed``, ``blend_file``, ``blender``, ``timeout``, ``start_timeout`` and ``curve``
    replace its fields when given; ``launch_options`` is a deprecated mapping of its
    fields. ``timeout`` bounds every request (default 30 s); a dead or hung instance
    raises a :class:`btgym.errors.InstanceError` instead of hanging.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        scene: str | None = None,
        render_mode: str | None = None,
        *,
        address: str | None = None,
        launch_info: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        blend_file: str | None = None,
        blender: str | None = None,
        timeout: float | None = None,
        start_timeout: float | None = None,
        curve: ClientKeys | None = None,
        launch: LaunchConfig | None = None,
        launch_options: dict[str, Any] | None = None,
        **scene_kwargs: Any,
    ) -> None:
        _env_shared.check_render_mode(render_mode, self.metadata)
        self.render_mode = render_mode
        # Servers already running (`btgym serve --info` wrote launch_info): the first one.
        servers = running_servers(address=address, launch_info=launch_info)
        self.launch = resolve_launch(
            launch,
            launch_options,
            seed=seed,
            blend_file=blend_file,
            blender=blender,
            timeout=timeout,
            start_timeout=start_timeout,
            curve=curve,
        )
        self.connection = connect(
            scene,
            1,
            addresses=None if servers is None else servers[:1],
            launch=self.launch,
            scene_kwargs=scene_kwargs,
        )
        self._closed = False
        self.client = self.connection.clients[0]
        self.launcher = self.connection.launcher
        self.remote = self.connection.hellos[0]
        self.action_space = self.connection.action_space
        self.observation_space = self.connection.observation_space
        self.metadata = {**type(self).metadata, **self.remote.get("metadata", {})}

    @property
    def scene_name(self) -> str:
        """The scene's name as its server reports it."""
        return str(self.remote.get("name"))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the scene; Gymnasium's Env.reset."""
        super().reset(seed=seed)
        reply = self._request("reset", {"seed": seed, "options": options})
        return restore(self.observation_space, reply["obs"]), reply["info"]

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Check the action here, then step the scene; Gymnasium's Env.step."""
        action = check_action(self.action_space, action)
        reply = self._request("step", {"action": action})
        return (
            restore(self.observation_space, reply["obs"]),
            reply["reward"],
            reply["terminated"],
            reply["truncated"],
            reply["info"],
        )

    # Gymnasium's hint returns its unbound RenderFrame TypeVar, which no concrete type matches.
    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """The scene's frame (None, with a warning, without render_mode); Gymnasium's Env.render."""
        return (
            self._request("render")["frame"] if _env_shared.can_render(self.render_mode) else None
        )

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a public scene method (or read an attribute) inside Blender."""
        return self._request("call", {"name": name, "args": list(args), "kwargs": kwargs})["result"]

    def ping(self) -> dict[str, Any]:
        """The server's ``ping`` reply: a cheap liveness check."""
        return self._request("ping")

    def pop_events(self) -> list[dict[str, Any]]:
        """The events the scene emitted (``Scene.emit``) since the last call, oldest first.

        Each is ``{"event", "data", "instance"}``; they arrive with replies, so an event
        emitted during a step is here once that step returned.
        """
        return _env_shared.pop_events([self.client])

    def close(self) -> None:
        """Stop the scene's server (if this env started it); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.connection.close()
        super().close()

    def _request(self, op: str, body: Any = None) -> Any:
        if self._closed:
            raise ClosedError(f"expected an open env for {op!r}, but it is closed")
        return self.client.request(op, body)

    def __getstate__(self) -> Any:
        raise _env_shared.not_picklable(self)

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


def __getattr__(name: str) -> Any:
    return moved_attribute(__name__, name)  # names that moved, for one release


__all__ = ["BlenderEnv"]
