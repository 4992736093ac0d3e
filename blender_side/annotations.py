"""Per-frame annotations of rendered objects: instance ids, visibility, 2D boxes, depth.

Reusable by any scene. The pieces:

- :class:`IdPass`: the frame's own scene rendered once more (:mod:`blender_side.passes`:
  same frame, same evaluation, so labels follow physics, constraints, drivers, animation
  and modifiers without ``kit.freeze``) with Workbench, flat shading, the object colour
  set to an instance id, anti-aliasing off, view transform ``Raw`` and no dithering, so
  every pixel holds the exact id of the surface seen there (0 = none of the annotated
  objects).
  Without depth the frame is an 8-bit TIFF in ``/dev/shm`` (the same read-back as
  :class:`~blender_side.render.Renderer`); with ``depth=True`` a compositor puts the
  Workbench depth pass in the alpha channel of a float32 EXR that is parsed with numpy.
- :func:`annotate`: boxes, pixel counts, visibility and poses for a list of objects and
  a camera, read from Blender's evaluated objects (:func:`evaluated_geometry`). Its
  pixel statistics (:func:`~blender_side.image_stats.visible_stats`, and
  :func:`~blender_side.image_stats.silhouette_areas`, each object's *unoccluded* pixel
  count found by rasterizing its projected triangles: BOP's ``visib_fract`` denominator
  without an extra render; measured against rendering each object alone in the id pass:
  at most 2 pixels apart, 126 objects of 1,700-23,000 pixels, ~2 ms for a whole pile
  instead of ~20 ms per object) are numpy, in :mod:`blender_side.image_stats`.
- :class:`Annotator`: both for one view, plus class and instance ids, masks, depth and
  normals (:class:`~blender_side.normals.NormalPass`).
- :func:`pad_per_object`: per-object arrays padded to a fixed row count, for batching.

Pixel coordinates follow :mod:`blender_side.camera`: x right, y down, pixel ``[r, c]``
covers ``[c, c+1) x [r, r+1)``; boxes are ``[x0, y0, x1, y1]`` in those continuous
coordinates, so a box of visible pixels is ``[min c, min r, max c + 1, max r + 1]``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from typing import Any

import bpy
import numpy as np

from blender_side.camera import depth as point_depth
from blender_side.camera import evaluated_depsgraph, intrinsics, mesh_vertices, project
from blender_side.compositor import PassCompositor, replace_alpha
from blender_side.image_stats import read_exr_float32, silhouette_areas, visible_stats
from blender_side.normals import NormalPass
from blender_side.passes import Override, drawn_objects, image_output, overridden, render_still
from blender_side.tiff import read_tiff_rgb8
from btgym.errors import ConfigError
from btgym.wire.frame_files import WRITER

#: Depth value written where no surface is seen (BOP's convention for "no data").
NO_DEPTH = 0.0
_FAR = 1e9  # Workbench writes 1e10 for the background


# -- id colours --------------------------------------------------------------------------
def id_color(instance: int) -> tuple[float, float, float, float]:
    """The object colour that the id pass reads back as ``instance`` (0..65535)."""
    if not 0 <= instance < 65536:
        raise ConfigError(f"expected an instance id in [0, 65535], got {instance}")
    return (instance % 256 / 255.0, instance // 256 / 255.0, 0.0, 1.0)


def set_instance_ids(objects: list[Any], others: list[Any] = ()) -> None:
    """Colour ``objects[i]`` as id ``i + 1`` and every object in ``others`` as 0."""
    for i, obj in enumerate(objects):
        obj.color = id_color(i + 1)
    for obj in others:
        obj.color = (0.0, 0.0, 0.0, 1.0)


def renumbered(ids: np.ndarray, drawn: dict[Any, int], objects: Sequence[Any]) -> np.ndarray:
    """``ids`` drawn with the ids ``drawn`` gives each object, as ``objects[i]`` = ``i + 1``
    (objects not in ``objects`` become 0): the raster draws ids from object colours,
    annotations number the objects they are given.
    """
    table = np.zeros(max(drawn.values(), default=0) + 1, np.int32)
    for i, obj in enumerate(objects):
        drawn_id = drawn.get(getattr(obj, "original", obj), 0)
        if drawn_id:
            table[drawn_id] = i + 1
    if np.array_equal(table, np.arange(len(table))):
        return ids  # already numbered as the objects are (the usual case)
    if ids.size == 0 or (ids.min() >= 0 and ids.max() < len(table)):
        return np.take(table, ids)  # every drawn id is in the table: one gather
    drawn_here = (ids >= 0) & (ids < len(table))
    return np.where(drawn_here, table[np.clip(ids, 0, len(table) - 1)], 0).astype(np.int32)


class IdPass:
    """Renders instance ids (and optionally depth) of the frame the scene's camera sees.

    The pass renders ``scene`` itself (default: the current one), at its current frame,
    with settings switched for that render only (:mod:`blender_side.passes`): Workbench,
    flat shading, object colours as ids, anti-aliasing off, view ``Raw``, no dither, a
    black world, ``camera``. So it draws what the frame drew, by construction: bodies
    where the simulation left them (no ``kit.freeze`` needed), constrained, driven,
    animated and modified objects as evaluated, and every other visible object as id 0,
    hiding what it hides. ``render(objects)`` draws ``objects[i]`` as id ``i + 1``;
    ``render()`` without objects reads the ids from the colours of ``collection``'s
    objects (:func:`set_instance_ids`). Objects with ``hide_render`` are not drawn.
    ``render()`` returns ``(ids, depth)``: ids as an ``(H, W) int32`` array, depth as
    ``(H, W) float32`` distance along the camera axis (:data:`NO_DEPTH` where nothing is
    seen) or ``None`` without ``depth=True``.
    """

    def __init__(
        self,
        collection: Any,
        camera: Any,
        width: int,
        height: int,
        depth: bool = False,
        name: str = "btgym-ids",
        scene: Any = None,
    ) -> None:
        self.width, self.height, self.depth = int(width), int(height), bool(depth)
        self.collection, self.camera, self.name = collection, camera, name
        self.scene = scene if scene is not None else bpy.context.scene
        suffix = "exr" if self.depth else "tif"
        # In the server's private frame directory, removed with it at exit.
        self.path = WRITER.scratch_path(f"ids-{id(self)}.{suffix}")
        self._black_world = bpy.data.worlds.new(f"{name}-black")
        self._black_world.color = (0.0, 0.0, 0.0)
        self.compositor: PassCompositor | None = None
        if self.depth:
            for layer in self.scene.view_layers:
                layer.use_pass_z = True  # kept on: toggling it would re-sync the scene
            with overridden([(self.scene.render, "engine", "BLENDER_WORKBENCH")]):
                self.compositor = compositor = PassCompositor(self.scene, name)
                outputs = compositor.layers.outputs
                replace_alpha(
                    compositor.tree, outputs["Image"], outputs["Depth"], compositor.output
                )

    def settings(self) -> list[Override]:
        """The pass's render settings, as ``(struct, attribute, value)`` (set in order)."""
        scene = self.scene
        render, settings = scene.render, scene.render.image_settings
        shading = scene.display.shading
        world = scene.world if scene.world is not None else self._black_world
        out: list[Override] = [
            (scene, "camera", self.camera),
            (scene, "world", world),
            (world, "color", (0.0, 0.0, 0.0)),
            (render, "engine", "BLENDER_WORKBENCH"),
            (render, "resolution_x", self.width),
            (render, "resolution_y", self.height),
            (render, "resolution_percentage", 100),
            (render, "pixel_aspect_x", 1.0),
            (render, "pixel_aspect_y", 1.0),
            (render, "use_sequencer", False),
            (render, "use_motion_blur", False),  # ids are exact, never blended
            (render, "film_transparent", False),
            (render, "dither_intensity", 0.0),
            (render, "use_compositing", False),
            (scene.view_settings, "view_transform", "Raw"),
            (scene.view_settings, "look", "None"),
            (scene.view_settings, "exposure", 0.0),
            (scene.view_settings, "gamma", 1.0),
            (scene.view_settings, "use_curve_mapping", False),
            (scene.display, "render_aa", "OFF"),
            (shading, "light", "FLAT"),
            (shading, "color_type", "OBJECT"),
            (shading, "show_shadows", False),
            (shading, "show_cavity", False),
            (shading, "show_xray", False),
            (shading, "show_specular_highlight", False),
            (shading, "use_dof", False),
        ]
        if hasattr(settings, "color_management"):
            out.append((settings, "color_management", "FOLLOW_SCENE"))
        if self.compositor is not None:
            out += self.compositor.overrides
            return out + image_output(scene, self.path, "EXR", "RGBA")
        return out + image_output(scene, self.path, "TIFF", "RGB")

    def colours(self, objects: list[Any] | None) -> list[Override]:
        """Object colours for the pass: ``objects[i]`` id ``i + 1`` (or, without objects,
        the colours of the collection's objects), every other drawn object 0.
        """
        if objects is None:
            keep = {o.as_pointer() for o in self.collection.all_objects}
            wanted = {}
        else:
            keep = set()
            wanted = {o.as_pointer(): id_color(i + 1) for i, o in enumerate(objects)}
        black = (0.0, 0.0, 0.0, 1.0)
        out: list[Override] = []
        for obj in drawn_objects(self.scene):
            key = obj.as_pointer()
            if key not in keep:
                out.append((obj, "color", wanted.get(key, black)))
        return out

    def render(self, objects: list[Any] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Render the pass: ``(ids, depth)`` (depth None without ``depth=True``)."""
        with overridden(self.settings() + self.colours(objects)):
            if self.compositor is not None:
                self.compositor.select()
            render_still(self.scene)
        if not self.depth:
            rgb = read_tiff_rgb8(self.path)
            ids = rgb[..., 0].astype(np.int32)
            if rgb[..., 1].any():
                ids += rgb[..., 1].astype(np.int32) << 8
            return ids, None
        channels = read_exr_float32(self.path)
        ids = np.rint(channels["R"] * 255.0).astype(np.int32)
        ids += np.rint(channels["G"] * 255.0).astype(np.int32) << 8
        depth = channels["A"]
        depth[depth > _FAR] = NO_DEPTH
        return ids, depth

    def close(self) -> None:
        """Remove the pass's scratch file."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)


# -- geometry per object -----------------------------------------------------------------
def mesh_arrays(mesh: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices (V, 3) float64, triangles (T, 3) int32)`` of a mesh, with ``foreach_get``."""
    mesh.calc_loop_triangles()
    tris = np.empty(len(mesh.loop_triangles) * 3, np.int32)
    mesh.loop_triangles.foreach_get("vertices", tris)
    return mesh_vertices(mesh), tris.reshape(-1, 3)


class MeshCache:
    """Local vertex coordinates and triangle indices per mesh, read once with ``foreach_get``.

    Call :meth:`forget` after changing a mesh's vertices or topology.
    """

    def __init__(self) -> None:
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, mesh: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(vertices (V, 3) float64, triangles (T, 3) int32)`` of ``mesh``, read on first use."""
        key = mesh.as_pointer()
        if key not in self._cache:
            self._cache[key] = mesh_arrays(mesh)
        return self._cache[key]

    def forget(self, mesh: Any = None) -> None:
        """Drop ``mesh`` from the cache (every mesh when None), after changing it."""
        if mesh is None:
            self._cache.clear()
        else:
            self._cache.pop(mesh.as_pointer(), None)


def evaluated_geometry(
    obj: Any, depsgraph: Any, cache: MeshCache | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(local vertices (V, 3), triangles (T, 3), world pose (4, 4))`` of ``obj`` as
    ``depsgraph`` evaluated it: modifiers, shape keys, constraints, drivers, animation
    and simulations applied, as the renderer draws it. A mesh without modifiers or shape
    keys is read once (``cache``); any other object each time.
    """
    evaluated = obj.evaluated_get(depsgraph)
    pose = np.array(evaluated.matrix_world, np.float64)
    if obj.type == "MESH" and not len(obj.modifiers) and obj.data.shape_keys is None:
        vertices, tris = (cache or MeshCache()).get(obj.data)
    elif obj.type == "MESH":
        vertices, tris = mesh_arrays(evaluated.data)
    else:  # curves, text, surfaces, metaballs: their evaluated mesh
        mesh = evaluated.to_mesh()
        try:
            vertices, tris = mesh_arrays(mesh) if mesh is not None else _NO_GEOMETRY
        finally:
            evaluated.to_mesh_clear()
    return vertices, tris, pose


_NO_GEOMETRY = (np.zeros((0, 3)), np.zeros((0, 3), np.int32))


# -- everything for one frame ------------------------------------------------------------
def camera_pose(camera: Any) -> np.ndarray:
    """The 4x4 world-from-camera matrix (Blender convention: looks along -Z, +Y up)."""
    return np.array(camera.matrix_world, dtype=np.float64)


def annotate(
    objects: list[Any],
    camera: Any,
    ids: np.ndarray,
    cache: MeshCache | None = None,
    scene: Any = None,
) -> dict[str, np.ndarray]:
    """Annotations of ``objects`` (id ``i + 1`` is ``objects[i]``) seen by ``camera``.

    Returns ``bbox_visib``, ``bbox_full`` ``(n, 4) float32``, ``px_count_visib``,
    ``px_count_all`` ``(n,) int32``, ``visib_fract`` ``(n,) float32``, ``obj_pose``
    ``(n, 4, 4) float32`` (world from object), ``K`` ``(3, 3)`` and ``cam_pose`` ``(4, 4)``
    float64. ``bbox_full`` is the box of all projected mesh vertices (it may extend past
    the frame); ``px_count_all`` counts the pixels of the unoccluded silhouette, also those
    outside the frame (as BOP's ``visib_fract``: an object cut by the frame's edge is
    partly invisible; up to one frame size beyond each edge), at least ``px_count_visib``;
    ``visib_fract = px_count_visib / px_count_all`` (0 for objects out of view). Triangles
    with a vertex behind the camera's near plane are left out of the silhouette.
    Objects and camera are read as Blender evaluates them for the frame (constraints,
    drivers, animation, simulation, modifiers: :func:`evaluated_geometry`), after any
    pending change (no ``view_layer.update()`` needed).
    """
    scene = scene if scene is not None else bpy.context.scene
    cache = cache if cache is not None else MeshCache()
    depsgraph = evaluated_depsgraph(scene)
    camera = camera.evaluated_get(depsgraph)
    height, width = ids.shape
    n = len(objects)
    geometry = [evaluated_geometry(o, depsgraph, cache) for o in objects]
    poses = np.array([pose for _, _, pose in geometry], np.float64).reshape(n, 4, 4)
    local = [(vertices, tris) for vertices, tris, _ in geometry]
    sizes = np.array([len(v) for v, _ in local], np.int64)
    offsets = np.cumsum(sizes) - sizes
    if n:
        points = np.concatenate(
            [v @ m[:3, :3].T + m[:3, 3] for (v, _), m in zip(local, poses, strict=True)]
        )
    else:
        points = np.zeros((0, 3))
    uv = project(points, camera, scene)
    z = point_depth(points, camera)
    bbox_full = np.full((n, 4), -1.0, np.float32)
    if n:
        nonempty = sizes > 0
        starts = offsets[nonempty]
        bbox_full[nonempty, 0] = np.minimum.reduceat(uv[:, 0], starts)
        bbox_full[nonempty, 1] = np.minimum.reduceat(uv[:, 1], starts)
        bbox_full[nonempty, 2] = np.maximum.reduceat(uv[:, 0], starts)
        bbox_full[nonempty, 3] = np.maximum.reduceat(uv[:, 1], starts)
    tris = [t + off for (_, t), off in zip(local, offsets, strict=True)]
    tri_index = np.concatenate(tris) if n else np.zeros((0, 3), np.int64)
    owner = np.repeat(np.arange(n), [len(t) for t in tris]) if n else np.zeros(0, np.int64)
    front = (z[tri_index] > camera.data.clip_start).all(1)
    # As BOP: the whole silhouette counts, also where it leaves the frame (a canvas of three
    # times the frame's size, the frame in its middle), so cut-off objects are less visible.
    shifted = uv[tri_index[front]] + np.array([width, height], np.float64)
    px_all = silhouette_areas(shifted, owner[front], n, 3 * width, 3 * height)
    px_visib, bbox_visib = visible_stats(ids, n)
    # The rasterizer and the GPU disagree on at most a few edge pixels (measured: 2 of
    # 5,000-23,000); never report fewer unoccluded than visible pixels.
    px_all = np.maximum(px_all, px_visib)
    visib = px_visib / np.maximum(px_all, 1)
    return {
        "bbox_visib": bbox_visib,
        "bbox_full": bbox_full,
        "px_count_visib": px_visib.astype(np.int32),
        "px_count_all": px_all.astype(np.int32),
        "visib_fract": visib.astype(np.float32),
        "obj_pose": poses.astype(np.float32),
        "K": intrinsics(camera, scene),
        "cam_pose": camera_pose(camera),
    }


class Annotator:
    """One call per view: the id pass of ``collection`` seen by ``camera``, then :func:`annotate`.

    Adds ``class_id`` (the given classes), ``instance_id`` (``1..n``, the ids in the mask)
    and ``num_objects`` to :func:`annotate`'s keys; ``pad_to`` pads the per-object arrays to
    that many rows (:func:`pad_per_object`); ``masks`` adds the id frame as ``mask`` and
    ``depth`` the depth frame as ``depth``; ``normals`` adds unit surface normals in the
    OpenCV camera frame as ``normals`` (:class:`~blender_side.normals.NormalPass`, a Cycles
    render of its own). With ``renderer`` of ``engine="raster"`` ids and depth come from
    the frame's own raster (:meth:`~blender_side.render.Renderer.labels`), not from an id
    pass. :attr:`timings` holds the last call's ``ids_ms`` and
    ``annotate_ms`` (and ``normals_ms``).
    """

    def __init__(
        self,
        collection: Any,
        camera: Any,
        width: int,
        height: int,
        *,
        masks: bool = False,
        depth: bool = False,
        normals: bool = False,
        pad_to: int | None = None,
        scene: Any = None,
        renderer: Any = None,
    ) -> None:
        # engine="raster" draws ids and depth with the frame (blender_side.raster): no pass.
        self.raster = renderer if getattr(renderer, "engine", None) == "raster" else None
        if self.raster is not None:
            self.raster.labelled = collection
        self.id_pass = (
            None
            if self.raster
            else IdPass(collection, camera, width, height, depth=depth, scene=scene)
        )
        self.depth = bool(depth)
        self.normal_pass = (
            NormalPass(collection, camera, width, height, scene=scene) if normals else None
        )
        self.camera, self.masks, self.pad_to = camera, bool(masks), pad_to
        self.cache = MeshCache()
        self.timings: dict[str, float] = {}
        #: The objects of the last call (id ``i + 1`` is ``last_objects[i]``), for checks.
        self.last_objects: list[Any] = []
        #: The id frame of the last call (what :mod:`blender_side.label_check` checks).
        self.last_ids: np.ndarray | None = None

    def __call__(
        self, objects: list[Any], classes: np.ndarray, scene: Any = None
    ) -> dict[str, Any]:
        """Annotations of ``objects`` (id ``i + 1`` is ``objects[i]``, of class ``classes[i]``)."""
        t0 = time.perf_counter()
        ids, depth = self._ids_and_depth(objects)
        t1 = time.perf_counter()
        info: dict[str, Any] = annotate(objects, self.camera, ids, self.cache, scene)
        self.last_objects, self.last_ids = list(objects), ids
        info["class_id"] = np.array(classes, np.int32)
        info["instance_id"] = np.arange(1, len(objects) + 1, dtype=np.int32)
        info["num_objects"] = len(objects)
        if self.pad_to is not None:
            pad_per_object(info, self.pad_to)
        if self.masks:
            info["mask"] = ids
        if depth is not None:
            info["depth"] = depth
        t2 = time.perf_counter()
        self.timings = {"ids_ms": (t1 - t0) * 1000, "annotate_ms": (t2 - t1) * 1000}
        if self.normal_pass is not None:
            info["normals"] = self.normal_pass.render()
            self.timings["normals_ms"] = (time.perf_counter() - t2) * 1000
        return info

    def _ids_and_depth(self, objects: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
        """The id pass's render, or the raster frame's own ids and depth."""
        if self.id_pass is not None:
            return self.id_pass.render(list(objects))
        ids, depth = self.raster.labels()
        return renumbered(ids, self.raster.drawn_ids, objects), (depth if self.depth else None)

    def close(self) -> None:
        """Remove the passes' scratch files."""
        if self.id_pass is not None:
            self.id_pass.close()
        if self.normal_pass is not None:
            self.normal_pass.close()


PER_OBJECT_KEYS = (
    "class_id",
    "instance_id",
    "bbox_visib",
    "bbox_full",
    "px_count_visib",
    "px_count_all",
    "visib_fract",
    "obj_pose",
)


def pad_per_object(info: dict[str, Any], rows: int) -> None:
    """Pad the per-object arrays of ``info`` to ``rows`` entries (``-1``; poses 0).

    Gymnasium's vector envs batch info arrays by shape, which needs the same length in
    every sub-env; ``info["num_objects"]`` tells how many rows are real.
    """
    for key in PER_OBJECT_KEYS:
        value = info[key]
        fill = 0 if key == "obj_pose" else -1
        padded = np.full((rows, *value.shape[1:]), fill, dtype=value.dtype)
        padded[: len(value)] = value
        info[key] = padded


__all__ = [
    "NO_DEPTH",
    "PER_OBJECT_KEYS",
    "Annotator",
    "IdPass",
    "MeshCache",
    "annotate",
    "camera_pose",
    "evaluated_geometry",
    "mesh_arrays",
    "id_color",
    "renumbered",
    "pad_per_object",
    "set_instance_ids",
]
