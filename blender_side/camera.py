"""Camera geometry: intrinsics and vectorized projection of world points to pixels.

Pixel coordinates follow the image array: x to the right, y down, the image's
top-left corner at (0, 0), so pixel ``[r, c]`` covers ``[c, c+1) x [r, r+1)`` and its
centre is ``(c + 0.5, r + 0.5)``.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import bpy
import numpy as np

from btgym.errors import ConfigError


def _scene(scene: Any) -> Any:
    return scene if scene is not None else bpy.context.scene


def evaluated_depsgraph(scene: Any = None) -> Any:
    """The scene's (first view layer's) depsgraph, evaluated with every pending change:
    objects read from it (``obj.evaluated_get``) are where the next render draws them.
    """
    scene = _scene(scene)
    if scene == bpy.context.scene:
        return bpy.context.evaluated_depsgraph_get()
    depsgraph = scene.view_layers[0].depsgraph
    depsgraph.update()
    return depsgraph


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


def evaluated_vertices(obj: Any, world: bool = True, depsgraph: Any = None) -> np.ndarray:
    """An object's vertices as the renderer draws them, ``(N, 3)`` float64.

    Read from Blender's evaluation (modifiers, shape keys, constraints, drivers,
    animation, simulation applied) with ``foreach_get``; in world coordinates, or the
    object's own with ``world=False``. Curves, text and surfaces give their mesh.
    """
    depsgraph = depsgraph if depsgraph is not None else evaluated_depsgraph()
    evaluated = obj.evaluated_get(depsgraph)
    if obj.type == "MESH":
        coords = mesh_vertices(evaluated.data)
    else:
        mesh = evaluated.to_mesh()
        try:
            coords = mesh_vertices(mesh) if mesh is not None else np.zeros((0, 3))
        finally:
            evaluated.to_mesh_clear()
    if world:
        matrix = np.array(evaluated.matrix_world, dtype=np.float64)
        coords = coords @ matrix[:3, :3].T + matrix[:3, 3]
    return coords


def mesh_vertices(mesh: Any) -> np.ndarray:
    """A mesh's vertex coordinates ``(N, 3)`` float64, read with one ``foreach_get``."""
    coords = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", coords)
    return coords.reshape(-1, 3).astype(np.float64)


class Pixels(NamedTuple):
    """World points seen by a camera (:func:`world_to_pixel`, :func:`object_to_pixel`).

    ``xy``: pixel coordinates ``(..., 2)`` (x right, y down; see the module). ``depth``:
    distance along the view axis. ``in_front``: beyond the camera's near clip.
    ``in_image``: in front and inside the frame. ``visible``: in the image and, given a
    depth map, not behind the surface drawn at that pixel.
    """

    xy: np.ndarray
    depth: np.ndarray
    in_front: np.ndarray
    in_image: np.ndarray
    visible: np.ndarray


def world_to_pixel(
    points: np.ndarray,
    camera: Any = None,
    scene: Any = None,
    depth_map: np.ndarray | None = None,
    tolerance: float = 0.01,
) -> Pixels:
    """Project world points ``(..., 3)`` to pixels, with visibility; vectorized numpy.

    ``camera`` defaults to the scene's and is read as evaluated (an animated or
    constrained camera where the frame has it). ``depth_map``: an ``(H, W)`` depth frame
    (the Annotator's ``depth``, 0 where nothing is drawn); a point counts as occluded
    when it lies more than ``tolerance`` (relative, and as much in scene units) behind
    the surface drawn at its pixel.
    """
    scene = _scene(scene)
    depsgraph = evaluated_depsgraph(scene)
    camera = (camera if camera is not None else scene.camera).evaluated_get(depsgraph)
    points = np.asarray(points, dtype=np.float64)
    xy = project(points, camera, scene)
    z = depth(points, camera)
    width, height = (int(v) for v in _frame(camera.data, scene)[:2])
    in_front = z > camera.data.clip_start if camera.data.type == "PERSP" else np.ones_like(z, bool)
    inside = (xy[..., 0] >= 0) & (xy[..., 0] < width) & (xy[..., 1] >= 0) & (xy[..., 1] < height)
    in_image = in_front & inside
    visible = in_image.copy()
    if depth_map is not None:
        if depth_map.shape != (height, width):
            raise ConfigError(
                f"expected a depth map of the frame's shape {(height, width)}, "
                f"got {depth_map.shape}"
            )
        cols = np.clip(xy[..., 0].astype(np.int64), 0, width - 1)
        rows = np.clip(xy[..., 1].astype(np.int64), 0, height - 1)
        surface = depth_map[rows, cols]
        behind = (surface > 0) & (z > surface * (1.0 + tolerance) + tolerance)
        visible &= ~behind
    return Pixels(xy, z, in_front, in_image, visible)


def object_to_pixel(
    obj: Any,
    camera: Any = None,
    scene: Any = None,
    depth_map: np.ndarray | None = None,
    tolerance: float = 0.01,
) -> Pixels:
    """Pixels of an object's evaluated vertices (BlendTorch's ``object_to_pixel``).

    :func:`evaluated_vertices` (modifiers and all) through :func:`world_to_pixel`.
    """
    scene = _scene(scene)
    vertices = evaluated_vertices(obj, depsgraph=evaluated_depsgraph(scene))
    return world_to_pixel(vertices, camera, scene, depth_map, tolerance)


def __getattr__(name: str) -> Any:
    """Removed names, back for one release with a :class:`DeprecationWarning`."""
    if name == "object_vertices":
        warnings.warn(
            "blender_side.camera.object_vertices is deprecated and will be removed: use "
            "blender_side.camera.evaluated_vertices(obj) (modifiers and animation applied) "
            "or object_to_pixel(obj) for pixels with visibility (see CHANGELOG.md)",
            DeprecationWarning,
            stacklevel=2,
        )
        return evaluated_vertices
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Pixels",
    "bound_box_corners",
    "depth",
    "evaluated_depsgraph",
    "evaluated_vertices",
    "mesh_vertices",
    "object_to_pixel",
    "intrinsics",
    "project",
    "world_to_camera",
    "world_to_pixel",
]
