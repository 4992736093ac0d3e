"""btgym's scenes in Gymnasium's registry: register them, list them, resolve an id to a scene.

One home for what a registered id means. :func:`register_scene` writes an entry
(``gymnasium.make`` and ``gymnasium.make_vec`` read it), :func:`btgym_ids` lists
btgym's entries, and :func:`resolve_target` turns an id or a scene spec into a
:class:`SceneTarget`: the scene spec, the keywords its constructor takes and the
launch keywords, apart, as :class:`btgym.BlenderEnv` would split them. The data
stream and the command line resolve ids here, so an id means the same everywhere.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from btgym.errors import ConfigError

if TYPE_CHECKING:
    from btgym._launch_config import LaunchConfig

ENV_ENTRY_POINT = "btgym.env:BlenderEnv"
VECTOR_ENTRY_POINT = "btgym.vector_env:BlenderVectorEnv"

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

#: ``BlenderEnv`` keywords a registration may carry that configure the launch.
LAUNCH_KEYWORDS = (
    "launch",
    "launch_options",
    "seed",
    "blend_file",
    "blender",
    "timeout",
    "start_timeout",
    "curve",
)
#: ``BlenderEnv`` keywords that belong to neither the scene nor the launch.
ENV_KEYWORDS = ("render_mode", "address", "launch_info")


def register_scene(
    env_id: str, scene: str, *, max_episode_steps: int | None = None, **kwargs: Any
) -> None:
    """Register ``scene`` (``module:Class``) so that ``gymnasium.make(env_id)`` builds it.

    ``kwargs`` are defaults for :class:`btgym.BlenderEnv` and the scene's constructor;
    ``gymnasium.make(env_id, **overrides)`` replaces them. ``max_episode_steps``: the
    scene's step limit; the scene gets it (it truncates its own episodes) and the spec
    records it, so that Gymnasium's ``TimeLimit`` (which ends the episode on the same
    step), ``TimeAwareObservation`` and ``gymnasium.make(env.spec)`` see it. A scene
    whose constructor takes no ``max_episode_steps`` gets it set after construction
    (:func:`blender_side.loading.scene_from`): the limit holds either way. Entry
    points are strings: registering imports nothing.
    """
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    gym.register(
        id=env_id,
        entry_point=ENV_ENTRY_POINT,
        vector_entry_point=VECTOR_ENTRY_POINT,
        max_episode_steps=max_episode_steps,
        kwargs={"scene": scene, **kwargs},
    )


def register_builtin() -> None:
    """Register the built-in scenes (``import btgym`` does; again is a no-op)."""
    for env_id, scene in BUILTIN_SCENES.items():
        if env_id not in gym.registry:
            register_scene(env_id, scene, max_episode_steps=BUILTIN_MAX_EPISODE_STEPS.get(env_id))


def is_btgym_spec(spec: Any) -> bool:
    """Whether a Gymnasium registry entry builds a :class:`btgym.BlenderEnv`."""
    entry = spec.entry_point
    if not isinstance(entry, str):
        entry = f"{getattr(entry, '__module__', '')}:{getattr(entry, '__qualname__', '')}"
    return bool(entry == ENV_ENTRY_POINT)


def btgym_ids() -> list[str]:
    """The registered ids whose entry point is btgym's, in registration order."""
    return [env_id for env_id, spec in gym.registry.items() if is_btgym_spec(spec)]


@dataclass(frozen=True)
class SceneTarget:
    """A scene to launch: its spec, its constructor's keywords, and the launch keywords.

    ``launch_keywords`` are what the registration gave among :data:`LAUNCH_KEYWORDS`;
    :meth:`launch_config` puts an entry point's own arguments on top of them.
    """

    name: str
    spec: str
    scene_kwargs: dict[str, Any]
    launch_keywords: dict[str, Any] = field(default_factory=dict)

    @property
    def launch(self) -> LaunchConfig:
        """The registered launch settings alone."""
        return self.launch_config()

    def launch_config(
        self,
        launch: LaunchConfig | None = None,
        launch_options: dict[str, Any] | None = None,
        **keywords: Any,
    ) -> LaunchConfig:
        """The launch settings with an entry point's arguments on top of the registered ones.

        As ``gymnasium.make(id, **given)`` merges them: a given ``launch`` or
        ``launch_options`` replaces the registered one, and each keyword that is not None
        (``timeout=``, ``seed=``, ...) replaces the registered keyword.
        """
        from btgym._launch_config import resolve_launch  # not at import: `import btgym` stays light

        registered = dict(self.launch_keywords)
        base = launch if launch is not None else registered.pop("launch", None)
        options = launch_options if launch_options else registered.pop("launch_options", None)
        registered.pop("launch", None)
        registered.pop("launch_options", None)
        merged = {**registered, **{k: v for k, v in keywords.items() if v is not None}}
        return resolve_launch(base, options, stacklevel=4, **merged)


def resolve_target(name: str, kwargs: dict[str, Any] | None = None) -> SceneTarget:
    """A registered btgym id or a scene spec (``module:Class``, ``file.py:Class``) as a
    :class:`SceneTarget`; ``kwargs`` replace the registered keywords.

    Raises :class:`~btgym.errors.ConfigError` for an id of another library's env and for
    a name that is neither (with the closest registered id, if one is close).
    """
    given = dict(kwargs or {})
    if name in gym.registry:
        registered = gym.spec(name)
        if not is_btgym_spec(registered):
            raise ConfigError(
                f"expected a btgym env id, got {name!r} (entry point {registered.entry_point!r})"
            )
        merged = {**registered.kwargs, **given}
        spec = str(merged.pop("scene"))
    elif ":" in name:
        spec, merged = name, given
    else:
        close = difflib.get_close_matches(name, btgym_ids(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else " (see 'btgym list')"
        raise ConfigError(
            "expected a registered btgym id or a scene spec (module:Class or file.py:Class), "
            f"got {name!r}{hint}"
        )
    merged.pop("scene", None)
    for key in ENV_KEYWORDS:
        merged.pop(key, None)
    launch = {key: merged.pop(key) for key in LAUNCH_KEYWORDS if key in merged}
    return SceneTarget(name, spec, merged, launch)


__all__ = [
    "BUILTIN_MAX_EPISODE_STEPS",
    "BUILTIN_SCENES",
    "SceneTarget",
    "btgym_ids",
    "is_btgym_spec",
    "register_builtin",
    "register_scene",
    "resolve_target",
]
