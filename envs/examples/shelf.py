"""A user's scene script: randomize the parts of a ``.blend`` and stream the frames.

Open ``shelf.blend`` (made by ``make_blend.py``) and serve it::

    StreamDataset("envs/examples/shelf.py:ShelfScene", 2, blend_file="shelf.blend")
"""

from __future__ import annotations

import bpy
import numpy as np
from gymnasium import spaces

from blender_side import Scene
from blender_side.render import Renderer


class ShelfScene(Scene):
    """The ``Part.*`` objects of the open ``.blend`` at random places, turns and colours.

    Action: ``[spread]`` in [0, 1], how far from the middle parts may land (one DR
    parameter; ``reset(options={"spread": s})`` sets it for the first frame, 0.5 by
    default). Observation: the camera's frame. Info: each part's location.
    """

    def __init__(self, width: int = 160, height: int = 128) -> None:
        super().__init__()
        self.renderer = Renderer(width, height)  # Workbench, AA off: real time
        self.action_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.spread = 0.5

    def build(self) -> None:
        """Find the file's parts (objects named ``Part*``); colours from the objects."""
        self.parts = sorted(
            (o for o in bpy.data.objects if o.name.startswith("Part")), key=lambda o: o.name
        )
        bpy.context.scene.display.shading.color_type = "OBJECT"

    def reset(self, seed=None, options=None):
        """Shuffle the parts with ``options['spread']`` (0.5 by default)."""
        super().reset(seed=seed, options=options)
        self.spread = float((options or {}).get("spread", 0.5))  # never last episode's
        return self._shuffle()

    def step(self, action):
        """Shuffle the parts with the spread ``action[0]``."""
        self.spread = float(action[0])
        observation, info = self._shuffle()
        return observation, 0.0, False, False, info

    def _shuffle(self):
        n = len(self.parts)
        xy = self.np_random.uniform(-1.5, 1.5, (n, 2)) * self.spread
        for part, (x, y), turn, colour in zip(
            self.parts,
            xy,
            self.np_random.uniform(0, 6.28, n),
            self.np_random.random((n, 3)),
            strict=True,
        ):
            part.location = (float(x), float(y), 0.4)
            part.rotation_euler = (0.0, 0.0, float(turn))
            part.color = (*colour.tolist(), 1.0)
        locations = np.array([tuple(p.location) for p in self.parts], np.float32)
        return self.renderer.render(), {"locations": locations}
