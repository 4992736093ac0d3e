"""btgym: Blender scenes as Gymnasium environments for adaptive domain randomization.

``import btgym`` registers the built-in scenes (``btgym/Cube-v0``, ...) with Gymnasium
and nothing else: the public names below are imported on first use (PEP 562), so that
importing one submodule (the Blender side imports only :mod:`btgym.wire`) costs no
other. Heavy parts (torch, stable-baselines3) live in the modules that need them.
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

import gymnasium as _gymnasium

__version__ = "0.1.0"

#: Where each public name lives; imported when first asked for.
_LAZY = {
    "BlenderEnv": "btgym.env",
    "BlenderVectorEnv": "btgym.vector_env",
    "BtgymError": "btgym.errors",
    "LaunchConfig": "btgym.launch_config",
    "Launcher": "btgym.launcher",
}

_ENV_ENTRY_POINT = "btgym.env:BlenderEnv"
_VECTOR_ENTRY_POINT = "btgym.vector_env:BlenderVectorEnv"

#: The scenes that ship with btgym, by Gymnasium id.
BUILTIN_SCENES: dict[str, str] = {
    "btgym/Cube-v0": "envs.cube:CubeScene",
    "btgym/CartPole-v0": "envs.cartpole:CartPoleScene",
    "btgym/Supershape-v0": "envs.supershape:SupershapeScene",
    "btgym/Parts-v0": "envs.parts:PartsScene",
}

#: The step limits of the built-in scenes that have one by default, by Gymnasium id: the
#: scene truncates there, and the spec says so. (Parts-v0's limit is its ``views``
#: argument, not ``max_episode_steps``, which its constructor does not take.)
BUILTIN_MAX_EPISODE_STEPS: dict[str, int] = {"btgym/CartPole-v0": 500}


def register_scene(
    env_id: str, scene: str, *, max_episode_steps: int | None = None, **kwargs: _Any
) -> None:
    """Register ``scene`` (``module:Class``) so that ``gymnasium.make(env_id)`` builds it.

    ``kwargs`` are defaults for :class:`btgym.BlenderEnv` and the scene's constructor;
    ``gymnasium.make(env_id, **overrides)`` replaces them. ``max_episode_steps``: the
    scene's step limit; the scene gets it (it truncates its own episodes) and the spec
    records it, so that Gymnasium's ``TimeLimit`` (which ends the episode on the same
    step), ``TimeAwareObservation`` and ``gymnasium.make(env.spec)`` see it. Entry
    points are strings: registering imports nothing.
    """
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    _gymnasium.register(
        id=env_id,
        entry_point=_ENV_ENTRY_POINT,
        vector_entry_point=_VECTOR_ENTRY_POINT,
        max_episode_steps=max_episode_steps,
        kwargs={"scene": scene, **kwargs},
    )


def _register_builtin() -> None:
    """Register the built-in scenes (``import btgym`` does; again is a no-op)."""
    for env_id, scene in BUILTIN_SCENES.items():
        if env_id not in _gymnasium.registry:
            register_scene(env_id, scene, max_episode_steps=BUILTIN_MAX_EPISODE_STEPS.get(env_id))


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'btgym' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


if _TYPE_CHECKING:
    from btgym.env import BlenderEnv
    from btgym.errors import BtgymError
    from btgym.launch_config import LaunchConfig
    from btgym.launcher import Launcher
    from btgym.vector_env import BlenderVectorEnv

_register_builtin()

__all__ = [
    "BUILTIN_MAX_EPISODE_STEPS",
    "BUILTIN_SCENES",
    "BlenderEnv",
    "BlenderVectorEnv",
    "BtgymError",
    "LaunchConfig",
    "Launcher",
    "__version__",
    "register_scene",
]
__all__.sort()
