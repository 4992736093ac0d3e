"""Camera geometry: intrinsics and vectorized projection of world points to pixels.

Pixel coordinates follow the image array: x to the right, y down, the image's
top-left corner at (0, 0), so pixel ``[r, c]`` covers ``[c, c+1) x [r, r+1)`` and its
centre is ``(c + 0.5, r + 0.5)``.
"""

from __future__ import annotations

import warnings
from typing import Any

import bpy
import numpy as np

from btgym.errors import ConfigError


def _scene(scene: Any) -> Any:
    return scene if scene is not None else bpy.context.scene


def intrinsics(camera: Any, scene: Any = None) -> np.ndarray:
    """The 3x3 pinhole matrix K of a perspective camera (sensor fit, shift, pixel aspect)."""
    scene = _scene(scene)
    data = camera.data
    if data.type != "PERSP":
        raise ConfigError(f"expected a perspective camera for intrinsics, got {data.type}")
    width, height, aspect, fit_size = _frame(data, scene)
    sensor = data.sensor_height if data.sensor_fit == "VERTICAL" else data.sensor_width
    focal = data.lens / sensor * fit_size
    return np.array(
        [
            [focal, 0.0, width / 2 - data.shift_x * fit_size],
            [0.0, focal / aspect, height / 2 + data.shift_y * fit_size / aspect],
            [0.0, 0.0, 1.0],
        ]
    )


def _frame(data: Any, scene: Any) -> tuple[float, float, float, float]:
    render = scene.render
    scale = render.resolution_percentage / 100.0
    width, height = render.resolution_x * scale, render.resolution_y * scale
    aspect = render.pixel_aspect_y / render.pixel_aspect_x
    fit = data.sensor_fit
    if fit == "AUTO":
        fit = (
            "HORIZONTAL"
            if width * render.pixel_aspect_x >= height * render.pixel_aspect_y
            else "VERTICAL"
        )
    fit_size = width if fit == "HORIZONTAL" else height * aspect
    return width, height, aspect, fit_size


def world_to_camera(camera: Any) -> np.ndarray:
    """The 4x4 matrix from world to camera coordinates (camera looks along -Z, Y up)."""
    return np.array(camera.matrix_world.inverted(), dtype=np.float64)


def project(points: np.ndarray, camera: Any, scene: Any = None) -> np.ndarray:
    """Project world points ``(..., 3)`` to pixel coordinates ``(..., 2)`` as float64.

    Works for perspective and orthographic cameras. Points behind a perspective camera
    get coordinates mirrored through the centre; check :func:`depth` > 0 when it matters.
    """
    scene = _scene(scene)
    points = np.asarray(points, dtype=np.float64)
    flat = points.reshape(-1, 3)
    view = world_to_camera(camera)
    cam = flat @ view[:3, :3].T + view[:3, 3]
    data = camera.data
    if data.type == "PERSP":
        k = intrinsics(camera, scene)
        z = -cam[:, 2]
        u = k[0, 0] * cam[:, 0] / z + k[0, 2]
        v = -k[1, 1] * cam[:, 1] / z + k[1, 2]
    elif data.type == "ORTHO":
        width, height, aspect, fit_size = _frame(data, scene)
        pixels_per_unit = fit_size / data.ortho_scale
        u = cam[:, 0] * pixels_per_unit + width / 2 - data.shift_x * fit_size
        v = -cam[:, 1] * pixels_per_unit / aspect + height / 2 + data.shift_y * fit_size / aspect
    else:
        raise ConfigError(f"expected a PERSP or ORTHO camera, got {data.type}")
    return np.stack([u, v], axis=-1).reshape(points.shape[:-1] + (2,))


def depth(points: np.ndarray, camera: Any) -> np.ndarray:
    """Distance of world points ``(..., 3)`` in front of the camera along its view axis."""
    points = np.asarray(points, dtype=np.float64)
    view = world_to_camera(camera)
    return -(points.reshape(-1, 3) @ view[2, :3] + view[2, 3]).reshape(points.shape[:-1])


def bound_box_corners(obj: Any) -> np.ndarray:
    """The 8 world-space corners of an object's local bounding box, ``(8, 3)``."""
    local = np.array([tuple(c) for c in obj.bound_box], dtype=np.float64)
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    return local @ matrix[:3, :3].T + matrix[:3, 3]


def _object_vertices(obj: Any, world: bool = True) -> np.ndarray:
    """All vertex coordinates of a mesh object as ``(N, 3)``, read with ``foreach_get``."""
    mesh = obj.data
    coords = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", coords)
    coords = coords.reshape(-1, 3).astype(np.float64)
    if world:
        matrix = np.array(obj.matrix_world, dtype=np.float64)
        coords = coords @ matrix[:3, :3].T + matrix[:3, 3]
    return coords


def __getattr__(name: str) -> Any:
    """Removed names, back for one release with a :class:`DeprecationWarning`."""
    if name == "object_vertices":
        warnings.warn(
            "blender_side.camera.object_vertices is deprecated and will be removed: read "
            "obj.data.vertices with foreach_get('co', ...) and apply obj.matrix_world "
            "(see CHANGELOG.md); camera.project takes the points",
            DeprecationWarning,
            stacklevel=2,
        )
        return _object_vertices
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "bound_box_corners",
    "depth",
    "intrinsics",
    "project",
    "world_to_camera",
]
