"""A scene for protocol tests: every space type, observations echo the action."""

from __future__ import annotations

import os
import time

import numpy as np
from gymnasium import spaces

from blender_side import Scene


def all_spaces() -> spaces.Dict:
    return spaces.Dict(
        {
            "box": spaces.Box(-1.0, 1.0, (2, 3), np.float32),
            "box64": spaces.Box(np.array([0.0, -5.0]), np.array([1.0, 5.0]), dtype=np.float64),
            "ibox": spaces.Box(0, 255, (4,), np.uint8),
            "discrete": spaces.Discrete(5, start=-2),
            "multi_discrete": spaces.MultiDiscrete([3, 4, 5]),
            "multi_binary": spaces.MultiBinary([2, 2]),
            "tuple": spaces.Tuple((spaces.Discrete(3), spaces.Box(-2.0, 2.0, (1,), np.float32))),
        }
    )


class EchoScene(Scene):
    """Echoes actions; counts steps; can be told to fail, hang or exit."""

    def __init__(self, max_episode_steps: int = 5) -> None:
        super().__init__()
        self.action_space = all_spaces()
        self.observation_space = all_spaces()
        self.max_episode_steps = max_episode_steps
        self.counter = 0
        self.label = "echo"
        self.step_delay = 0.0  # seconds; set per instance to make a straggler

    def build(self) -> None:
        import bpy

        self.objects = sorted(obj.name for obj in bpy.data.objects)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed, options=options)
        self.counter = 0
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        return self.observation_space.sample(), {
            "draw": self.np_random.random(),
            "options": options,
        }

    def step(self, action):
        if self.step_delay:
            time.sleep(self.step_delay)
        self.counter += 1
        done = self.counter >= self.max_episode_steps
        if done:  # a scene telling the trainer something, as BlendTorch's DuplexChannel did
            self.emit("episode finished", steps=self.counter)
        return action, float(self.counter), False, done, {"counter": self.counter}

    def add(self, a, b):
        return a + b

    def array_sum(self, array):
        return np.asarray(array).sum(axis=0)

    def fail(self, message):
        raise KeyError(message)

    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    def exit_now(self, code):
        os._exit(code)
