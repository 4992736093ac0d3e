"""``btgym/Supershape-v0``: one supershape whose two shape frequencies are the action."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from blender_side import Scene, kit
from blender_side.geometry import normalized, supershape
from blender_side.render import Renderer

SHAPE = (0.6, 1.0, 1.0)  # n1, n2, n3 of both profiles: sharp lobes, easy to tell apart


def shape_mesh(m1: float, m2: float, segments: int, rings: int) -> tuple[np.ndarray, list]:
    """The supershape of frequencies ``m1`` (longitude) and ``m2`` (latitude), 1 in half-size."""
    vertices, polygons = supershape((m1, *SHAPE), (m2, *SHAPE), segments=segments, rings=rings)
    return normalized(vertices, 1.0), polygons


class SupershapeScene(Scene):
    """A supershape shaped by the action ``(m1, m2)``, rendered from a fixed camera.

    ## Description

    The scene of the paper's ``densityopt`` experiment: a closed Gielis supershape whose
    longitude and latitude profiles share ``n1, n2, n3 = 0.6, 1, 1`` and differ in their
    frequencies. Every step re-shapes the mesh in place (fixed topology, one
    ``foreach_set``), turns it to a random angle about the vertical axis and renders a
    small grey frame.

    ## Action Space

    ``Box(0.5, 12, (2,), float32)``: ``(m1, m2)``, the superformula's frequency of the
    longitude and of the latitude profile.

    ## Observation Space

    The rendered frame, ``Box(0, 255, (height, width, 3), uint8)``; ``info["params"]``:
    the ``(m1, m2)`` shown (``float32``). The reset frame shows ``(3, 3)``, or the
    ``options={"params": [m1, m2]}`` given (kept for later resets).

    ## Rewards

    Always 0.

    ## Episode End

    Never terminated; truncated after ``max_episode_steps`` steps (never when None).

    ## Arguments

    ``width=64, height=64, segments=48, rings=24`` (the mesh's resolution),
    ``max_episode_steps=None``, ``engine="workbench"`` (or ``"raster"``, ``"cycles"``,
    ``"eevee"``).
    """

    name = "Supershape"

    def __init__(
        self,
        width: int = 64,
        height: int = 64,
        segments: int = 48,
        rings: int = 24,
        max_episode_steps: int | None = None,
        engine: str = "workbench",
    ) -> None:
        super().__init__(max_episode_steps=max_episode_steps)
        self.renderer = Renderer(width, height, engine=engine)
        self.segments, self.rings = segments, rings
        self.action_space = spaces.Box(0.5, 12.0, (2,), np.float32)
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.params = np.array([3.0, 3.0])

    def build(self) -> None:
        """Build the supershape mesh, camera and light."""
        kit.clear_scene()
        vertices, polygons = shape_mesh(*self.params, self.segments, self.rings)
        self.shape = kit.add_object("Supershape", kit.solid_mesh("Supershape", vertices, polygons))
        self.shape.color = (0.7, 0.7, 0.72, 1.0)
        self.camera = kit.add_camera((0.0, -2.6, 3.6), lens=50.0)
        kit.add_sun()
        kit.workbench_look("OBJECT", background=(0.02, 0.02, 0.02))
        self.renderer.configure()

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        """A frame of the shape of ``options['params']`` (else the last parameters)."""
        super().reset(seed=seed, options=options)
        if options and "params" in options:
            self.params = np.asarray(options["params"], dtype=np.float64)
        return self._render(self.params)

    def step(self, action: np.ndarray):
        """A frame of the shape of frequencies ``action``, turned at random."""
        observation, info = self._render(np.asarray(action, dtype=np.float64))
        return observation, 0.0, False, False, info

    def _render(self, params: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        vertices, _ = shape_mesh(*params, self.segments, self.rings)
        kit.set_vertices(self.shape.data, vertices)
        self.shape.rotation_euler = (0.0, 0.0, float(self.np_random.uniform(0, 2 * np.pi)))
        return self.renderer.render(), {"params": params.astype(np.float32)}
