"""Register btgym scenes as Gymnasium env ids."""

from __future__ import annotations

from typing import Any

import gymnasium

ENV_ENTRY_POINT = "btgym.env:BlenderEnv"
VECTOR_ENTRY_POINT = "btgym.vector_env:BlenderVectorEnv"


def register_scene(env_id: str, scene: str, **kwargs: Any) -> None:
    """Register ``scene`` (``module:Class``) so that ``gymnasium.make(env_id)`` builds it.

    ``kwargs`` are defaults for :class:`btgym.BlenderEnv` and the scene's constructor;
    ``gymnasium.make(env_id, **overrides)`` replaces them.
    """
    gymnasium.register(
        id=env_id,
        entry_point=ENV_ENTRY_POINT,
        vector_entry_point=VECTOR_ENTRY_POINT,
        kwargs={"scene": scene, **kwargs},
    )


BUILTIN_SCENES: dict[str, str] = {
    "btgym/Cube-v0": "envs.cube:CubeScene",
    "btgym/CartPole-v0": "envs.cartpole:CartPoleScene",
    "btgym/Supershape-v0": "envs.supershape:SupershapeScene",
    "btgym/Parts-v0": "envs.parts:PartsScene",
}


def register_builtin() -> None:
    for env_id, scene in BUILTIN_SCENES.items():
        if env_id not in gymnasium.registry:
            register_scene(env_id, scene)
