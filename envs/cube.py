"""``btgym/Cube-v0``: the paper's minimal example, a cube whose rotation is randomized.

Action: the randomization itself, ``Box(0, 1, (3,), float32)``. Entry ``i`` is the
rotation range about axis ``i`` as a fraction of pi: each step draws the cube's Euler
angle ``i`` uniformly from ``[-a_i * pi, a_i * pi]``, so zeros show the cube unrotated
and ones randomize it fully. The cube's colour is drawn at random too.

Observation: the rendered frame, ``(height, width, 3) uint8`` (default 640x512, as in
the paper's Table II). ``info["xy"]``: the cube's 8 corners in pixel coordinates
(x right, y down, origin at the image's top-left corner), ``(8, 2) float32``.
``reset(options={"rotation_range": [...]})`` sets the range of the reset frame (full
range by default). Reward is always 0; an episode is truncated after
``max_episode_steps`` steps (never when None).
"""

from __future__ import annotations

import math
from typing import Any

import bpy
import numpy as np
from gymnasium import spaces
from mathutils import Vector

from blender_side import Scene
from blender_side.camera import bound_box_corners, project
from blender_side.render import Renderer

CUBE_VERTICES = np.array(
    [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float32
)
FULL_RANGE = (1.0, 1.0, 1.0)
CUBE_FACES = np.array(
    [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]],
    dtype=np.int32,
)


def clear_scene() -> None:
    """Remove every object and orphaned mesh/camera/light of the current file."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj, do_unlink=True)
    for collection in (bpy.data.meshes, bpy.data.cameras, bpy.data.lights):
        for block in list(collection):
            collection.remove(block)


def add_mesh(name: str, vertices: np.ndarray, faces: np.ndarray) -> Any:
    """Create a mesh object from arrays of quads with ``foreach_set`` (no bpy.ops)."""
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.reshape(-1))
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.reshape(-1))
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set(
        "loop_start", np.arange(0, faces.size, faces.shape[1], dtype=np.int32)
    )
    mesh.polygons.foreach_set("loop_total", np.full(len(faces), faces.shape[1], dtype=np.int32))
    mesh.update(calc_edges=True)
    mesh.validate()
    mesh.shade_flat()
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def add_camera(location: tuple[float, float, float], target=(0.0, 0.0, 0.0), lens=50.0) -> Any:
    """A perspective camera at ``location`` looking at ``target``, made the scene camera."""
    data = bpy.data.cameras.new("Camera")
    data.lens = lens
    camera = bpy.data.objects.new("Camera", data)
    bpy.context.scene.collection.objects.link(camera)
    camera.location = location
    direction = Vector(target) - Vector(location)
    camera.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    bpy.context.scene.camera = camera
    return camera


def add_sun(rotation=(0.6, 0.2, 0.8), strength: float = 4.0) -> Any:
    """A sun lamp, so Cycles and EEVEE light what Workbench's studio light shows."""
    data = bpy.data.lights.new("Sun", type="SUN")
    data.energy = strength
    sun = bpy.data.objects.new("Sun", data)
    sun.rotation_euler = rotation
    bpy.context.scene.collection.objects.link(sun)
    return sun


def object_color_material(name: str = "ObjectColor") -> Any:
    """A material whose base colour is the object's colour (``obj.color``) in every engine."""
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    info = nodes.new("ShaderNodeObjectInfo")
    links.new(info.outputs["Color"], bsdf.inputs["Base Color"])
    return material


class CubeScene(Scene):
    """A randomly rotated cube; the action sets the rotation range per axis."""

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
        super().__init__()
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"expected max_episode_steps >= 1 or None, got {max_episode_steps}")
        self.renderer = Renderer(width, height, engine=engine, samples=samples)
        self.max_episode_steps = max_episode_steps
        self.action_space = spaces.Box(0.0, 1.0, (3,), np.float32)
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.rotation_range = _as_range(FULL_RANGE)
        self.steps = 0

    def build(self) -> None:
        clear_scene()
        self.cube = add_mesh("Cube", CUBE_VERTICES, CUBE_FACES)
        self.cube.data.materials.append(object_color_material())
        self.camera = add_camera((7.36, -6.93, 4.96), lens=75.0)
        add_sun()
        scene = bpy.context.scene
        scene.display.shading.light = "STUDIO"
        scene.display.shading.color_type = "OBJECT"
        world = scene.world or bpy.data.worlds.new("World")
        scene.world = world
        world.color = (0.05, 0.05, 0.05)
        self.renderer.configure()

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed, options=options)
        # The reset frame uses the range in options, else the full range: never a range left
        # over from the last episode, so reset(seed=s) gives the same frame whatever came before.
        self.rotation_range = _as_range((options or {}).get("rotation_range", FULL_RANGE))
        self.steps = 0
        return self._randomize_and_render()

    def step(self, action: np.ndarray):
        self.rotation_range = _as_range(action)
        self.steps += 1
        observation, info = self._randomize_and_render()
        truncated = self.max_episode_steps is not None and self.steps >= self.max_episode_steps
        return observation, 0.0, False, truncated, info

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
        raise ValueError(f"expected rotation_range as 3 values in [0, 1], got {value!r}")
    return array + np.float32(0.0)
