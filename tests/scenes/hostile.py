"""Scenes that misbehave on purpose, for the hardening tests."""

from __future__ import annotations

import os

import numpy as np
from gymnasium import spaces

from blender_side import Scene
from envs.cube import CubeScene


class Unprintable(Exception):
    """An exception whose message cannot be formatted."""

    def __str__(self) -> str:
        raise RuntimeError("no message for you")


class SabotagedCube(CubeScene):
    """Cube-v0 that can spoil its own next frame file or raise unprintable errors."""

    def block_next_frame(self) -> str:
        """Put a directory where the renderer writes next: that render cannot save."""
        os.mkdir(self.renderer.path)
        return self.renderer.path

    def raise_unprintable(self) -> None:
        raise Unprintable()


class WrongObservationScene(Scene):
    """Declares Box(0, 1, (3,)) but steps return 4 values, the last out of bounds."""

    def __init__(self) -> None:
        super().__init__()
        self.action_space = spaces.Discrete(2)
        self.observation_space = spaces.Box(0.0, 1.0, (3,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed, options=options)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.array([0.5, 0.5, 0.5, 7.0], np.float32), 0.0, False, False, {}


class SwappedReturnScene(Scene):
    """Returns its step tuple in the wrong order: (observation, info, reward, ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.action_space = spaces.Discrete(2)
        self.observation_space = spaces.Box(0.0, 1.0, (3,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed, options=options)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), {"score": 1.0}, 1.0, False, False


class MissingObjectScene(Scene):
    """Looks up an object by a name the open file may not have."""

    def __init__(self, name: str = "Cubee") -> None:
        super().__init__()
        self.name_wanted = name
        self.action_space = spaces.Discrete(2)
        self.observation_space = spaces.Discrete(2)

    def build(self) -> None:
        import bpy

        self.obj = bpy.data.objects[self.name_wanted]
