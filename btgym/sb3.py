"""A stable-baselines3 ``VecEnv`` over :class:`btgym.BlenderVectorEnv` (needs ``btgym[sb3]``).

SB3 cannot take a Gymnasium vector env, so this adapter speaks SB3's dialect: ``reset()``
returns observations only, ``step_wait()`` returns a list of info dicts with
``terminal_observation`` and ``TimeLimit.truncated``, episodes are autoreset in the same
step (inside the Blender server, one round trip), and finished episodes carry
``info["episode"] = {"r", "l", "t"}`` as SB3's ``Monitor`` writes it: the adapter is its
own Monitor (``env_is_wrapped(Monitor)`` is True; no ``VecMonitor`` needed).

    envs = btgym.sb3.make_vec_env("btgym/CartPole-v0", n_envs=4, seed=0)
    model = PPO("MlpPolicy", envs).learn(100_000)

:func:`make_vec_env` takes SB3's ``make_vec_env`` arguments. SB3's own ``make_vec_env``
(``DummyVecEnv``, ``SubprocVecEnv``) works too; its worker processes need the
``"btgym:btgym/CartPole-v0"`` form of the id, which imports btgym (and so registers the
ids) where the env is made.

The adapter is :class:`SB3VecEnv` (its old name ``BlenderVecEnv``, too close to
:class:`btgym.BlenderVectorEnv`, still works and warns).
"""

from __future__ import annotations

import importlib
import os
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.monitor import Monitor, ResultsWriter
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvObs, VecEnvStepReturn

import btgym  # noqa: F401  (registers the env ids)
from btgym._env_shared import not_picklable
from btgym.errors import ConfigError, NoAsyncCallError
from btgym.vector_env import BlenderVectorEnv

_ADAPTER_ATTRIBUTES = frozenset({"render_mode"})


class SB3VecEnv(VecEnv):
    """stable-baselines3's ``VecEnv`` view of a :class:`BlenderVectorEnv` (``SAME_STEP``).

    ``monitor_files``: one path per env for a Monitor CSV file (SB3's ``monitor_dir``);
    ``info_keywords``: info keys copied into each episode's statistics, as SB3's
    ``Monitor(info_keywords=...)``.
    """

    def __init__(
        self,
        envs: BlenderVectorEnv,
        monitor_files: Sequence[str] | None = None,
        info_keywords: tuple[str, ...] = (),
        override_existing: bool = True,
    ) -> None:
        if envs.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ConfigError(
                f"expected a vector env with AutoresetMode.SAME_STEP, got {envs.autoreset_mode}"
            )
        self.envs = envs
        self.render_mode = envs.render_mode
        self._actions: Any = None
        self._returns = np.zeros(envs.num_envs)
        self._lengths = np.zeros(envs.num_envs, dtype=np.int64)
        self._started = time.time()
        self.info_keywords = tuple(info_keywords)
        self._writers = _writers(envs, monitor_files, self.info_keywords, override_existing)
        super().__init__(envs.num_envs, envs.single_observation_space, envs.single_action_space)
        self.metadata = dict(envs.metadata)  # render_fps for VecVideoRecorder

    def reset(self) -> VecEnvObs:
        """Reset every env with its seed (from :meth:`seed`) and its options (``set_options``)."""
        options = [opts or None for opts in self._options]  # SB3: an empty dict is no options
        obs, infos = self.envs.reset_each(list(self._seeds), options)
        self.reset_infos = _unbatch_infos(infos, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        self._returns[:] = 0
        self._lengths[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Keep the actions for :meth:`step_wait`; SB3's VecEnv.step_async."""
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """Step every env, with Monitor's statistics at episode ends; SB3's VecEnv.step_wait."""
        if self._actions is None:
            raise NoAsyncCallError("expected step_async(actions) before step_wait(), got none")
        # Like DummyVecEnv and SubprocVecEnv, which read one row per env: extra rows are unused.
        actions = _first_rows(self._actions, self.num_envs)
        self._actions = None
        obs, rewards, terminated, truncated, infos = self.envs.step(actions)
        dones = terminated | truncated
        self._returns += rewards
        self._lengths += 1
        per_env = _unbatch_infos(infos, self.num_envs)
        for i in np.flatnonzero(dones):
            info = per_env[i]
            info.update(info.pop("final_info", {}) or {})
            info["terminal_observation"] = info.pop("final_obs")
            info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            info["episode"] = self._episode(i, info)
        return obs, rewards.astype(np.float32), dones, per_env

    def _episode(self, i: int, info: dict[str, Any]) -> dict[str, Any]:
        """Env ``i``'s episode statistics as ``Monitor`` makes them (and writes them)."""
        episode = {
            "r": round(float(self._returns[i]), 6),
            "l": int(self._lengths[i]),
            "t": round(time.time() - self._started, 6),
        }
        for key in self.info_keywords:
            episode[key] = info[key]
        if self._writers:
            self._writers[i].write_row(episode)
        self._returns[i] = 0.0
        self._lengths[i] = 0
        return episode

    def close(self) -> None:
        """Close the Monitor files and the vector env; SB3's VecEnv.close."""
        for writer in self._writers:
            writer.close()
        self.envs.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        """One frame per env (None without a render_mode); SB3's VecEnv.get_images."""
        frames = self.envs.render()
        return list(frames) if frames is not None else [None] * self.num_envs

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """Scene attributes; a missing one raises ``AttributeError`` (SB3's ``has_attr``)."""
        ids = self._indices(indices)
        if attr_name in _ADAPTER_ATTRIBUTES:
            return [getattr(self, attr_name)] * len(ids)
        return list(self.envs.get_attr(attr_name, env_ids=ids))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Set a scene attribute on the indexed envs; SB3's VecEnv.set_attr."""
        ids = self._indices(indices)
        self.envs.set_attr(attr_name, [value] * len(ids), env_ids=ids)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs) -> list:
        """Call a scene method on the indexed envs; SB3's VecEnv.env_method.

        Gymnasium's ``Env`` wrapper API (``get_wrapper_attr``, ``has_wrapper_attr``,
        ``set_wrapper_attr``) is answered here, on the trainer side, as an ``Env`` per
        index answers it: over the attributes :meth:`get_attr` and :meth:`set_attr` reach.
        """
        ids = self._indices(indices)
        wrapper_api = _WRAPPER_API.get(method_name)
        if wrapper_api is not None:
            return [wrapper_api(self, i, *args, **kwargs) for i in ids]
        return list(self.envs.call(method_name, *args, env_ids=ids, **kwargs))

    def _get_wrapper_attr(self, index: int, name: str) -> Any:
        """Gymnasium's ``Env.get_wrapper_attr`` for env ``index``: its attribute ``name``."""
        return self.get_attr(name, [index])[0]

    def _has_wrapper_attr(self, index: int, name: str) -> bool:
        """Gymnasium's ``Env.has_wrapper_attr`` for env ``index``."""
        try:
            self.get_attr(name, [index])
        except AttributeError:
            return False
        return True

    def _set_wrapper_attr(self, index: int, name: str, value: Any, *, force: bool = True) -> bool:
        """Gymnasium's ``Env.set_wrapper_attr`` for env ``index``: set ``name`` if the env has
        it or ``force``; whether it was set.
        """
        if not force and not self._has_wrapper_attr(index, name):
            return False
        self.set_attr(name, value, [index])
        return True

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        """True for ``Monitor`` (and its bases): the adapter records what a Monitor records.

        So SB3's ``evaluate_policy`` uses ``info["episode"]`` and does not warn.
        """
        wrapped = isinstance(wrapper_class, type) and issubclass(Monitor, wrapper_class)
        return [wrapped] * len(self._indices(indices))

    def _indices(self, indices: Any) -> list[int]:
        """SB3's indices (None, an int or ints) as env ids; negative ones count from the end."""
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int | np.integer):
            indices = [indices]
        ids = []
        for index in indices:
            i = int(index)
            if not -self.num_envs <= i < self.num_envs:
                raise IndexError(
                    f"expected env indices in [-{self.num_envs}, {self.num_envs}), got {i}"
                )
            ids.append(i % self.num_envs)
        return ids

    def __getstate__(self) -> Any:
        raise not_picklable(self)


#: Gymnasium's ``Env`` wrapper API, answered by the adapter (``env_method``), by name.
_WRAPPER_API: dict[str, Callable[..., Any]] = {
    "get_wrapper_attr": SB3VecEnv._get_wrapper_attr,
    "has_wrapper_attr": SB3VecEnv._has_wrapper_attr,
    "set_wrapper_attr": SB3VecEnv._set_wrapper_attr,
}


def _first_rows(actions: Any, n: int) -> Any:
    """The first ``n`` rows of a batch of actions (dicts and tuples of batches too)."""
    if isinstance(actions, dict):
        return {key: _first_rows(value, n) for key, value in actions.items()}
    if isinstance(actions, tuple):
        return tuple(_first_rows(value, n) for value in actions)
    if isinstance(actions, np.ndarray | list) and np.ndim(actions) > 0 and len(actions) > n:
        return actions[:n]
    return actions


def _writers(
    envs: BlenderVectorEnv,
    files: Sequence[str] | None,
    info_keywords: tuple[str, ...],
    override_existing: bool,
) -> list[ResultsWriter]:
    """One Monitor CSV writer per env (SB3's ``monitor_dir``), or none."""
    if files is None:
        return []
    if len(files) != envs.num_envs:
        raise ConfigError(f"expected {envs.num_envs} monitor files, got {len(files)}")
    env_id = envs.spec.id if envs.spec is not None else None
    header: dict[str, float | str] = {"t_start": time.time(), "env_id": str(env_id)}
    return [
        ResultsWriter(
            path, header=header, extra_keys=info_keywords, override_existing=override_existing
        )
        for path in files
    ]


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


def make_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    start_index: int = 0,
    monitor_dir: str | None = None,
    wrapper_class: Any = None,
    env_kwargs: dict[str, Any] | None = None,
    vec_env_cls: Any = None,
    vec_env_kwargs: dict[str, Any] | None = None,
    monitor_kwargs: dict[str, Any] | None = None,
    wrapper_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> SB3VecEnv:
    """Start ``n_envs`` Blender instances of a registered btgym env for SB3.

    SB3's ``make_vec_env`` signature, with SB3's meanings: ``env_kwargs`` are what
    ``gymnasium.make(env_id, **env_kwargs)`` takes (:class:`btgym.BlenderEnv`'s options
    and the scene's arguments), ``render_mode`` defaults to ``"rgb_array"``, ``seed``
    seeds the first reset (env ``i`` gets ``seed + i``) and the launch, and
    ``monitor_dir`` gets one Monitor CSV per env (named ``start_index + i``, as SB3's).
    ``wrapper_class``, ``vec_env_cls`` and ``vec_env_kwargs`` have no meaning for N
    Blender instances behind one adapter: use SB3's own ``make_vec_env`` with
    ``"btgym:btgym/..."`` for those. Extra keyword arguments are also env kwargs.
    """
    _refuse_sb3_only(wrapper_class, wrapper_kwargs, vec_env_cls, vec_env_kwargs)
    monitor = _monitor_options(monitor_kwargs)
    spec = _spec(env_id)
    options = {**spec.kwargs, "render_mode": "rgb_array", **kwargs, **(env_kwargs or {})}
    if spec.max_episode_steps is not None:
        options.setdefault("max_episode_steps", spec.max_episode_steps)
    if seed is not None:
        options.setdefault("seed", seed)  # the launch seed, unless env_kwargs has one
    files = None
    if monitor_dir is not None:
        os.makedirs(monitor_dir, exist_ok=True)
        files = [os.path.join(monitor_dir, str(start_index + i)) for i in range(n_envs)]
    envs = BlenderVectorEnv(
        num_envs=n_envs, autoreset_mode=AutoresetMode.SAME_STEP, **_vector_options(options, n_envs)
    )
    envs.spec = spec
    try:
        vec = SB3VecEnv(envs, monitor_files=files, **monitor)
    except BaseException:
        envs.close()
        raise
    if seed is not None:
        vec.seed(seed)
    return vec


def _spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The spec of ``env_id``, also in Gymnasium's ``"module:id"`` form (imports the module)."""
    if not isinstance(env_id, str):
        raise TypeError(
            f"expected a registered env id such as 'btgym/CartPole-v0', got "
            f"{type(env_id).__name__}: for env factories use SB3's own make_vec_env"
        )
    if ":" in env_id:
        module, env_id = env_id.split(":", 1)
        importlib.import_module(module)
    return gym.spec(env_id)


def _vector_options(options: dict[str, Any], n_envs: int) -> dict[str, Any]:
    """``BlenderEnv``'s keyword arguments as ``BlenderVectorEnv``'s (``address`` -> list)."""
    address = options.pop("address", None)
    if address is not None:
        if n_envs != 1:
            raise ConfigError(
                f"expected n_envs=1 for one server address ({address}), got {n_envs}; pass "
                "addresses=[...] with one address per env"
            )
        options["addresses"] = [address]
    return options


def _refuse_sb3_only(*given: Any) -> None:
    names = ("wrapper_class", "wrapper_kwargs", "vec_env_cls", "vec_env_kwargs")
    used = [name for name, value in zip(names, given, strict=True) if value]
    if used:
        raise TypeError(
            f"expected none of {used} for btgym.sb3.make_vec_env, whose VecEnv is N Blender "
            "instances behind one adapter (no per-env gym wrappers, no worker processes); "
            "for those use stable_baselines3.common.env_util.make_vec_env with the id "
            "'btgym:btgym/...'"
        )


def _monitor_options(monitor_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """SB3 ``Monitor`` keyword arguments the adapter honours (early resets are always fine)."""
    given = dict(monitor_kwargs or {})
    given.pop("allow_early_resets", None)
    unknown = sorted(set(given) - {"info_keywords", "override_existing"})
    if unknown:
        raise TypeError(
            f"expected monitor_kwargs among ['allow_early_resets', 'info_keywords', "
            f"'override_existing'], got {unknown}"
        )
    return given


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
