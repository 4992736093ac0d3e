"""Run a scene in this process, for tests and debuggers: no server, no socket.

``bpy`` is an ordinary Python module, so a :class:`~blender_side.scene.Scene` can be
stepped right here as a ``gymnasium.Env``: breakpoints in ``reset``/``step`` work,
and a scene's logic can be tested in milliseconds instead of through a Blender
process. :func:`check_scene` is what a scene author (and btgym's own tests) runs:
Gymnasium's ``check_env`` plus the promises btgym makes on top.

    from blender_side.testing import SceneEnv, check_scene
    check_scene(SceneEnv("envs.cube:CubeScene", width=64, height=48))

One process holds one Blender scene: building a second scene replaces the first, so
keep one ``SceneEnv`` open at a time.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

from blender_side.label_check import check_labels
from blender_side.loading import build_scene, open_blend_file, scene_from
from blender_side.scene import Scene
from btgym.errors import ConfigError
from btgym.wire import protocol
from btgym.wire.validation import check_action


class SceneEnv(gym.Env):
    """A :class:`Scene` as a ``gymnasium.Env`` in the current process.

    ``scene``: a scene object, or a spec (``module:Class``, ``file.py:Class``) built with
    ``scene_kwargs``; ``blend_file`` is opened first, as the server does.
    """

    def __init__(
        self,
        scene: Scene | str,
        render_mode: str | None = None,
        *,
        blend_file: str | None = None,
        **scene_kwargs: Any,
    ) -> None:
        if blend_file is not None:
            open_blend_file(blend_file)
        scene = scene_from(scene, scene_kwargs)
        self.scene = scene
        self.metadata = dict(scene.metadata)
        if render_mode is not None and render_mode not in self.metadata.get("render_modes", []):
            raise ConfigError(
                f"expected render_mode in {self.metadata.get('render_modes')} or None, "
                f"got {render_mode!r}"
            )
        self.render_mode = render_mode
        build_scene(scene)
        self.action_space = scene.action_space
        self.observation_space = scene.observation_space

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the scene in this process; Gymnasium's Env.reset."""
        super().reset(seed=seed)
        observation, info = self.scene.run_reset(seed=seed, options=options)
        return observation, info or {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Check the action and step the scene, as the server does; Gymnasium's Env.step."""
        action = check_action(self.action_space, action)  # what the server does, too
        # As the server: counted, truncated at the scene's max_episode_steps.
        observation, reward, terminated, truncated, info = self.scene.run_step(action)
        return observation, float(reward), bool(terminated), bool(truncated), info or {}

    # Gymnasium's hint returns its unbound RenderFrame TypeVar, which no concrete type matches.
    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """The scene's frame, or None without a render_mode; Gymnasium's Env.render."""
        return None if self.render_mode is None else self.scene.render()

    def close(self) -> None:
        """Close the scene; Gymnasium's Env.close."""
        self.scene.close()
        super().close()


def check_scene(env: SceneEnv, seeds: tuple[int, ...] = (0, 1), steps: int = 5) -> None:
    """Raise ``AssertionError`` naming the first broken promise of a scene.

    Checks: Gymnasium's ``check_env``; every observation in the observation space;
    ``reset(seed=s)`` followed by the same actions gives the same observations,
    rewards, flags and infos, whatever ran before; infos are dicts with string keys
    whose values travel over btgym's wire (no pickle fallback exists); the labels of
    every :class:`~blender_side.annotations.Annotator` the scene holds describe the frame
    it returned (:func:`~blender_side.label_check.check_labels`: the frame rendered again
    is the same, masks never cover the world, boxes are the masks' extents and lie in the
    projected geometry's, depth where the mask is).
    """
    check_env(env, skip_render_check=env.render_mode is None)
    name = type(env.scene).__name__
    for n, seed in enumerate(seeds):
        env.action_space.seed(seed)
        actions = [env.action_space.sample() for _ in range(steps)]
        first = _rollout(env, seed, actions, name, labels=n == 0)
        _rollout(env, seed + 1000, actions, name)  # something else in between
        second = _rollout(env, seed, actions, name)
        for t, (a, b) in enumerate(zip(first, second, strict=True)):
            if not _same(a, b):
                raise AssertionError(
                    f"expected {name} to repeat itself after reset(seed={seed}), "
                    f"but step {t} differs"
                )


def _rollout(
    env: SceneEnv, seed: int, actions: list[Any], name: str, labels: bool = False
) -> list[Any]:
    observation, info = env.reset(seed=seed)
    records: list[tuple[Any, ...]] = [(_copy(observation), _checked_info(info, name, "reset"))]
    _check_observation(env, observation, name, "reset")
    if labels:
        check_labels(env.scene, info, name, "reset")
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        _check_observation(env, observation, name, "step")
        if labels:
            check_labels(env.scene, info, name, "step")
        records.append(
            (_copy(observation), reward, terminated, truncated, _checked_info(info, name, "step"))
        )
        if terminated or truncated:
            break
    return records


def _check_observation(env: SceneEnv, observation: Any, name: str, where: str) -> None:
    if not env.observation_space.contains(observation):
        raise AssertionError(
            f"expected {name}.{where} to return an observation in {env.observation_space}, "
            f"got {type(observation).__name__}"
            + (f" {observation.dtype} {observation.shape}" if hasattr(observation, "shape") else "")
        )


def _checked_info(info: Any, name: str, where: str) -> Any:
    if not isinstance(info, dict) or not all(isinstance(k, str) for k in info):
        raise AssertionError(f"expected {name}.{where} to return an info dict with str keys")
    try:
        protocol.encode(protocol.REPLY_OK, info)
    except Exception as exc:
        raise AssertionError(
            f"expected {name}.{where}'s info to travel over the wire: {exc}"
        ) from exc
    return _copy(info)


def _copy(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_copy(v) for v in value)
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return a == b


__all__ = ["SceneEnv", "check_scene"]
