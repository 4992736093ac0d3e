"""A scene whose observations are frame files (no rendering): frames by reference, fast."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from blender_side import Scene
from btgym.wire.frame_files import WRITER


class FrameScene(Scene):
    """Each observation is a fresh frame file holding the step number in every byte.

    ``bad_event_at``: the step that emits an event msgpack cannot encode (0: never).
    """

    def __init__(self, side: int = 32, bad_event_at: int = 0) -> None:
        super().__init__()
        self.shape = (side, side, 3)
        self.observation_space = spaces.Box(0, 255, self.shape, np.uint8)
        self.action_space = spaces.Discrete(2)
        self.bad_event_at = bad_event_at
        self.steps = 0

    def build(self) -> None:
        pass

    def frame(self) -> np.ndarray:
        array = WRITER.create(int(np.prod(self.shape))).reshape(self.shape)
        array[...] = self.steps % 256
        return array

    def reset(self, seed=None, options=None):
        super().reset(seed=seed, options=options)
        self.steps = 0
        return self.frame(), {}

    def step(self, action):
        self.steps += 1
        if self.steps == self.bad_event_at:
            self.emit("unencodable", what=object())
        self.emit("stepped", step=self.steps)
        return self.frame(), 0.0, False, False, {"step": self.steps}
