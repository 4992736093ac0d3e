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
MAP_SIZE = 1024
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
    towards_light: tuple[float, float, float],
    bounds_world: np.ndarray,
    seen_world: np.ndarray | None = None,
) -> tuple[Matrix, Matrix]:
    """``(light_from_world, clip_from_light)``: the view of a light in world direction
    ``towards_light`` (looking along its rays) and an orthographic projection holding
    ``bounds_world`` ``(N, 3)`` points, across the light no wider than ``seen_world``
    (the corners of what the camera sees: texels outside it are never looked up).
    """
    rotation = Vector(towards_light).to_track_quat("Z", "Y").to_matrix().to_4x4()
    light_from_world = rotation.inverted()
    to_light = np.array(light_from_world.to_3x3()).T
    local = np.asarray(bounds_world, np.float64) @ to_light
    low, high = local.min(0), local.max(0)
    if seen_world is not None:
        seen = np.asarray(seen_world, np.float64) @ to_light
        low[:2], high[:2] = (
            np.maximum(low[:2], seen.min(0)[:2]),
            np.minimum(high[:2], seen.max(0)[:2]),
        )
        high[:2] = np.maximum(high[:2], low[:2] + 1e-6)
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


def seen_corners(camera: Any, scene: Any, bounds_world: np.ndarray) -> np.ndarray | None:
    """The 8 world-space corners of the camera's view between the nearest and the farthest
    of ``bounds_world`` (clipped to the camera's clip range); None when nothing is in front.
    """
    view = np.array(camera.matrix_world.inverted(), np.float64)
    depths = -(np.asarray(bounds_world, np.float64) @ view[2, :3] + view[2, 3])
    data = camera.data
    near = max(float(depths.min()), data.clip_start)
    far = min(float(depths.max()), data.clip_end)
    if far <= near:
        return None
    frame = np.array([tuple(v) for v in data.view_frame(scene=scene)], np.float64)
    corners = []
    for depth in (near, far):
        if data.type == "ORTHO":
            corners.append(np.column_stack([frame[:, :2], np.full(4, -depth)]))
        else:
            corners.append(frame * (depth / -frame[:, 2:3]))
    local = np.concatenate(corners)
    world = np.array(camera.matrix_world, np.float64)
    return local @ world[:3, :3].T + world[:3, 3]


def bounds_corners(obj: Any, matrix: Matrix) -> np.ndarray:
    """The 8 world-space corners of an evaluated object's bounding box ``(8, 3)``."""
    local = np.array([tuple(c) for c in obj.bound_box], np.float64)
    m = np.array(matrix, np.float64)
    return local @ m[:3, :3].T + m[:3, 3]


__all__ = ["MAP_SIZE", "ShadowMap", "bounds_corners", "light_matrices", "seen_corners"]
