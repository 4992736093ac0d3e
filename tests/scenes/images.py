"""A scene with large arrays both ways (no rendering): compression on the wire, fast."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from blender_side import Scene


class ImageScene(Scene):
    """Observations are striped images; the action is a large map whose sum comes back.

    Both are far above the size from which arrays travel compressed between hosts.
    """

    def __init__(self, side: int = 128) -> None:
        super().__init__()
        self.shape = (side, side, 3)
        self.observation_space = spaces.Box(0, 255, self.shape, np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (64, 64), np.float32)
        self.steps = 0

    def build(self) -> None:
        pass

    def image(self) -> np.ndarray:
        rows = np.arange(self.shape[0], dtype=np.uint8)[:, None, None] // 8
        return np.broadcast_to(rows * 16 + self.steps, self.shape).astype(np.uint8)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed, options=options)
        self.steps = 0
        return self.image(), {}

    def step(self, action):
        self.steps += 1
        info = {"action_sum": float(np.asarray(action, np.float64).sum())}
        return self.image(), 0.0, False, False, info
