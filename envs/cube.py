"""``btgym/Cube-v0``: the paper's minimal example, a cube whose rotation is randomized."""

from __future__ import annotations

import math
from typing import Any

import bpy
import numpy as np
from gymnasium import spaces

from blender_side import Scene, kit
from blender_side.camera import bound_box_corners, project
from blender_side.geometry import box
from blender_side.render import Renderer
from btgym.errors import ConfigError

FULL_RANGE = (1.0, 1.0, 1.0)


class CubeScene(Scene):
    """A randomly rotated cube; the action sets how far it may be rotated about each axis.

    ## Description

    A domain-randomization env in the paper's sense: the agent (or a controller) does
    not rotate the cube, it chooses how much variety the stream of frames has, and the
    scene draws the samples. Every step draws a new rotation and a new colour.

    ## Action Space

    ``Box(0, 1, (3,), float32)``: entry ``i`` is the rotation range about axis ``i`` as a
    fraction of pi. Each step draws the cube's Euler angle ``i`` uniformly from
    ``[-a_i * pi, a_i * pi]``: zeros show the cube unrotated, ones randomize it fully.
    The colour is drawn uniformly from ``[0.1, 1]^3``.

    ## Observation Space

    The rendered frame, ``Box(0, 255, (height, width, 3), uint8)``. ``info``: ``xy`` the
    cube's 8 corners in pixels ``(8, 2) float32`` (x right, y down, origin at the image's
    top-left corner), ``rotation`` the drawn Euler angles and ``rotation_range`` the range
    used. ``reset(options={"rotation_range": [a, b, c]})`` sets the reset frame's range
    (default: the full range, never the last episode's).

    ## Rewards

    Always 0.

    ## Episode End

    Never terminated; truncated after ``max_episode_steps`` steps (never when None).

    ## Arguments

    ``width=640, height=512`` (the paper's Table II), ``engine="workbench"`` (or
    ``"raster"``, ``"cycles"``, ``"eevee"``), ``max_episode_steps=None``, ``samples=None`` (Cycles).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
    name = "Cube"

    def __init__(
        self,
        width: int = 640,
        height: int = 512,
        engine: str = "workbench",
        max_episode_steps: int | None = None,
        samples: int | None = None,
    ) -> None:
        super().__init__(max_episode_steps=max_episode_steps)
        self.renderer = Renderer(width, height, engine=engine, samples=samples)
        self.action_space = spaces.Box(0.0, 1.0, (3,), np.float32)
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.rotation_range = _as_range(FULL_RANGE)

    def build(self) -> None:
        """Build the cube, camera and light."""
        kit.clear_scene()
        self.cube = kit.add_flat_mesh("Cube", *box((1.0, 1.0, 1.0)))
        self.cube.data.materials.append(kit.object_color_material())
        self.camera = kit.add_camera((7.36, -6.93, 4.96), lens=75.0)
        kit.add_sun()
        kit.workbench_look("OBJECT", background=(0.05, 0.05, 0.05))
        self.renderer.configure()

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        """A frame with the full rotation range, or ``options['rotation_range']``."""
        super().reset(seed=seed, options=options)
        # The reset frame uses the range in options, else the full range: never a range left
        # over from the last episode, so reset(seed=s) gives the same frame whatever came before.
        self.rotation_range = _as_range((options or {}).get("rotation_range", FULL_RANGE))
        return self._randomize_and_render()

    def step(self, action: np.ndarray):
        """A frame with the cube turned within ``action`` (the rotation range)."""
        self.rotation_range = _as_range(action)
        observation, info = self._randomize_and_render()
        return observation, 0.0, False, False, info

    def _randomize_and_render(self) -> tuple[np.ndarray, dict[str, Any]]:
        limits = self.rotation_range.astype(np.float64) * math.pi
        rotation = self.np_random.uniform(-limits, limits)
        color = self.np_random.uniform(0.1, 1.0, size=3)
        self.cube.rotation_euler = rotation.tolist()
        self.cube.color = (*color.tolist(), 1.0)
        frame = self.renderer.render()
        bpy.context.view_layer.update()
        corners = project(bound_box_corners(self.cube), self.camera)
        info = {
            "xy": corners.astype(np.float32),
            "rotation": rotation.astype(np.float32),
            "rotation_range": self.rotation_range.copy(),
        }
        return frame, info


def _as_range(value: Any) -> np.ndarray:
    """``value`` as 3 float32 rotation ranges in [0, 1], with every zero a positive zero.

    -0.0 passes ``>= 0``, but ``uniform(-limit, limit)`` then fails with "high - low < 0":
    numpy tests the sign bit of high - low, and -0.0 - 0.0 is -0.0. Adding +0.0 turns
    -0.0 into +0.0 (IEEE 754) and leaves every other value as it is (it also copies).
    """
    array = np.asarray(value, dtype=np.float32).reshape(-1)
    if array.shape != (3,) or not np.all((array >= 0) & (array <= 1)):
        raise ConfigError(f"expected rotation_range as 3 values in [0, 1], got {value!r}")
    return array + np.float32(0.0)
