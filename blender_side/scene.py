"""The scene contract: what a scene author subclasses to turn a Blender scene into an env.

A scene declares its spaces, builds its Blender content once in :meth:`Scene.build`,
and answers :meth:`Scene.reset` and :meth:`Scene.step` like a Gymnasium env. Every
random draw must come from ``self.np_random`` so that ``reset(seed=s)`` is
reproducible.

Minimal example::

    class Spin(Scene):
        def __init__(self, width=320, height=256):
            super().__init__()
            self.renderer = Renderer(width, height)
            self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
            self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)

        def build(self):
            self.cube = bpy.data.objects["Cube"]

        def reset(self, seed=None, options=None):
            super().reset(seed=seed, options=options)
            self.cube.rotation_euler.z = self.np_random.uniform(-3.14, 3.14)
            return self.renderer.render(), {}

        def step(self, action):
            self.cube.rotation_euler.z += float(action[0])
            return self.renderer.render(), 0.0, False, False, {}

Step limit: ``super().__init__(max_episode_steps=n)`` and the base class truncates the
episode on its ``n``-th step (Gymnasium's ``TimeLimit`` semantics), so a scene's ``step``
never counts steps itself; :attr:`Scene.elapsed_steps` is the number of the step being
taken (0 during ``reset``). The server and :class:`~blender_side.testing.SceneEnv` drive
a scene through :meth:`Scene.run_reset`, :meth:`Scene.run_autoreset` and
:meth:`Scene.run_step`, which keep that count; scene authors override ``reset``,
``autoreset`` and ``step`` only.
"""

from __future__ import annotations

import difflib
from collections import deque
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from blender_side.render import Renderer
from btgym.errors import ConfigError
from btgym.wire.params import ParamSpace

#: Events a scene keeps for the trainer until its next reply (the oldest go first).
MAX_PENDING_EVENTS = 256


class Scene:
    """Base class of btgym scenes; runs inside the Blender process."""

    #: Gymnasium-style metadata sent to the trainer in ``hello``.
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 30}
    #: The scene's name as shown to the trainer (defaults to the class name).
    name: ClassVar[str | None] = None

    action_space: spaces.Space
    observation_space: spaces.Space
    renderer: Renderer | None = None
    #: Truncate each episode on this step (None: never); checked by :meth:`run_step`.
    max_episode_steps: int | None = None
    #: The scene's named randomization parameters, when its action is one (reported in
    #: :meth:`describe`, so the trainer can map names to actions itself).
    param_space: ParamSpace | None = None

    def __init__(self, max_episode_steps: int | None = None) -> None:
        self.np_random = np.random.default_rng()
        self.np_random_seed: int | None = None
        self.max_episode_steps = checked_limit(max_episode_steps)
        #: Steps taken since the episode began (the current one's number inside ``step``).
        self.elapsed_steps = 0

    # -- contract --------------------------------------------------------------------
    def build(self) -> None:
        """Create the Blender content once, before the first reset (bpy is available)."""

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start an episode. Subclasses call ``super().reset(seed=seed, options=options)`` first.

        With a seed, ``self.np_random`` is re-created from it; without, it continues.
        """
        if seed is not None:
            self.seed(seed)
        return None, {}

    def autoreset(self, seed: int) -> tuple[Any, dict[str, Any]]:
        """Start the next episode right after a step ended one (the server's autoreset).

        The server draws ``seed`` so that the episode can be replayed. Defaults to
        ``reset(seed=seed)``; override where the episode that just ended should hand on
        state a seeded reset discards (e.g. parameters sent with the last steps).
        """
        return self.reset(seed=seed)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Apply ``action`` and return ``(observation, reward, terminated, truncated, info)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement step(action)")

    def render(self) -> np.ndarray:
        """The current frame as ``(H, W, 3) uint8``: the last rendered one, or a new render."""
        if self.renderer is None:
            raise NotImplementedError(f"{type(self).__name__} has no renderer to render with")
        if self.renderer.last_frame is not None:
            return self.renderer.last_frame
        return self.renderer.render()

    def close(self) -> None:
        """Release resources (temporary files); called once when the server stops."""
        if self.renderer is not None:
            self.renderer.close()

    # -- what servers call: the contract plus the step count --------------------------
    def run_reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """:meth:`reset`, with the step count back at 0."""
        self.elapsed_steps = 0
        return self.reset(seed=seed, options=options)

    def run_autoreset(self, seed: int) -> tuple[Any, dict[str, Any]]:
        """:meth:`autoreset`, with the step count back at 0."""
        self.elapsed_steps = 0
        return self.autoreset(seed)

    def run_step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """:meth:`step`, counted; ``truncated`` once the step reaching ``max_episode_steps``.

        The count goes up before ``step`` runs (and back when it raises), so ``step`` reads
        its own number in :attr:`elapsed_steps`; a scene's own ``truncated`` is kept.
        """
        self.elapsed_steps += 1
        try:
            result = self.step(action)
            observation, reward, terminated, truncated, info = checked_step(self, result)
        except BaseException:
            self.elapsed_steps -= 1
            raise
        limit = self.max_episode_steps
        truncated = bool(truncated) or (limit is not None and self.elapsed_steps >= limit)
        return observation, reward, terminated, truncated, info

    # -- helpers ---------------------------------------------------------------------
    def seed(self, seed: int) -> None:
        """Re-create ``self.np_random`` from ``seed`` (called by :meth:`reset` with a seed)."""
        self.np_random = np.random.default_rng(seed)
        self.np_random_seed = int(seed)

    def get_attr(self, name: str) -> Any:
        """Read a public attribute (what ``env.get_attr`` reaches); a typo gets suggestions."""
        _check_public(name)
        if not hasattr(self, name):
            raise AttributeError(no_such_attribute(self, name))
        return getattr(self, name)

    def set_attr(self, name: str, value: Any) -> None:
        """Set a public attribute (what ``env.set_attr`` reaches)."""
        _check_public(name)
        setattr(self, name, value)

    def emit(self, event: str, **data: Any) -> None:
        """Send an event to the trainer (``"episode finished"``, statistics, warnings).

        It travels with the next reply this instance sends, whatever the request, and
        lands in the client's ``events`` (``env.pop_events()``, the vector env's and the
        stream's too); ``data`` must be msgpack-able like an info. At most
        :data:`MAX_PENDING_EVENTS` wait: beyond that the oldest are dropped.
        """
        pending = self.__dict__.setdefault("_events", deque(maxlen=MAX_PENDING_EVENTS))
        pending.append({"event": str(event), "data": data})

    def take_events(self) -> list[dict[str, Any]]:
        """The events emitted since the last reply (the server sends them with it)."""
        pending = self.__dict__.get("_events")
        if not pending:
            return []
        events = list(pending)
        pending.clear()
        return events

    def describe(self) -> dict[str, Any]:
        """What the trainer learns about the scene in ``hello``."""
        return {
            "name": self.name or type(self).__name__,
            "metadata": dict(self.metadata),
            "max_episode_steps": self.max_episode_steps,
            "params": None if self.param_space is None else self.param_space.to_data(),
            "renderer": None
            if self.renderer is None
            else {
                "engine": self.renderer.engine,
                "width": self.renderer.width,
                "height": self.renderer.height,
            },
        }


def checked_limit(limit: Any) -> int | None:
    """``max_episode_steps`` as an int >= 1, or None for no limit."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1:
        raise ConfigError(f"expected max_episode_steps as an int >= 1 or None, got {limit!r}")
    return int(limit)


def no_such_attribute(scene: Any, name: str) -> str:
    """An AttributeError message naming the closest public names of ``scene``."""
    public = sorted(n for n in dir(scene) if not n.startswith("_"))
    close = difflib.get_close_matches(name, public, n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"expected a public attribute of {type(scene).__name__}, got {name!r}{hint}"


#: What ``step`` returns, position by position: name, expected, test.
_STEP_RETURNS: tuple[tuple[str, str, Any], ...] = (
    ("observation", "an observation", lambda v: True),
    ("reward", "a float", lambda v: isinstance(v, int | float | np.integer | np.floating)),
    ("terminated", "a bool", lambda v: isinstance(v, bool | np.bool_)),
    ("truncated", "a bool", lambda v: isinstance(v, bool | np.bool_)),
    ("info", "a dict", lambda v: v is None or isinstance(v, dict)),
)


def checked_step(scene: Any, result: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
    """``step``'s return value, checked: a 5-tuple in Gymnasium's order, each value of
    its kind; else a :class:`TypeError` naming the position, what was expected and what
    came (a reward must be a number, not the info dict).
    """
    name = f"{type(scene).__name__}.step"
    order = ", ".join(n for n, _, _ in _STEP_RETURNS)
    if not isinstance(result, tuple | list) or len(result) != len(_STEP_RETURNS):
        got = f"{len(result)} values" if isinstance(result, tuple | list) else type(result).__name__
        raise TypeError(f"expected {name} to return 5 values ({order}), got {got}")
    for position, ((what, kind, ok), value) in enumerate(zip(_STEP_RETURNS, result, strict=True)):
        if not ok(value):
            raise TypeError(
                f"expected {name} to return ({order}): {what} (position {position}) must be "
                f"{kind}, got {type(value).__name__} {_short(value)}"
            )
    return tuple(result)  # type: ignore[return-value]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_public(name: str) -> None:
    if not isinstance(name, str) or not name or name.startswith("_"):
        raise AttributeError(f"expected a public attribute name, got {name!r}")


__all__ = ["Scene", "checked_step"]
