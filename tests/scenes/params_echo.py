"""A scene whose observation is its action (a wide float64 Box), for the params channel."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from blender_side import Scene


class ParamsEchoScene(Scene):
    """Each observation echoes the step's action; no rendering, so steps are fast."""

    def __init__(self, size: int = 256, high: float = 1e6) -> None:
        super().__init__()
        self.action_space = spaces.Box(0.0, high, (size,), np.float64)
        self.observation_space = spaces.Box(0.0, high, (size,), np.float64)

    def build(self) -> None:
        pass

    def reset(self, seed=None, options=None):
        super().reset(seed=seed, options=options)
        return np.zeros(self.observation_space.shape), {}

    def step(self, action):
        return np.asarray(action, np.float64), 0.0, False, False, {}
