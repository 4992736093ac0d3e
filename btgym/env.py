"""``BlenderEnv``: one Blender scene as a Gymnasium env."""

from __future__ import annotations

import contextlib
from typing import Any

import gymnasium as gym
import numpy as np

from btgym.client import Client
from btgym.errors import ClosedError
from btgym.launcher import Launcher
from btgym.space_codec import restore, space_from_data
from btgym.validation import check_action


class BlenderEnv(gym.Env):
    """A Gymnasium env whose simulation runs in a Blender process.

    Either starts its own Blender instance for ``scene`` (``module:Class`` or
    ``file.py:Class``; extra keyword arguments go to the scene's constructor) or,
    with ``address=``, connects to a server that is already running.

    ``timeout`` bounds every request (seconds); a dead or hung instance raises a
    :class:`btgym.errors.InstanceError` instead of hanging.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        scene: str | None = None,
        render_mode: str | None = None,
        *,
        address: str | None = None,
        seed: int | None = None,
        blend_file: str | None = None,
        blender: str | None = None,
        timeout: float = 30.0,
        start_timeout: float = 120.0,
        **scene_kwargs: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"expected render_mode in {self.metadata['render_modes']} or None, "
                f"got {render_mode!r}"
            )
        if (scene is None) == (address is None):
            raise ValueError("expected exactly one of scene= (to launch) or address= (to connect)")
        if address is not None and (scene_kwargs or blend_file):
            raise ValueError(
                "scene kwargs and blend_file configure a launched instance; a server at "
                f"{address} is already built, got {sorted(scene_kwargs) or ['blend_file']}"
            )
        self.render_mode = render_mode
        self.launcher: Launcher | None = None
        self.client: Client | None = None
        self._closed = False
        if scene is not None:
            self.launcher = Launcher(
                scene,
                1,
                scene_kwargs=scene_kwargs,
                seed=seed,
                blend_file=blend_file,
                blender=blender,
                start_timeout=start_timeout,
            )
            instance = self.launcher[0]
            address = str(instance.address)
            self.client = Client(
                address, timeout, instance=0, is_alive=instance.is_alive, log_tail=instance.log_tail
            )
        else:
            self.client = Client(str(address), timeout)
        try:
            self.remote = self.client.hello()
        except BaseException:
            self.close()
            raise
        self.action_space = space_from_data(self.remote["action_space"])
        self.observation_space = space_from_data(self.remote["observation_space"])
        self.metadata = {**type(self).metadata, **self.remote.get("metadata", {})}

    @property
    def scene_name(self) -> str:
        return str(self.remote.get("name"))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        reply = self._request("reset", {"seed": seed, "options": options})
        return restore(self.observation_space, reply["obs"]), reply["info"]

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        action = check_action(self.action_space, action)
        reply = self._request("step", {"action": action})
        return (
            restore(self.observation_space, reply["obs"]),
            reply["reward"],
            reply["terminated"],
            reply["truncated"],
            reply["info"],
        )

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        return self._request("render")["frame"]

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a public scene method (or read an attribute) inside Blender."""
        return self._request("call", {"name": name, "args": list(args), "kwargs": kwargs})["result"]

    def ping(self) -> dict[str, Any]:
        return self._request("ping")

    def close(self) -> None:
        """Stop the scene's server (if this env started it); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.client is not None and self.launcher is not None:
                # Best effort: if the instance does not answer, the launcher terminates it.
                with contextlib.suppress(Exception):
                    self.client.request("close", timeout=2.0)
        finally:
            if self.client is not None:
                self.client.close()
            if self.launcher is not None:
                self.launcher.close()
        super().close()

    def _request(self, op: str, body: Any = None) -> Any:
        if self._closed or self.client is None:
            raise ClosedError(f"expected an open env for {op!r}, but it is closed")
        return self.client.request(op, body)

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


__all__ = ["BlenderEnv"]
