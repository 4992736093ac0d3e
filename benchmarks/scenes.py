"""Scenes used only by benchmarks."""

from __future__ import annotations

import os

import numpy as np
from gymnasium import spaces

from blender_side import Scene
from btgym.wire.frame_files import WRITER


class FrameScene(Scene):
    """Returns a ready 640x512 frame per step (no render, no copy): what is measured with
    it is the transport alone."""

    def __init__(self, width: int = 640, height: int = 512) -> None:
        super().__init__()
        self.action_space = spaces.Box(0.0, 1.0, (3,), np.float32)
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed, options=options)
        return self.frame.copy(), {}

    def step(self, action):
        return self.frame, 0.0, False, False, {"xy": np.zeros((8, 2), np.float32)}


class FileFrameScene(FrameScene):
    """Returns the same frame per step as a fresh file in shared memory, mapped: what the
    renderer hands over after Blender wrote its TIFF (the write itself, the render's cost,
    is left out: each name is a hard link to one file written once)."""

    def __init__(self, width: int = 640, height: int = 512) -> None:
        super().__init__(width, height)
        self.source = WRITER.new_path("src")
        with open(self.source, "wb") as f:
            f.write(self.frame.tobytes())

    def step(self, action):
        path = WRITER.new_path("raw")
        os.link(self.source, path)
        frame = WRITER.map(path).reshape(self.frame.shape)
        return frame, 0.0, False, False, {"xy": np.zeros((8, 2), np.float32)}

    def close(self) -> None:
        os.remove(self.source)


class ReplayScene(Scene):
    """Replays ``count`` frames a real scene rendered at build: real pixels, no render
    per step, so that what is measured with it is the transport of realistic frames."""

    def __init__(self, scene: str = "envs.cube:CubeScene", count: int = 16, **kwargs) -> None:
        super().__init__()
        from blender_side.loading import scene_from

        self.source = scene_from(scene, kwargs)
        self.action_space = self.source.action_space
        self.observation_space = self.source.observation_space
        self.count = count
        self.frames: list = []
        self.index = 0

    def build(self) -> None:
        self.source.build()
        self.source.action_space.seed(0)
        obs, _ = self.source.run_reset(seed=0)
        self.frames = [np.array(obs)]
        while len(self.frames) < self.count:
            obs, *_ = self.source.run_step(self.source.action_space.sample())
            self.frames.append(np.array(obs))

    def reset(self, seed=None, options=None):
        super().reset(seed=seed, options=options)
        return self.frames[0], {}

    def step(self, action):
        self.index = (self.index + 1) % self.count
        return self.frames[self.index], 0.0, False, False, {}
