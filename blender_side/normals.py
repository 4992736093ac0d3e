"""Surface normals per pixel: Cycles' Normal pass of a collection, seen by a camera.

Workbench, the real-time engine, has no normal pass (its render layers give only the
image and depth), so :class:`NormalPass` renders a second Blender scene that shares the
main scene's objects (like :class:`~blender_side.annotations.IdPass`) with Cycles at one
sample, no bounces, no denoising and a box filter far narrower than a pixel: each
pixel's normal is the shading normal (smooth shading, normal maps and bump included) of
the surface hit by the ray through its centre. A compositor puts the Normal pass into a
float32 EXR that is parsed with numpy. The Cycles render is the cost (measured with
Parts-v0's 20 parts: ~60 ms at 320x256, ~220 ms at 640x512 on 2 CPU cores, where the
Workbench frame takes 19 and 36 ms): an annotation for datasets, not real-time streams.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import bpy
import numpy as np

from blender_side.compositor import render_layers
from blender_side.image_stats import read_exr_float32
from blender_side.kit import linked_scene
from blender_side.render import stdout_silenced
from btgym.errors import ConfigError
from btgym.wire.frame_files import WRITER

#: The frames :meth:`NormalPass.render` can express normals in.
FRAMES = ("camera", "blender_camera", "world")

# Blender's camera looks along -Z with +Y up; OpenCV's (and K's) along +Z with +Y down.
_BLENDER_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


class NormalPass:
    """Renders unit surface normals of the objects in ``collection`` seen by ``camera``.

    ``render()`` returns ``(H, W, 3) float32``: 0 where no surface is seen, otherwise
    the unit normal in ``frame``: ``"camera"`` (x right, y down, z forward: the frame of
    :func:`~blender_side.camera.intrinsics` and BOP's poses; a surface facing the camera
    has z < 0), ``"blender_camera"`` (x right, y up, looking along -z) or ``"world"``.
    Objects with ``hide_render`` are not drawn.
    """

    def __init__(
        self,
        collection: Any,
        camera: Any,
        width: int,
        height: int,
        frame: str = "camera",
        name: str = "btgym-normals",
    ) -> None:
        if frame not in FRAMES:
            raise ConfigError(f"expected a normals frame in {FRAMES}, got {frame!r}")
        self.width, self.height, self.frame = int(width), int(height), frame
        self.camera = camera
        self.scene = linked_scene(name, collection, camera)
        self.path = WRITER.scratch_path(f"normals-{id(self)}.exr")
        self.configure()

    def configure(self) -> None:
        """Apply the pass's settings: Cycles, 1 sample at pixel centres, Normal -> EXR."""
        scene, render = self.scene, self.scene.render
        render.engine = "CYCLES"
        cycles = scene.cycles
        cycles.device = "CPU"
        cycles.samples = 1
        cycles.use_adaptive_sampling = False
        cycles.use_denoising = False
        cycles.max_bounces = 0
        cycles.pixel_filter_type = "BOX"
        cycles.filter_width = 0.01  # the one sample lands within 0.005 px of the centre
        cycles.seed = 0
        render.resolution_x, render.resolution_y = self.width, self.height
        render.resolution_percentage = 100
        render.pixel_aspect_x = render.pixel_aspect_y = 1.0
        render.use_sequencer = False
        render.film_transparent = True
        render.filepath = self.path
        render.use_file_extension = False
        scene.view_settings.view_transform = "Raw"
        scene.view_settings.look = "None"
        scene.view_layers[0].use_pass_normal = True
        tree, layers, output = render_layers(scene)
        tree.links.new(layers.outputs["Normal"], output)
        settings = render.image_settings
        if hasattr(settings, "media_type"):  # Blender 5
            settings.media_type = "IMAGE"
        settings.file_format = "OPEN_EXR"
        settings.exr_codec = "NONE"
        settings.color_mode = "RGB"
        settings.color_depth = "32"

    def render(self) -> np.ndarray:
        """Render the pass: ``(H, W, 3) float32`` unit normals in :attr:`frame`, 0 for none."""
        with stdout_silenced(True):
            bpy.ops.render.render(write_still=True, scene=self.scene.name)
        channels = read_exr_float32(self.path)
        normals = np.stack([channels["R"], channels["G"], channels["B"]], axis=-1)
        length = np.linalg.norm(normals, axis=-1, keepdims=True)
        # Unit normals where a surface is seen; the background's zeros stay 0 when rotated.
        normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0.5)
        if self.frame != "world":
            # world -> camera; the camera's scale (if any) left out
            rotation = np.array(self.camera.matrix_world.to_quaternion().to_matrix()).T
            if self.frame == "camera":
                rotation = _BLENDER_TO_OPENCV @ rotation
            normals = normals @ rotation.T.astype(np.float32)
        return normals.astype(np.float32, copy=False)

    def close(self) -> None:
        """Remove the pass's scratch file."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)


__all__ = ["FRAMES", "NormalPass"]
