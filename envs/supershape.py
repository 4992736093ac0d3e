"""``btgym/Supershape-v0``: one supershape whose two shape frequencies are the action.

The scene of the paper's ``densityopt`` experiment: the action ``(m1, m2)`` sets the
Gielis superformula's frequency of the longitude (``m1``) and latitude (``m2``) profile
of a closed supershape (``n1 = n2 = n3 = 1``); every step re-shapes the mesh in place
(fixed topology, one ``foreach_set``), turns it to a random angle about the vertical
axis and renders a small grey frame. Reward 0; episodes never end.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np
from gymnasium import spaces

from blender_side import Scene
from blender_side.render import Renderer
from envs.cube import add_camera, add_sun, clear_scene
from envs.parts import normalized, polygon_mesh, supershape

SHAPE = (0.6, 1.0, 1.0)  # n1, n2, n3 of both profiles: sharp lobes, easy to tell apart


def shape_vertices(m1: float, m2: float, segments: int, rings: int) -> tuple[np.ndarray, list]:
    vertices, polygons = supershape((m1, *SHAPE), (m2, *SHAPE), segments=segments, rings=rings)
    return normalized(vertices, 1.0), polygons


class SupershapeScene(Scene):
    """A supershape shaped by the action ``(m1, m2)``, rendered from a fixed camera."""

    name = "Supershape"

    def __init__(
        self,
        width: int = 64,
        height: int = 64,
        segments: int = 48,
        rings: int = 24,
        max_episode_steps: int | None = None,
    ) -> None:
        super().__init__()
        self.renderer = Renderer(width, height)
        self.segments, self.rings = segments, rings
        self.max_episode_steps = max_episode_steps
        self.action_space = spaces.Box(0.5, 12.0, (2,), np.float32)
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.params = np.array([3.0, 3.0])
        self.steps = 0

    def build(self) -> None:
        clear_scene()
        vertices, polygons = shape_vertices(*self.params, self.segments, self.rings)
        self.shape = bpy.data.objects.new(
            "Supershape", polygon_mesh("Supershape", vertices, polygons)
        )
        bpy.context.scene.collection.objects.link(self.shape)
        self.shape.color = (0.7, 0.7, 0.72, 1.0)
        self.camera = add_camera((0.0, -2.6, 3.6), lens=50.0)
        add_sun()
        scene = bpy.context.scene
        scene.display.shading.light = "STUDIO"
        scene.display.shading.color_type = "OBJECT"
        scene.world = scene.world or bpy.data.worlds.new("World")
        scene.world.color = (0.02, 0.02, 0.02)
        self.renderer.configure()

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed, options=options)
        self.steps = 0
        if options and "params" in options:
            self.params = np.asarray(options["params"], dtype=np.float64)
        return self._render(self.params)

    def step(self, action: np.ndarray):
        self.steps += 1
        observation, info = self._render(np.asarray(action, dtype=np.float64))
        truncated = self.max_episode_steps is not None and self.steps >= self.max_episode_steps
        return observation, 0.0, False, truncated, info

    def _render(self, params: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        vertices, _ = shape_vertices(*params, self.segments, self.rings)
        self.shape.data.vertices.foreach_set("co", vertices.astype(np.float32).reshape(-1))
        self.shape.data.update()
        self.shape.rotation_euler = (0.0, 0.0, float(self.np_random.uniform(0, 2 * np.pi)))
        return self.renderer.render(), {"params": params.astype(np.float32)}
