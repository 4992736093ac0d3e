"""The raster engine: a scene's evaluated meshes drawn with Blender's ``gpu`` module.

``Renderer(engine="raster")`` draws every visible mesh of the evaluated scene into an
offscreen framebuffer of its own and reads the pixels straight into the frame file that
travels to the trainer (:mod:`btgym.wire.frame_files`): no render pipeline, no image
file. One draw fills two colour targets with the same triangles and matrices: the frame
(RGBA8) and, when labels are asked for, ``(instance id, depth)`` (RG32F), so ids and
depth describe exactly the pixels drawn. The projection is the scene camera's own
(``calc_matrix_camera`` at the render size and pixel aspect, ``matrix_world`` inverted),
as Workbench's. The look comes from the scene's Workbench settings
(:mod:`blender_side.raster_look`; shadows: :mod:`blender_side.raster_shadow`;
``docs/raster.md``).

A drawing context in background mode: Blender 5.1 and later make one with ``gpu.init()``;
5.0 makes one with its first render (a throwaway 8x8 Workbench render,
:func:`btgym.wire.gpu_backend.first_render`). Where neither gives one (Blender 3.x and 4.x
run with ``--background``: "GPU functions for drawing are not available in background
mode") :func:`ensure_drawing_context` raises a :class:`~btgym.errors.RenderError`.

Geometry is read per mesh with ``foreach_get`` (loop triangles, corner normals) into
numpy and uploaded as one vertex buffer per material slot; the batches are kept while
the mesh's vertex positions and counts stay the same (checked each frame with one
``foreach_get`` of the positions).
"""

from __future__ import annotations

from typing import Any

import bpy
import gpu
import numpy as np
from mathutils import Matrix

from blender_side import matcaps, raster_look, raster_shadow
from btgym.errors import RenderError
from btgym.wire import gpu_backend
from btgym.wire.frame_files import WRITER

#: Object types drawn (their evaluated geometry as a mesh).
GEOMETRY_TYPES = frozenset({"MESH", "CURVE", "SURFACE", "FONT", "META"})


def ensure_drawing_context() -> None:
    """Make Blender's drawing context in this (background) process, or raise RenderError."""
    try:
        gpu.types.GPUOffScreen(1, 1).free()
        return
    except SystemError:
        pass
    try:
        init = getattr(gpu, "init", None)
        init() if init is not None else gpu_backend.first_render()
        gpu.types.GPUOffScreen(1, 1).free()
    except (SystemError, RuntimeError) as exc:
        raise RenderError(
            f"expected Blender's gpu module to draw in this process for engine='raster', but "
            f"Blender {bpy.app.version_string} cannot ({exc}); the raster engine needs bpy 5.0 "
            "or later (background mode) or a display; use engine='workbench' here"
        ) from exc


class _MeshBatches:
    """One mesh's vertex buffers per material slot, with the positions they were made from."""

    def __init__(self, positions: np.ndarray, batches: list[tuple[int, Any]]) -> None:
        self.positions = positions
        self.batches = batches


class Raster:
    """Draws a scene into ``width`` x ``height`` pixels; see the module docstring."""

    def __init__(self, width: int, height: int) -> None:
        ensure_drawing_context()
        self.width, self.height = int(width), int(height)
        size = (self.width, self.height)
        self._color = gpu.types.GPUTexture(size, format="RGBA8")
        self._label = gpu.types.GPUTexture(size, format="RG32F")
        self._depth = gpu.types.GPUTexture(size, format="DEPTH_COMPONENT32F")
        self._frame_only = gpu.types.GPUFrameBuffer(depth_slot=self._depth, color_slots=self._color)
        self._with_labels = gpu.types.GPUFrameBuffer(
            depth_slot=self._depth, color_slots=(self._color, self._label)
        )
        self._label_only = gpu.types.GPUFrameBuffer(color_slots=self._label)
        self._shaders: dict[tuple[Any, ...], Any] = {}
        self._uses_material: dict[tuple[Any, ...], bool] = {}  # flat shaders drop it
        self._material_now = False
        self._matcaps = matcaps.MatcapTextures()
        # RGB straight from the driver: dropping alpha in numpy (a 3-byte inner axis) cost
        # ~15x the driver's conversion at 640x512.
        self._rgb = gpu.types.Buffer("UBYTE", self.width * self.height * 3)
        self._labels = gpu.types.Buffer("FLOAT", self.width * self.height * 2)
        self._cache: dict[int, _MeshBatches] = {}
        self._frame_block: Any = None  # the frame's uniform buffer, made on first use
        self._shadow: raster_shadow.ShadowMap | None = None  # made for the first shadow
        self._empty_map: Any = None
        #: Objects whose instance id is their colour (``annotations.id_color``), or None.
        self.labelled: Any = None
        self.drawn_ids: dict[Any, int] = {}
        self._drawn_labels = False

    # -- drawing ---------------------------------------------------------------------
    def draw(self, scene: Any, depsgraph: Any) -> np.ndarray:
        """Draw ``scene`` as evaluated in ``depsgraph``; a fresh ``(H, W, 3) uint8`` frame file."""
        camera = scene.camera
        if camera is None:
            raise RenderError(f"expected scene {scene.name!r} to have a camera, got none")
        camera_eval = camera.evaluated_get(depsgraph)
        render = scene.render
        projection = camera_eval.calc_matrix_camera(
            depsgraph,
            x=self.width,
            y=self.height,
            scale_x=render.pixel_aspect_x,
            scale_y=render.pixel_aspect_y,
        )
        view = camera_eval.matrix_world.inverted()
        look = raster_look.read_look(scene, view)
        matcap = None
        if look.matcap is not None:
            matcap = self._matcaps.get(look.matcap, look.specular)
            look.specular = matcap.specular is not None
        labels = self.labelled is not None
        key = raster_look.shader_key(look, labels)
        shader = self._shaders.get(key)
        if shader is None:
            shader = self._shaders[key] = raster_look.make_shader(look, labels)
            self._uses_material[key] = _has_uniform(shader, "material")
        self._material_now = self._uses_material[key]
        ids = self._instance_ids() if labels else {}
        framebuffer = self._with_labels if labels else self._frame_only
        with self._frame_only.bind():
            self._frame_only.clear(color=look.background, depth=1.0)
        if labels:
            with self._label_only.bind():
                self._label_only.clear(color=(0.0, 0.0, 0.0, 0.0))
        items = [(obj, matrix, self._batches(obj)) for obj, matrix in self._visible(depsgraph)]
        shadow = None
        if look.shadow > 0.0:
            shadow = self._draw_shadow(look, view, items, camera_eval, scene)
        with framebuffer.bind():
            gpu.state.depth_test_set("LESS_EQUAL")
            gpu.state.depth_mask_set(True)
            gpu.state.face_culling_set("NONE")
            gpu.state.blend_set("NONE")
            shader.bind()
            ortho = camera_eval.data.type == "ORTHO"
            self._scene_uniforms(shader, look, projection, ortho, shadow, matcap)
            for obj, matrix, batches in items:
                object_id = ids.get(obj.original, 0)
                self._draw_object(shader, obj, batches, view @ matrix, look, object_id)
            gpu.state.depth_test_set("NONE")
            framebuffer.read_color(0, 0, self.width, self.height, 3, 0, "UBYTE", data=self._rgb)
        self._drawn_labels = labels
        #: Instance id each labelled object was drawn with (original object -> id).
        self.drawn_ids = ids
        rgb = np.frombuffer(self._rgb, np.uint8).reshape(self.height, self.width, 3)
        frame = WRITER.create(self.height * self.width * 3).reshape(self.height, self.width, 3)
        np.copyto(frame, rgb[::-1])  # GPU rows run bottom-up
        return frame

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids (H, W) int32, depth (H, W) float32)`` of the last frame drawn with labels.

        Depth is the distance along the camera's view axis, 0 where nothing was drawn.
        """
        if not self._drawn_labels:
            raise RenderError(
                "expected a frame drawn with labels (set Raster.labelled before drawing), got none"
            )
        with self._with_labels.bind():
            self._with_labels.read_color(
                0, 0, self.width, self.height, 2, 1, "FLOAT", data=self._labels
            )
        pairs = np.frombuffer(self._labels, np.float32).reshape(self.height, self.width, 2)
        pairs = pairs[::-1]
        return pairs[..., 0].astype(np.int32), np.ascontiguousarray(pairs[..., 1])

    def _instance_ids(self) -> dict[Any, int]:
        """Id per labelled object: its colour read as ``annotations.id_color`` writes it."""
        ids = {}
        for obj in self.labelled.all_objects:
            red, green = obj.color[0], obj.color[1]
            ids[obj] = int(round(red * 255.0)) + (int(round(green * 255.0)) << 8)
        return ids

    def _draw_shadow(
        self, look: Any, view: Matrix, items: list, camera: Any, scene: Any
    ) -> tuple[Matrix, float] | None:
        """Draw the shadow map; ``(view space -> shadow map coordinates, depth bias)``."""
        drawn = [(matrix, batches) for _, matrix, batches in items if batches]
        if not drawn:
            return None
        corners = np.concatenate(
            [raster_shadow.bounds_corners(obj, m) for obj, m, batches in items if batches]
        )
        seen = raster_shadow.seen_corners(camera, scene, corners)
        light_from_world, clip = raster_shadow.light_matrices(look.shadow_world, corners, seen)
        if self._shadow is None:
            self._shadow = raster_shadow.ShadowMap()
        self._shadow.draw(clip @ light_from_world, drawn)
        to_texture = Matrix.Translation((0.5, 0.5, 0.5)) @ Matrix.Diagonal((0.5, 0.5, 0.5, 1.0))
        to_map = to_texture @ clip @ light_from_world @ view.inverted()
        texel = 2.0 / min(clip[0][0], clip[1][1]) / self._shadow.size
        depth_range = 2.0 / abs(clip[2][2])
        return to_map, 2.0 * texel / depth_range

    def _scene_uniforms(
        self,
        shader: Any,
        look: Any,
        projection: Matrix,
        ortho: bool,
        shadow: tuple[Matrix, float] | None,
        matcap: matcaps.Matcap | None,
    ) -> None:
        matrix, bias = shadow if shadow is not None else (None, 0.0)
        block = raster_look.frame_block(look, projection, ortho, matrix, bias)
        if self._frame_block is None:
            self._frame_block = gpu.types.GPUUniformBuf(block)
        else:
            self._frame_block.update(block)
        shader.uniform_block("frame", self._frame_block)
        if matcap is not None:
            shader.uniform_sampler("matcap", matcap.diffuse)
            if matcap.specular is not None:
                shader.uniform_sampler("matcap_specular", matcap.specular)
        if look.shadow > 0.0:
            shadow_map = self._shadow.texture if shadow is not None else self._no_shadow()
            shader.uniform_sampler("shadow_map", shadow_map)

    @staticmethod
    def _visible(depsgraph: Any):
        """``(evaluated object, world matrix)`` of every object a render would show."""
        for instance in depsgraph.object_instances:
            obj = instance.object
            if obj.type not in GEOMETRY_TYPES:
                continue
            original = obj.original
            if original.hide_render or not original.visible_camera:
                continue
            yield obj, instance.matrix_world.copy()

    def _no_shadow(self) -> Any:
        """A 1x1 map far behind everything (a scene with nothing drawn: nothing shadowed)."""
        if self._empty_map is None:
            data = gpu.types.Buffer("FLOAT", 1, [1e30])
            self._empty_map = gpu.types.GPUTexture((1, 1), format="R32F", data=data)
        return self._empty_map

    def _draw_object(
        self, shader: Any, obj: Any, batches: list, model_view: Matrix, look: Any, id_: int
    ) -> None:
        if not batches:
            return
        shader.uniform_float("model_view", model_view)
        for slot, batch in batches:
            color, roughness, metallic = raster_look.surface_of(obj, slot, look)
            shader.uniform_float("surface", (*color, float(id_)))
            if self._material_now:
                shader.uniform_float("material", (roughness, metallic, 0.0, 0.0))
            batch.draw(shader)

    # -- geometry --------------------------------------------------------------------
    def _batches(self, obj: Any) -> list[tuple[int, Any]]:
        """The object's batches per material slot, rebuilt when its geometry changed."""
        owned = obj.type != "MESH" or len(obj.modifiers) > 0
        mesh = obj.to_mesh() if obj.type != "MESH" else obj.data
        try:
            key = obj.original.as_pointer() if owned else obj.original.data.as_pointer()
            positions = np.empty(len(mesh.vertices) * 3, np.float32)
            mesh.vertices.foreach_get("co", positions)
            cached = self._cache.get(key)
            if cached is None or not np.array_equal(cached.positions, positions):
                cached = _MeshBatches(positions, self._upload(mesh, positions))
                self._cache[key] = cached
            return cached.batches
        finally:
            if obj.type != "MESH":
                obj.to_mesh_clear()

    def _upload(self, mesh: Any, positions: np.ndarray) -> list[tuple[int, Any]]:
        """Vertex buffers of ``mesh``'s triangles, one per material slot used."""
        tri_count = len(mesh.loop_triangles)
        if tri_count == 0:
            return []
        corners = np.empty(tri_count * 3, np.int32)
        mesh.loop_triangles.foreach_get("loops", corners)
        slots = np.empty(tri_count, np.int32)
        mesh.loop_triangles.foreach_get("material_index", slots)
        vertex_of = np.empty(len(mesh.loops), np.int32)
        mesh.loops.foreach_get("vertex_index", vertex_of)
        normals = corner_normals(mesh)
        points = positions.reshape(-1, 3)[vertex_of[corners]]
        corner_normal = normals[corners]
        order = np.argsort(slots, kind="stable")
        sorted_slots = slots[order]
        starts = np.flatnonzero(np.r_[True, sorted_slots[1:] != sorted_slots[:-1]])
        ends = np.r_[starts[1:], tri_count]
        batches = []
        for start, end in zip(starts, ends, strict=True):
            tris = order[start:end]
            index = (tris[:, None] * 3 + np.arange(3)).reshape(-1)
            batches.append((int(sorted_slots[start]), _batch(points[index], corner_normal[index])))
        return batches

    def close(self) -> None:
        """Drop the cached batches and textures (Blender frees them with their last user)."""
        self._cache.clear()


def _has_uniform(shader: Any, name: str) -> bool:
    """Whether ``shader`` kept uniform ``name`` (compilers drop the ones a variant ignores)."""
    try:
        return shader.uniform_from_name(name) >= 0
    except ValueError:  # "uniform ... not found"
        return False


def corner_normals(mesh: Any) -> np.ndarray:
    """The mesh's normal at every face corner ``(L, 3) float32`` (smooth, sharp and flat)."""
    normals = np.empty(len(mesh.loops) * 3, np.float32)
    if hasattr(mesh, "corner_normals"):  # Blender 4.1 on
        mesh.corner_normals.foreach_get("vector", normals)
    else:
        mesh.calc_normals_split()
        mesh.loops.foreach_get("normal", normals)
    return normals.reshape(-1, 3)


_FORMAT: Any = None


def _batch(points: np.ndarray, normals: np.ndarray) -> Any:
    """A triangle-list batch of ``points`` and ``normals`` (3 per triangle)."""
    global _FORMAT
    if _FORMAT is None:
        _FORMAT = gpu.types.GPUVertFormat()
        _FORMAT.attr_add(id="pos", comp_type="F32", len=3, fetch_mode="FLOAT")
        _FORMAT.attr_add(id="nor", comp_type="F32", len=3, fetch_mode="FLOAT")
    buffer = gpu.types.GPUVertBuf(_FORMAT, len(points))
    buffer.attr_fill("pos", np.ascontiguousarray(points, np.float32))
    buffer.attr_fill("nor", np.ascontiguousarray(normals, np.float32))
    return gpu.types.GPUBatch(type="TRIS", buf=buffer)


__all__ = ["GEOMETRY_TYPES", "Raster", "corner_normals", "ensure_drawing_context"]
