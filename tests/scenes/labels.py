"""Scenes whose frames differ from their objects' own data: labels must follow the frame.

:class:`DropScene` drops boxes onto a floor inside a low bin, settles them with the kit
(``restart_simulation`` + ``settle``) and annotates; ``freeze`` says whether it also
calls ``kit.freeze`` (the labels must be the same either way). ``motion`` adds one more
annotated object whose drawn state comes from Blender's evaluation, not its data:
``constraint`` (Copy Location to an empty), ``driver`` (a driven location), ``keyframes``
(keyframed location, frame set per reset), ``modifier`` (an Array and a Solidify).
:class:`LateMoveScene` moves a box after rendering and before annotating: the labels
describe another state than its frame, which ``check_scene`` must catch.
"""

from __future__ import annotations

import bpy
import numpy as np
from gymnasium import spaces

from blender_side import Scene, kit
from blender_side.annotations import Annotator
from blender_side.geometry import prism
from blender_side.render import Renderer

SQUARE = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
MOTIONS = ("none", "constraint", "driver", "keyframes", "modifier")
START = 1


class DropScene(Scene):
    """Boxes dropped onto a floor, settled; boxes, masks and depth of what the frame shows."""

    def __init__(
        self,
        width: int = 96,
        height: int = 72,
        count: int = 3,
        freeze: bool = False,
        motion: str = "none",
    ) -> None:
        super().__init__(max_episode_steps=3)
        if motion not in MOTIONS:
            raise ValueError(f"expected motion in {MOTIONS}, got {motion!r}")
        self.width, self.height, self.count = width, height, count
        self.freeze, self.motion = freeze, motion
        self.renderer = Renderer(width, height)
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.action_space = spaces.Discrete(2)

    def build(self) -> None:
        kit.clear_scene()
        scene = bpy.context.scene
        self.collection = bpy.data.collections.new("labelled")
        scene.collection.children.link(self.collection)
        floor = kit.add_object("floor", kit.solid_mesh("floor", *prism(SQUARE * 6, 0.5)))
        floor.location = (0.0, 0.0, -0.5)
        wall = kit.add_object("bin-wall", kit.solid_mesh("wall", *prism(SQUARE * 0.2, 0.4)))
        wall.scale = (30.0, 1.0, 1.0)
        wall.location = (0.0, 3.0, 0.4)
        kit.rigid_body_world(10, 10, (START, START + 120))
        kit.add_rigid_body(floor, "PASSIVE", "BOX")
        self.boxes = []
        for i in range(self.count):
            mesh = kit.solid_mesh(f"box-{i}", *prism(SQUARE * 0.4, 0.4))
            box = kit.add_object(f"box-{i}", mesh, self.collection)
            kit.add_rigid_body(box, "ACTIVE", "BOX")
            self.boxes.append(box)
        self.moving = self._add_motion()
        self.camera = kit.add_camera((0.0, -9.0, 6.0), lens=35.0)
        kit.workbench_look("MATERIAL", (0.4, 0.6, 0.9))
        self.renderer.configure()
        self.annotator = Annotator(
            self.collection, self.camera, self.width, self.height, masks=True, depth=True
        )

    def _add_motion(self) -> list:
        """The extra object of ``motion`` (none: no object)."""
        if self.motion == "none":
            return []
        mesh = kit.solid_mesh("mover", *prism(SQUARE * 0.3, 0.3))
        mover = kit.add_object("mover", mesh, self.collection)
        mover.location = (0.0, -1.5, 8.0)  # out of view unless evaluated elsewhere
        if self.motion == "constraint":
            self.target = kit.add_object("target", None)
            constraint = mover.constraints.new("COPY_LOCATION")
            constraint.target = self.target
        elif self.motion == "driver":
            mover["offset"] = 0.0
            for axis, expression in ((0, "offset"), (2, "0.3")):
                driver = mover.driver_add("location", axis).driver
                driver.type = "SCRIPTED"
                var = driver.variables.new()
                var.name = "offset"
                var.targets[0].id = mover
                var.targets[0].data_path = '["offset"]'
                driver.expression = expression
        elif self.motion == "keyframes":
            for frame, x in ((START, -3.0), (START + 60, 3.0)):
                mover.location = (x, -1.5, 0.3)
                mover.keyframe_insert("location", frame=frame)
            mover.location = (0.0, 0.0, 8.0)
        else:  # modifier
            mover.location = (-1.0, -2.0, 0.3)
            array = mover.modifiers.new("array", "ARRAY")
            array.count = 4
            solid = mover.modifiers.new("solid", "SOLIDIFY")
            solid.thickness = 0.4
        return [mover]

    def reset(self, seed=None, options=None):
        super().reset(seed=seed, options=options)
        rng = self.np_random
        scene = bpy.context.scene
        scene.rigidbody_world.enabled = True
        locations = np.column_stack(
            [rng.uniform(-2.0, 2.0, self.count), rng.uniform(-1.5, 1.5, self.count)]
        )
        heights = 1.5 + 1.2 * np.arange(self.count)
        kit.set_poses(
            self.boxes, np.column_stack([locations, heights]), _quaternions(rng, self.count)
        )
        if self.motion == "constraint":
            self.target.location = (float(rng.uniform(-2, 2)), -1.5, 0.3)
        elif self.motion == "driver":
            self.moving[0]["offset"] = float(rng.uniform(-2.0, 2.0))
        bpy.context.view_layer.update()
        kit.restart_simulation(START)
        kit.settle(self.boxes, START, 100)
        if self.motion == "keyframes":
            scene.frame_set(START + int(rng.integers(10, 50)))
        if self.freeze:
            kit.freeze(self.boxes)
        return self._view()

    def step(self, action):
        observation, info = self._view()
        return observation, 0.0, False, False, info

    def _view(self):
        frame = self.renderer.render()
        objects = self.boxes + self.moving
        return frame, self.annotator(objects, np.zeros(len(objects), np.int32))

    def close(self) -> None:
        super().close()
        self.annotator.close()


class LateMoveScene(DropScene):
    """Renders, then moves a box, then annotates: labels of another state than the frame."""

    def _view(self):
        frame = self.renderer.render()
        box = self.boxes[0]
        box.rigid_body.kinematic = True
        box.location = (0.0, -1.0, 0.4)
        bpy.context.view_layer.update()
        info = self.annotator(self.boxes, np.zeros(self.count, np.int32))
        return frame, info


def _quaternions(rng: np.random.Generator, count: int) -> np.ndarray:
    q = rng.normal(size=(count, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


class ShiftedBoxScene(DropScene):
    """Hands out visible boxes two pixels to the right of its masks."""

    def _view(self):
        frame, info = super()._view()
        info["bbox_visib"] = info["bbox_visib"] + np.array([2.0, 0.0, 2.0, 0.0], np.float32)
        return frame, info
