"""A stable-baselines3 ``VecEnv`` over :class:`btgym.BlenderVectorEnv` (needs ``btgym[sb3]``).

SB3 cannot take a Gymnasium vector env, so this adapter speaks SB3's dialect: ``reset()``
returns observations only, ``step_wait()`` returns a list of info dicts with
``terminal_observation`` and ``TimeLimit.truncated``, episodes are autoreset in the same
step (inside the Blender server, one round trip), and finished episodes carry
``info["episode"] = {"r", "l", "t"}`` for SB3's logger (no ``VecMonitor`` needed).

    envs = btgym.sb3.make_vec_env("btgym/CartPole-v0", n_envs=4, seed=0)
    model = PPO("MlpPolicy", envs).learn(100_000)

The adapter is :class:`SB3VecEnv` (its old name ``BlenderVecEnv``, too close to
:class:`btgym.BlenderVectorEnv`, still works and warns).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvObs, VecEnvStepReturn

import btgym  # noqa: F401  (registers the env ids)
from btgym.errors import NoAsyncCallError
from btgym.vector_env import BlenderVectorEnv

_ADAPTER_ATTRIBUTES = frozenset({"render_mode"})


class SB3VecEnv(VecEnv):
    """stable-baselines3's ``VecEnv`` view of a :class:`BlenderVectorEnv` (``SAME_STEP``)."""

    def __init__(self, envs: BlenderVectorEnv) -> None:
        if envs.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"expected a vector env with AutoresetMode.SAME_STEP, got {envs.autoreset_mode}"
            )
        self.envs = envs
        self.render_mode = envs.render_mode
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(envs.num_envs)
        self._lengths = np.zeros(envs.num_envs, dtype=np.int64)
        self._started = time.time()
        super().__init__(envs.num_envs, envs.single_observation_space, envs.single_action_space)

    def reset(self) -> VecEnvObs:
        seeds = self._seeds if any(s is not None for s in self._seeds) else None
        options = self._options[0] if self._options and self._options[0] else None
        obs, infos = self.envs.reset(seed=seeds, options=options)
        self.reset_infos = _unbatch_infos(infos, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        self._returns[:] = 0
        self._lengths[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise NoAsyncCallError("expected step_async(actions) before step_wait(), got none")
        obs, rewards, terminated, truncated, infos = self.envs.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        self._returns += rewards
        self._lengths += 1
        per_env = _unbatch_infos(infos, self.num_envs)
        for i in np.flatnonzero(dones):
            info = per_env[i]
            info.update(info.pop("final_info", {}) or {})
            info["terminal_observation"] = info.pop("final_obs")
            info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            info["episode"] = {
                "r": float(self._returns[i]),
                "l": int(self._lengths[i]),
                "t": round(time.time() - self._started, 6),
            }
            self._returns[i] = 0.0
            self._lengths[i] = 0
        return obs, rewards.astype(np.float32), dones, per_env

    def close(self) -> None:
        self.envs.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.envs.render()
        return list(frames) if frames is not None else [None] * self.num_envs

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        ids = self._indices(indices)
        if attr_name in _ADAPTER_ATTRIBUTES:
            return [getattr(self, attr_name)] * len(ids)
        return list(self.envs.get_attr(attr_name, env_ids=ids))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        ids = self._indices(indices)
        self.envs.set_attr(attr_name, [value] * len(ids), env_ids=ids)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs) -> list:
        return list(self.envs.call(method_name, *args, env_ids=self._indices(indices), **kwargs))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int | np.integer):
            return [int(indices)]
        return [int(i) for i in indices]


def _unbatch_infos(infos: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Gymnasium's batched infos (``key`` + ``_key`` mask) as SB3's list of dicts."""
    per_env: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}", np.ones(n, dtype=bool))
        rows = _unbatch_infos(value, n) if isinstance(value, dict) else value
        for i in np.flatnonzero(mask):
            per_env[i][key] = rows[i]
    return per_env


def make_vec_env(env_id: str, n_envs: int = 1, seed: int | None = None, **kwargs: Any) -> SB3VecEnv:
    """Start ``n_envs`` Blender instances of a registered btgym env for SB3."""
    spec = gym.spec(env_id)
    scene_kwargs = {**spec.kwargs, **kwargs}
    envs = BlenderVectorEnv(
        num_envs=n_envs, autoreset_mode=AutoresetMode.SAME_STEP, seed=seed, **scene_kwargs
    )
    vec = SB3VecEnv(envs)
    if seed is not None:
        vec.seed(seed)
    return vec


def __getattr__(name: str) -> Any:
    if name == "BlenderVecEnv":
        warnings.warn(
            "btgym.sb3.BlenderVecEnv is renamed SB3VecEnv (it is SB3's VecEnv, not "
            "btgym.BlenderVectorEnv); the old name will be removed",
            DeprecationWarning,
            stacklevel=2,
        )
        return SB3VecEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SB3VecEnv", "make_vec_env"]
