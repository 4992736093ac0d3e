"""Workbench-like shadows for the raster engine: a shadow map from the scene's shadow light.

Workbench casts shadows from one light whose direction is ``scene.display.light_direction``
(a world-space direction with its axes swapped, see :func:`blender_side.raster_look.read_look`)
and darkens shadowed surfaces by ``shadow_intensity``. The raster engine draws the same
triangles once more, seen from that light with an orthographic projection that holds
every drawn object's bounding box, into a depth map; the frame's draw then compares each
pixel's depth from the light with the map. Surfaces turned away from the light count as
shadowed too (Workbench's terminator). Shadows are sharp, of one map's resolution.
"""

from __future__ import annotations

from typing import Any

import gpu
import numpy as np
from mathutils import Matrix, Vector

#: The shadow map's size in texels (each side).
MAP_SIZE = 2048
_DEPTH_VERTEX = """
void main()
{
  gl_Position = light_mvp * vec4(pos, 1.0);
}
"""
_DEPTH_FRAGMENT = """
void main()
{
  out_depth = gl_FragCoord.z;
}
"""


def light_matrices(
    towards_light: tuple[float, float, float], bounds_world: np.ndarray
) -> tuple[Matrix, Matrix]:
    """``(light_from_world, clip_from_light)``: the view of a light in world direction
    ``towards_light`` (looking along its rays) and an orthographic projection holding
    ``bounds_world`` ``(N, 3)`` points.
    """
    rotation = Vector(towards_light).to_track_quat("Z", "Y").to_matrix().to_4x4()
    light_from_world = rotation.inverted()
    points = np.asarray(bounds_world, np.float64)
    local = points @ np.array(light_from_world.to_3x3()).T
    low, high = local.min(0), local.max(0)
    pad = 1e-3 + 1e-3 * float(np.abs(high - low).max())
    low, high = low - pad, high + pad
    clip = np.eye(4)
    clip[0, 0], clip[0, 3] = 2.0 / (high[0] - low[0]), -(high[0] + low[0]) / (high[0] - low[0])
    clip[1, 1], clip[1, 3] = 2.0 / (high[1] - low[1]), -(high[1] + low[1]) / (high[1] - low[1])
    # The light looks along -z: near is the highest z, far the lowest.
    near, far = -high[2], -low[2]
    clip[2, 2], clip[2, 3] = -2.0 / (far - near), -(far + near) / (far - near)
    return light_from_world, Matrix(clip.tolist())


class ShadowMap:
    """The depth of the scene seen from the shadow light, redrawn per frame."""

    def __init__(self, size: int = MAP_SIZE) -> None:
        self.size = int(size)
        self.texture = gpu.types.GPUTexture((self.size, self.size), format="R32F")
        self._depth = gpu.types.GPUTexture((self.size, self.size), format="DEPTH_COMPONENT32F")
        self._framebuffer = gpu.types.GPUFrameBuffer(
            depth_slot=self._depth, color_slots=self.texture
        )
        info = gpu.types.GPUShaderCreateInfo()
        info.vertex_in(0, "VEC3", "pos")
        info.vertex_in(1, "VEC3", "nor")
        info.push_constant("MAT4", "light_mvp")
        info.fragment_out(0, "FLOAT", "out_depth")
        info.vertex_source(_DEPTH_VERTEX)
        info.fragment_source(_DEPTH_FRAGMENT)
        self._shader = gpu.shader.create_from_info(info)

    def draw(self, clip_from_world: Matrix, drawn: list[tuple[Matrix, list[Any]]]) -> None:
        """Draw ``(world matrix, batches)`` pairs as seen through ``clip_from_world``."""
        with self._framebuffer.bind():
            self._framebuffer.clear(color=(1.0, 1.0, 1.0, 1.0), depth=1.0)
            gpu.state.depth_test_set("LESS_EQUAL")
            gpu.state.depth_mask_set(True)
            gpu.state.face_culling_set("NONE")
            self._shader.bind()
            for matrix, batches in drawn:
                self._shader.uniform_float("light_mvp", clip_from_world @ matrix)
                for _, batch in batches:
                    batch.draw(self._shader)
            gpu.state.depth_test_set("NONE")


def bounds_corners(obj: Any, matrix: Matrix) -> np.ndarray:
    """The 8 world-space corners of an evaluated object's bounding box ``(8, 3)``."""
    local = np.array([tuple(c) for c in obj.bound_box], np.float64)
    m = np.array(matrix, np.float64)
    return local @ m[:3, :3].T + m[:3, 3]


__all__ = ["MAP_SIZE", "ShadowMap", "bounds_corners", "light_matrices"]
