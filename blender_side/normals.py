"""Surface normals per pixel: Cycles' Normal pass of a collection, seen by a camera.

Workbench, the real-time engine, has no normal pass (its render layers give only the
image and depth), so :class:`NormalPass` renders the frame's scene once more (like
:class:`~blender_side.annotations.IdPass`, :mod:`blender_side.passes`) with Cycles at one
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

from blender_side.compositor import PassCompositor
from blender_side.image_stats import read_exr_float32
from blender_side.passes import Override, image_output, overridden, render_still
from btgym.errors import ConfigError
from btgym.wire.frame_files import WRITER

#: The frames :meth:`NormalPass.render` can express normals in.
FRAMES = ("camera", "blender_camera", "world")

# Blender's camera looks along -Z with +Y up; OpenCV's (and K's) along +Z with +Y down.
_BLENDER_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


class NormalPass:
    """Renders unit surface normals of what the frame shows through ``camera``.

    Like :class:`~blender_side.annotations.IdPass`, the pass renders the frame's own
    ``scene`` (default: the current one) with its settings switched for that render only
    (:mod:`blender_side.passes`), so the normals are those of the frame's geometry,
    however it was evaluated. ``render()`` returns ``(H, W, 3) float32``: 0 where no
    surface is seen, otherwise the unit normal in ``frame``: ``"camera"`` (x right, y
    down, z forward: the frame of :func:`~blender_side.camera.intrinsics` and BOP's
    poses; a surface facing the camera has z < 0), ``"blender_camera"`` (x right, y up,
    looking along -z) or ``"world"``. Every visible object has normals (``collection``
    is kept for the signature); objects with ``hide_render`` are not drawn.
    """

    def __init__(
        self,
        collection: Any,
        camera: Any,
        width: int,
        height: int,
        frame: str = "camera",
        name: str = "btgym-normals",
        scene: Any = None,
    ) -> None:
        if frame not in FRAMES:
            raise ConfigError(f"expected a normals frame in {FRAMES}, got {frame!r}")
        self.width, self.height, self.frame = int(width), int(height), frame
        self.collection, self.camera = collection, camera
        self.scene = scene if scene is not None else bpy.context.scene
        self.path = WRITER.scratch_path(f"normals-{id(self)}.exr")
        for layer in self.scene.view_layers:
            layer.use_pass_normal = True  # kept on: toggling it would re-sync the scene
        # The Render Layers node shows the passes of the scene's engine: build under Cycles.
        with overridden([(self.scene.render, "engine", "CYCLES")]):
            self.compositor = PassCompositor(self.scene, name)
            self._link_normals()

    def _link_normals(self) -> None:
        """Link the Normal pass to the output, under Cycles: Blender drops the link while
        the scene's own engine (Workbench) has no such pass, so each render links again.
        """
        tree, output = self.compositor.tree, self.compositor.output
        for link in list(tree.links):
            if link.to_socket == output:
                if link.is_valid:
                    return
                tree.links.remove(link)
        tree.links.new(self.compositor.layers.outputs["Normal"], output)

    def settings(self) -> list[Override]:
        """The pass's settings: Cycles, 1 sample at pixel centres, Normal -> float EXR."""
        scene = self.scene
        render, cycles = scene.render, scene.cycles
        out: list[Override] = [
            (scene, "camera", self.camera),
            (render, "engine", "CYCLES"),
            (cycles, "device", "CPU"),
            (cycles, "samples", 1),
            (cycles, "use_adaptive_sampling", False),
            (cycles, "use_denoising", False),
            (cycles, "max_bounces", 0),
            (cycles, "pixel_filter_type", "BOX"),
            (cycles, "filter_width", 0.01),  # the one sample lands within 0.005 px of the centre
            (cycles, "seed", 0),
            (render, "resolution_x", self.width),
            (render, "resolution_y", self.height),
            (render, "resolution_percentage", 100),
            (render, "pixel_aspect_x", 1.0),
            (render, "pixel_aspect_y", 1.0),
            (render, "use_sequencer", False),
            (render, "film_transparent", True),
            (scene.view_settings, "view_transform", "Raw"),
            (scene.view_settings, "look", "None"),
            *self.compositor.overrides,
        ]
        return out + image_output(scene, self.path, "EXR", "RGB")

    def render(self) -> np.ndarray:
        """Render the pass: ``(H, W, 3) float32`` unit normals in :attr:`frame`, 0 for none."""
        with overridden(self.settings()):
            self.compositor.select()
            self._link_normals()
            render_still(self.scene)
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
