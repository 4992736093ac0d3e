"""``btgym/Parts-v0``: a T-LESS-like pile of texture-less industrial parts, with annotations.

Everything is generated procedurally from numpy (no downloads):

- ``num_classes`` part classes (default 6): a cube, a flanged bushing (tube with a hole),
  a chamfered block, a gear-like knob (Gielis supershape), an L-bracket and a stepped plug;
  classes beyond 6 are supershapes with fixed parameters per class. A few hundred
  vertices each; meshes are built with ``foreach_set``.
- A ground box, up to ``max_occluders`` occluders (supershapes with random parameters),
  random grey-ish materials, random studio light / sun and background colours.

An *arrangement* (one episode): ``n`` parts drawn by the class probabilities and the
occluders drawn with ``occluder_prob`` are dropped from a jittered grid above the ground
and simulated with Blender's rigid-body world until they stop moving (at most
``max_settle_frames`` frames; cheap collision shapes), then frozen. Every ``reset`` and
every ``step`` renders a new view from a camera on a hemisphere around the pile (random
azimuth, elevation and radius) looking at the pile. An episode is truncated after
``views`` steps; the next reset starts a new arrangement.

Action: the randomization parameters, a ``Box`` whose entries are named in
``param_names`` (see ``docs/scenes.md`` for the table of bounds and defaults). Parameters
sent with a step take effect from the next arrangement started by an unseeded
``reset()`` or by the servers' (seeded) autoreset, see ``autoreset``; a seeded
``reset(seed=s)`` discards them, so that it is reproducible whatever actions came before.
``reset(options={"params": {...}})`` and ``set_params({...})`` (through ``env.call``) set
them explicitly; ``get_params()`` reads them.

Observation: the rendered frame ``(height, width, 3) uint8``. Annotations are in ``info``
(variable length, see :func:`blender_side.annotations.annotate`): ``class_id``,
``bbox_visib``, ``bbox_full``, ``px_count_visib``, ``px_count_all``, ``visib_fract`` (as
BOP's), ``obj_pose``, ``K``, ``cam_pose``, and ``mask`` / ``depth`` on request
(``masks=True``, ``depth=True``). ``options={"layout": {...}}`` places objects, box
occluders and the camera explicitly (see ``docs/scenes.md``).
"""

from __future__ import annotations

import colorsys
import math
import time
from typing import Any

import bpy
import numpy as np
from gymnasium import spaces
from mathutils import Vector

from blender_side import Scene
from blender_side.annotations import IdPass, MeshCache, annotate, set_instance_ids
from blender_side.render import Renderer
from envs.cube import clear_scene

# -- geometry (numpy only) -----------------------------------------------------------------
CUBE_EDGE = 0.8  # class 0 is an axis-aligned cube of this edge length, centred on its origin
START_FRAME = 1
SETTLE_CHECK = 4  # frames between two "has everything stopped?" checks
SETTLE_TOLERANCE = 0.025  # largest move of a body over SETTLE_CHECK frames that counts as rest
TIME_SCALE = 3.0  # simulated seconds per 1/24 s frame, x3: a pile settles in fewer frames
SUBSTEPS = 10  # Bullet steps per frame (12.5 ms each at TIME_SCALE 3)
CELL = 1.5  # drop grid spacing (parts have a bounding radius below 0.75)
PARK = 500.0  # where unused slots wait, far from the pile


def gielis(angle: np.ndarray, m: float, n1: float, n2: float, n3: float) -> np.ndarray:
    """The Gielis superformula ``r(angle)`` with ``a = b = 1``."""
    t = m * angle / 4.0
    with np.errstate(divide="ignore", over="ignore"):
        r = (np.abs(np.cos(t)) ** n2 + np.abs(np.sin(t)) ** n3) ** (-1.0 / n1)
    return np.nan_to_num(r, nan=1.0, posinf=1.0)


def ring_mesh(
    rings: np.ndarray,
    bottom: np.ndarray | None = None,
    top: np.ndarray | None = None,
    wrap: bool = False,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Vertices and polygons of stacked rings ``(R, S, 3)`` joined by quads.

    The ends get a pole vertex (``bottom``/``top`` points, triangle fans) or, when None, an
    n-gon cap; ``wrap=True`` joins the last ring to the first instead (a torus-like tube).
    """
    count, size = rings.shape[:2]
    index = np.arange(count * size).reshape(count, size)
    after = np.roll(np.arange(size), -1)
    pairs = [(j, j + 1) for j in range(count - 1)] + ([(count - 1, 0)] if wrap else [])
    quads = [np.stack([index[a], index[a][after], index[b][after], index[b]], 1) for a, b in pairs]
    polygons: list[np.ndarray] = list(np.concatenate(quads)) if quads else []
    vertices = [rings.reshape(-1, 3)]
    if not wrap:
        next_vertex = count * size
        if bottom is None:
            polygons.append(index[0][::-1])
        else:
            vertices.append(np.asarray(bottom, np.float64)[None])
            fan = np.stack([np.full(size, next_vertex), index[0][after], index[0]], 1)
            polygons.extend(fan)
            next_vertex += 1
        if top is None:
            polygons.append(index[-1])
        else:
            vertices.append(np.asarray(top, np.float64)[None])
            polygons.extend(np.stack([np.full(size, next_vertex), index[-1], index[-1][after]], 1))
    return np.concatenate(vertices), polygons


def orient_outward(vertices: np.ndarray, polygons: list[np.ndarray]) -> list[np.ndarray]:
    """Reverse every polygon when the closed mesh's signed volume is negative."""
    volume = 0.0
    for poly in polygons:
        a = vertices[poly[0]]
        b, c = vertices[poly[1:-1]], vertices[poly[2:]]
        volume += float(np.einsum("ij,ij->", np.cross(b, c), np.broadcast_to(a, b.shape)))
    return polygons if volume >= 0 else [p[::-1] for p in polygons]


def normalized(vertices: np.ndarray, half_extent: float) -> np.ndarray:
    """Centre the bounding box on the origin and scale its largest half-side to ``half_extent``."""
    low, high = vertices.min(0), vertices.max(0)
    centred = vertices - (low + high) / 2
    return centred * (half_extent / max(float(np.abs(centred).max()), 1e-9))


def supershape(
    lon: tuple[float, float, float, float],
    lat: tuple[float, float, float, float],
    segments: int = 32,
    rings: int = 14,
    z_scale: float = 1.0,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A closed 3D supershape: ``r1 = gielis(theta, *lon)`` times ``r2 = gielis(phi, *lat)``."""
    theta = np.linspace(-np.pi, np.pi, segments, endpoint=False)
    phi = np.linspace(-np.pi / 2, np.pi / 2, rings + 2)[1:-1]
    r1, r2 = gielis(theta, *lon), gielis(phi, *lat)
    ring = np.stack(
        [
            r1[None, :] * np.cos(theta)[None, :] * (r2 * np.cos(phi))[:, None],
            r1[None, :] * np.sin(theta)[None, :] * (r2 * np.cos(phi))[:, None],
            np.broadcast_to((r2 * np.sin(phi) * z_scale)[:, None], (rings, segments)),
        ],
        axis=-1,
    )
    poles = gielis(np.array([-np.pi / 2, np.pi / 2]), *lat) * z_scale
    return ring_mesh(ring, bottom=np.array([0, 0, -poles[0]]), top=np.array([0, 0, poles[1]]))


def lathe(profile: np.ndarray, segments: int = 28) -> tuple[np.ndarray, list[np.ndarray]]:
    """Revolve an ``(r, z)`` profile about z. Ends on the axis (``r = 0``) become poles; a
    profile that never touches the axis is closed into a ring (a tube with a hole)."""
    profile = np.asarray(profile, np.float64)
    theta = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    on_axis = profile[:, 0] <= 1e-9
    inner = profile[~on_axis]
    rings = np.stack(
        [
            inner[:, :1] * np.cos(theta)[None],
            inner[:, :1] * np.sin(theta)[None],
            np.broadcast_to(inner[:, 1:2], (len(inner), segments)),
        ],
        axis=-1,
    )
    if not on_axis.any():
        return ring_mesh(rings, wrap=True)
    bottom = np.array([0, 0, profile[0, 1]]) if on_axis[0] else None
    top = np.array([0, 0, profile[-1, 1]]) if on_axis[-1] else None
    return ring_mesh(rings, bottom=bottom, top=top)


def prism(polygon: np.ndarray, half_height: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Extrude a counter-clockwise 2D polygon (convex or not) along z; n-gon caps."""
    polygon = np.asarray(polygon, np.float64)
    rings = np.stack(
        [np.c_[polygon, np.full(len(polygon), z)] for z in (-half_height, half_height)]
    )
    return ring_mesh(rings)


def chamfered_block(
    half: tuple[float, float, float], chamfer: float
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A box with every edge chamfered: four octagon rings, n-gon caps."""
    hx, hy, hz = half

    def octagon(ax: float, ay: float, c: float) -> np.ndarray:
        return np.array(
            [
                [ax, -ay + c],
                [ax, ay - c],
                [ax - c, ay],
                [-ax + c, ay],
                [-ax, ay - c],
                [-ax, -ay + c],
                [-ax + c, -ay],
                [ax - c, -ay],
            ]
        )

    small, big = octagon(hx - chamfer, hy - chamfer, chamfer), octagon(hx, hy, chamfer)
    layers = [(small, -hz), (big, -hz + chamfer), (big, hz - chamfer), (small, hz)]
    rings = np.stack([np.c_[p, np.full(8, z)] for p, z in layers])
    return ring_mesh(rings)


def part_geometry(k: int) -> tuple[str, np.ndarray, list[np.ndarray], str]:
    """``(name, vertices, polygons, collision shape)`` of part class ``k``."""
    if k == 0:
        h = CUBE_EDGE / 2
        square = np.array([[h, -h], [h, h], [-h, h], [-h, -h]])
        vertices, polygons = prism(square, h)
        return "cube", vertices, polygons, "BOX"
    if k == 1:  # a flanged bushing: a tube with a hole and a collar at the bottom
        profile = [[0.22, -0.35], [0.5, -0.35], [0.5, -0.22], [0.36, -0.22], [0.36, 0.35]]
        profile += [[0.22, 0.35]]
        vertices, polygons = lathe(np.array(profile), 32)
        return "bushing", vertices, polygons, "CYLINDER"
    if k == 2:
        vertices, polygons = chamfered_block((0.55, 0.32, 0.2), 0.07)
        return "block", vertices, polygons, "BOX"
    if k == 3:  # a knob with six lobes: a supershape squashed to a disc
        vertices, polygons = supershape((6, 2.5, 4.0, 4.0), (2, 6.0, 6.0, 6.0), 48, 10, 0.45)
        return "knob", normalized(vertices, 0.5), polygons, "CYLINDER"
    if k == 4:  # an L-bracket: a non-convex prism
        outline = np.array([[-0.5, -0.35], [0.5, -0.35], [0.5, -0.15], [-0.3, -0.15]])
        outline = np.r_[outline, [[-0.3, 0.45], [-0.5, 0.45]]]
        vertices, polygons = prism(outline, 0.22)
        return "bracket", vertices, polygons, "CONVEX_HULL"
    if k == 5:  # a stepped plug with a chamfered tip
        profile = [[0.0, -0.5], [0.3, -0.5], [0.3, 0.0], [0.24, 0.06], [0.18, 0.06]]
        profile += [[0.18, 0.42], [0.14, 0.5], [0.0, 0.5]]
        vertices, polygons = lathe(np.array(profile), 28)
        return "plug", vertices, polygons, "CYLINDER"
    rng = np.random.default_rng(1000 + k)  # fixed per class, independent of the env's seed
    lon = (int(rng.integers(2, 9)), *rng.uniform(1.5, 8.0, 3))
    lat = (int(rng.integers(1, 5)), *rng.uniform(1.5, 8.0, 3))
    vertices, polygons = supershape(lon, lat, 32, 14, float(rng.uniform(0.4, 1.0)))
    return f"supershape{k}", normalized(vertices, 0.5), polygons, "CONVEX_HULL"


def random_supershape(rng: np.random.Generator) -> np.ndarray:
    """Vertices of an occluder: a supershape with random parameters (fixed topology)."""
    lon = (int(rng.integers(1, 9)), *np.exp(rng.uniform(np.log(0.5), np.log(8.0), 3)))
    lat = (int(rng.integers(0, 7)), *np.exp(rng.uniform(np.log(0.5), np.log(8.0), 3)))
    vertices, _ = supershape(lon, lat, 24, 10, float(rng.uniform(0.3, 1.0)))
    return normalized(vertices, 0.5)


def random_rotations(rng: np.random.Generator, count: int) -> np.ndarray:
    """Uniformly random unit quaternions ``(count, 4)`` as ``w, x, y, z``."""
    q = rng.normal(size=(count, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


# -- Blender helpers -----------------------------------------------------------------------
def polygon_mesh(name: str, vertices: np.ndarray, polygons: list[np.ndarray]) -> Any:
    """A mesh from vertices and polygons of any sizes, with ``foreach_set`` (no bpy.ops).

    Faces meeting at more than 30 degrees get sharp edges; the rest is shaded smooth.
    """
    polygons = orient_outward(vertices, polygons)
    sizes = np.array([len(p) for p in polygons], np.int32)
    loops = np.concatenate(polygons).astype(np.int32)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.astype(np.float32).reshape(-1))
    mesh.loops.add(len(loops))
    mesh.loops.foreach_set("vertex_index", loops)
    mesh.polygons.add(len(sizes))
    mesh.polygons.foreach_set("loop_start", (np.cumsum(sizes) - sizes).astype(np.int32))
    mesh.polygons.foreach_set("loop_total", sizes)
    mesh.update(calc_edges=True)
    mesh.validate()
    mark_sharp_edges(mesh, math.radians(30.0))
    mesh.materials.append(None)  # one slot; objects link their own material to it
    return mesh


def mark_sharp_edges(mesh: Any, angle: float) -> None:
    """Shade smooth, with edges whose faces meet at more than ``angle`` marked sharp."""
    loop_edges = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("edge_index", loop_edges)
    totals = np.empty(len(mesh.polygons), np.int32)
    mesh.polygons.foreach_get("loop_total", totals)
    normals = np.empty(len(mesh.polygons) * 3, np.float32)
    mesh.polygons.foreach_get("normal", normals)
    normals = normals.reshape(-1, 3)
    faces = np.repeat(np.arange(len(totals)), totals)
    order = np.argsort(loop_edges, kind="stable")
    edges, faces = loop_edges[order], faces[order]
    twin = edges[1:] == edges[:-1]
    cosine = np.einsum("ij,ij->i", normals[faces[:-1][twin]], normals[faces[1:][twin]])
    sharp = np.ones(len(mesh.edges), bool)  # edges without exactly two faces stay sharp
    sharp[edges[:-1][twin]] = cosine < math.cos(angle)
    attribute = mesh.attributes.get("sharp_edge") or mesh.attributes.new(
        "sharp_edge", "BOOLEAN", "EDGE"
    )
    attribute.data.foreach_set("value", sharp)
    mesh.polygons.foreach_set("use_smooth", np.ones(len(totals), bool))
    mesh.update()


def look_at(location: np.ndarray, target: np.ndarray) -> Any:
    """Rotation (Euler) of a camera at ``location`` looking at ``target`` with +z up."""
    direction = Vector(tuple(target)) - Vector(tuple(location))
    return direction.to_track_quat("-Z", "Y").to_euler()


def surface_material(name: str) -> Any:
    """A material with a Principled BSDF; colours are set on it and its viewport colour."""
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    return material


def set_surface(material: Any, color: np.ndarray, roughness: float, brightness: float) -> None:
    """Workbench shows ``diffuse_color`` (scaled by ``brightness``: it has no light
    strength); Cycles and EEVEE the BSDF's base colour lit by the sun."""
    lit = np.clip(color * brightness, 0.0, 1.0)
    material.diffuse_color = (*lit.tolist(), 1.0)
    material.roughness = float(roughness)
    material.metallic = 0.0
    bsdf = material.node_tree.nodes.get("Principled BSDF") if material.node_tree else None
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = (*color.tolist(), 1.0)
        bsdf.inputs["Roughness"].default_value = float(roughness)


def hsv_colors(rng: np.random.Generator, count: int, sat_max: float, value: tuple) -> np.ndarray:
    hue = rng.uniform(0.0, 1.0, count)
    sat = rng.uniform(0.0, sat_max, count)
    val = rng.uniform(value[0], value[1], count)
    return np.array([colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hue, sat, val, strict=True)])


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """Colours are drawn in display (sRGB) terms, Blender's colour properties are linear."""
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


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


# -- the randomization parameters ----------------------------------------------------------
#: ``(name, low, high, default)`` after the ``num_classes`` class probabilities. ``None``
#: as a bound of the counts stands for ``max_objects``.
SCALAR_PARAMS: list[tuple[str, float, float | None, float]] = [
    ("count_min", 1.0, None, 6.0),
    ("count_max", 1.0, None, 12.0),
    ("occluder_prob", 0.0, 1.0, 0.5),
    ("light_min", 0.2, 3.0, 0.7),
    ("light_max", 0.2, 3.0, 1.3),
    ("roughness_min", 0.0, 1.0, 0.25),
    ("roughness_max", 0.0, 1.0, 0.75),
    ("value_min", 0.0, 1.0, 0.45),
    ("value_max", 0.0, 1.0, 0.9),
    ("saturation_max", 0.0, 1.0, 0.1),
    ("background_min", 0.0, 1.0, 0.0),
    ("background_max", 0.0, 1.0, 0.7),
    ("radius_min", 3.0, 30.0, 6.0),
    ("radius_max", 3.0, 30.0, 10.0),
    ("elevation_min", 5.0, 89.0, 25.0),
    ("elevation_max", 5.0, 89.0, 80.0),
]
#: Workbench studio lights drawn from (``rim.sl`` is left out: it leaves the pile almost black).
STUDIO_LIGHTS = ("Default", "basic.sl", "outdoor.sl", "paint.sl", "studio.sl")


class PartsScene(Scene):
    """A T-LESS-like pile of procedurally generated industrial parts, viewed from random poses."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    name = "Parts"

    def __init__(
        self,
        width: int = 640,
        height: int = 512,
        engine: str = "workbench",
        samples: int | None = None,
        num_classes: int = 6,
        max_objects: int = 20,
        max_occluders: int = 4,
        views: int = 8,
        masks: bool = False,
        depth: bool = False,
        shadows: bool = True,
        lens: float = 50.0,
        max_settle_frames: int = 80,
        pad_info: bool = False,
    ) -> None:
        super().__init__()
        if not 1 <= num_classes <= 64:
            raise ValueError(f"expected num_classes in [1, 64], got {num_classes}")
        if not 1 <= max_objects <= 255:
            raise ValueError(f"expected max_objects in [1, 255], got {max_objects}")
        if max_occluders < 0 or views < 1 or max_settle_frames < 1:
            raise ValueError(
                "expected max_occluders >= 0, views >= 1 and max_settle_frames >= 1, got "
                f"{max_occluders}, {views}, {max_settle_frames}"
            )
        self.width, self.height = int(width), int(height)
        self.num_classes, self.max_objects = int(num_classes), int(max_objects)
        self.max_occluders, self.views = int(max_occluders), int(views)
        self.masks, self.depth, self.shadows = bool(masks), bool(depth), bool(shadows)
        self.lens, self.max_settle_frames = float(lens), int(max_settle_frames)
        self.pad_info = bool(pad_info)
        self.renderer = Renderer(width, height, engine=engine, samples=samples)
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)

        names = [f"class_prob_{k}" for k in range(num_classes)]
        low = [0.0] * num_classes
        high = [1.0] * num_classes
        default = [1.0 / num_classes] * num_classes
        for name, lo, hi, value in SCALAR_PARAMS:
            names.append(name)
            low.append(lo)
            high.append(float(max_objects) if hi is None else hi)
            default.append(min(value, float(max_objects)) if hi is None else value)
        #: The name of each action entry, in order.
        self.param_names: list[str] = names
        self.action_space = spaces.Box(
            np.array(low, np.float32), np.array(high, np.float32), dtype=np.float32
        )
        #: The defaults as an action vector.
        self.default_action = np.array(default, np.float32)
        self._params = self.default_action.copy()
        self._pending: np.ndarray | None = None
        self.steps = 0
        #: Id of the current arrangement, drawn from ``np_random`` (reproducible by seed).
        self.arrangement = -1
        #: Arrangements built since launch.
        self.arrangements = 0
        #: Milliseconds spent on the last view and arrangement (``env.call("timings")``).
        self.timings: dict[str, float] = {}
        self.settle_frames = 0
        self._layout_camera: tuple[np.ndarray, np.ndarray] | None = None

    # -- parameters ------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """The parameters the next arrangement uses: ``class_probs`` (a list) and scalars."""
        return self._params_dict(self._params)

    def set_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Update some parameters (names as in :meth:`get_params`; ``class_probs`` or
        ``class_prob_<k>``); they apply from the next arrangement. Returns all of them."""
        self._params = self._merged(self._params, params)
        return self.get_params()

    def default_params(self) -> dict[str, Any]:
        """The default parameters (``set_params(default_params())`` restores them)."""
        return self._params_dict(self.default_action)

    def action_from_params(self, params: dict[str, Any] | None = None) -> np.ndarray:
        """The action vector for ``params`` on top of the defaults (for building actions)."""
        return self._merged(self.default_action, params or {})

    def _params_dict(self, vector: np.ndarray) -> dict[str, Any]:
        k = self.num_classes
        out: dict[str, Any] = {"class_probs": [float(v) for v in vector[:k]]}
        out.update({n: float(v) for n, v in zip(self.param_names[k:], vector[k:], strict=True)})
        return out

    def _merged(self, vector: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        if not isinstance(params, dict):
            raise ValueError(f"expected params as a dict, got {type(params).__name__}")
        out = np.array(vector, np.float32, copy=True)
        index = {name: i for i, name in enumerate(self.param_names)}
        for name, value in params.items():
            if name == "class_probs":
                probs = np.asarray(value, np.float32).reshape(-1)
                if probs.shape != (self.num_classes,):
                    raise ValueError(
                        f"expected class_probs with {self.num_classes} entries, got {value!r}"
                    )
                out[: self.num_classes] = probs
            elif name in index:
                out[index[name]] = float(value)
            else:
                raise ValueError(f"expected a parameter in {['class_probs', *index]}, got {name!r}")
        space = self.action_space
        if not (np.all(out >= space.low) and np.all(out <= space.high)):
            bad = [
                f"{n}={v:g} not in [{lo:g}, {hi:g}]"
                for n, v, lo, hi in zip(self.param_names, out, space.low, space.high, strict=True)
                if not lo <= v <= hi
            ]
            raise ValueError(f"expected parameters within their bounds: {', '.join(bad)}")
        return out

    # -- build -----------------------------------------------------------------------------
    def build(self) -> None:
        clear_scene()
        scene = bpy.context.scene
        self.bpy_scene = scene
        self.collection = bpy.data.collections.new("Parts")
        scene.collection.children.link(self.collection)

        # Part meshes, one per class, shared by the slots that show that class.
        self.class_meshes, self.class_shapes, self.class_names = [], [], []
        for k in range(self.num_classes):
            name, vertices, polygons, shape = part_geometry(k)
            mesh = polygon_mesh(f"part-{k}-{name}", vertices, polygons)
            self.class_meshes.append(mesh)
            self.class_shapes.append(shape)
            self.class_names.append(name)
        box_vertices, box_polygons = prism(
            np.array([[0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]]), 0.5
        )
        self.box_mesh = polygon_mesh("unit-box", box_vertices, box_polygons)

        if scene.rigidbody_world is None:
            bpy.ops.rigidbody.world_add()
        world = scene.rigidbody_world
        world.substeps_per_frame = SUBSTEPS
        world.solver_iterations = 10
        world.time_scale = TIME_SCALE
        end = START_FRAME + self.max_settle_frames + 1
        scene.frame_start, scene.frame_end = START_FRAME, end
        world.point_cache.frame_start, world.point_cache.frame_end = START_FRAME, end

        ground_vertices, ground_polygons = prism(
            np.array([[30, -30], [30, 30], [-30, 30], [-30, -30]], np.float64), 0.5
        )
        self.ground = self._new_object(
            "ground", polygon_mesh("ground", ground_vertices, ground_polygons)
        )
        self.ground.location = (0.0, 0.0, -0.5)
        self._rigid(self.ground, "PASSIVE", "BOX")

        self.slots = []
        for i in range(self.max_objects):
            obj = self._new_object(f"part-slot-{i}", self.class_meshes[0])
            self._rigid(obj, "ACTIVE", self.class_shapes[0])
            self.slots.append(obj)
        self.occluders = []
        for j in range(self.max_occluders):
            vertices, polygons = supershape((4, 2, 2, 2), (4, 2, 2, 2), 24, 10)
            mesh = polygon_mesh(f"occluder-{j}", normalized(vertices, 0.5), polygons)
            obj = self._new_object(f"occluder-{j}", mesh)
            obj["own_mesh"] = mesh.name
            self._rigid(obj, "ACTIVE", "CONVEX_HULL")
            self.occluders.append(obj)
        for i, obj in enumerate(self.slots + self.occluders):
            self._park(obj, i)

        camera_data = bpy.data.cameras.new("Camera")
        camera_data.lens = self.lens
        camera_data.clip_start, camera_data.clip_end = 0.05, 500.0
        self.camera = bpy.data.objects.new("Camera", camera_data)
        self.collection.objects.link(self.camera)
        scene.camera = self.camera
        sun_data = bpy.data.lights.new("Sun", type="SUN")
        self.sun = bpy.data.objects.new("Sun", sun_data)
        self.collection.objects.link(self.sun)

        scene.world = scene.world or bpy.data.worlds.new("World")
        shading = scene.display.shading
        shading.light = "STUDIO"
        shading.color_type = "MATERIAL"
        shading.use_world_space_lighting = False  # world-space studio light leaves it dim
        shading.show_specular_highlight = True
        shading.show_shadows = self.shadows
        shading.show_cavity = False
        self.renderer.configure()
        self.ids = IdPass(self.collection, self.camera, self.width, self.height, depth=self.depth)
        self.mesh_cache = MeshCache()
        self.active: list[Any] = []
        self.active_classes = np.zeros(0, np.int32)

    def _new_object(self, name: str, mesh: Any) -> Any:
        obj = bpy.data.objects.new(name, mesh)
        self.collection.objects.link(obj)
        material = surface_material(name)
        if len(obj.material_slots):
            obj.material_slots[0].link = "OBJECT"
            obj.material_slots[0].material = material
        obj["material"] = material.name
        return obj

    def _rigid(self, obj: Any, kind: str, shape: str) -> None:
        bpy.context.view_layer.objects.active = obj
        bpy.ops.rigidbody.object_add(type=kind)  # build time only
        body = obj.rigid_body
        body.collision_shape = shape
        body.friction = 0.9
        body.restitution = 0.0
        body.linear_damping = 0.4  # high damping: parts stop rolling sooner
        body.angular_damping = 0.8
        body.mass = 1.0

    def _park(self, obj: Any, i: int) -> None:
        obj.hide_render = True
        obj.rigid_body.kinematic = True
        obj.rotation_mode = "QUATERNION"
        obj.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
        obj.location = (PARK + 3.0 * i, PARK, 1.0)

    # -- episode ---------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed, options=options)
        options = options or {}
        unknown = set(options) - {"params", "layout"}
        if unknown:
            raise ValueError(f"expected options among ['params', 'layout'], got {sorted(unknown)}")
        if seed is None and self._pending is not None:
            self._params = self._pending
        self._pending = None
        if "params" in options:
            self._params = self._merged(self._params, options["params"])
        t0 = time.perf_counter()
        self._arrange(options.get("layout"))
        self.timings = {"arrangement_ms": (time.perf_counter() - t0) * 1000}
        self.steps = 0
        return self._view()

    def autoreset(self, seed: int):
        """The servers' autoreset: parameters sent with the last steps apply to the new
        arrangement (a plain seeded reset would discard them; streams depend on this)."""
        if self._pending is not None:
            self._params, self._pending = self._pending, None
        return self.reset(seed=seed)

    def step(self, action: np.ndarray):
        self._pending = np.asarray(action, np.float32).copy()
        self.steps += 1
        observation, info = self._view()
        return observation, 0.0, False, self.steps >= self.views, info

    def close(self) -> None:
        super().close()
        if getattr(self, "ids", None) is not None:
            self.ids.close()

    # -- arrangement -----------------------------------------------------------------------
    def _arrange(self, layout: dict[str, Any] | None) -> None:
        rng = self.np_random
        p = self._params
        k = self.num_classes
        named = dict(zip(self.param_names[k:], p[k:].tolist(), strict=True))
        self.arrangement = int(rng.integers(0, 2**31 - 1))
        self.arrangements += 1
        self._used_params = p.copy()
        self._park_all()
        if layout is None:
            probs = p[:k].astype(np.float64)
            probs = probs / probs.sum() if probs.sum() > 0 else np.full(k, 1.0 / k)
            lo, hi = sorted((named["count_min"], named["count_max"]))
            count = int(rng.integers(round(lo), round(hi) + 1))
            classes = rng.choice(k, size=count, p=probs)
            occluding = rng.random(self.max_occluders) < named["occluder_prob"]
            objects, occluders = [], []
        else:
            objects = list(layout.get("objects", []))
            occluders = list(layout.get("occluders", []))
            if len(objects) > self.max_objects or len(occluders) > self.max_occluders:
                raise ValueError(
                    f"expected at most {self.max_objects} objects and {self.max_occluders} "
                    f"occluders in the layout, got {len(objects)} and {len(occluders)}"
                )
            classes = np.array([int(o["class"]) for o in objects], np.int64)
            if len(classes) and not (classes.min() >= 0 and classes.max() < k):
                raise ValueError(f"expected layout classes in [0, {k}), got {classes.tolist()}")
            count = len(classes)
            occluding = np.arange(self.max_occluders) < len(occluders)

        # Parts: slot i shows class classes[i]; unused slots are parked and hidden.
        self.active = self.slots[:count]
        self.active_classes = np.asarray(classes, np.int32)
        for i, obj in enumerate(self.slots):
            if i < count:
                c = int(classes[i])
                obj.data = self.class_meshes[c]
                obj.rigid_body.collision_shape = self.class_shapes[c]
                obj.rigid_body.kinematic = False
                obj.hide_render = False
                obj.scale = (1.0, 1.0, 1.0)
            else:
                self._park(obj, i)
        # Occluders: random supershapes (or the layout's boxes).
        shown_occluders = []
        for j, obj in enumerate(self.occluders):
            if not occluding[j]:
                self._park(obj, self.max_objects + j)
                continue
            shown_occluders.append(obj)
            own = bpy.data.meshes[obj["own_mesh"]]
            if layout is None:
                vertices = random_supershape(rng)
                own.vertices.foreach_set("co", vertices.astype(np.float32).reshape(-1))
                own.update()
                mark_sharp_edges(own, math.radians(30.0))  # for the new face angles
                obj.data = own
                # Bounding radius up to that of a part (0.75): no overlaps on the drop grid.
                radius = float(np.linalg.norm(vertices, axis=1).max())
                obj.scale = (float(rng.uniform(0.6, 1.0)) * 0.75 / radius,) * 3
            else:
                obj.data = self.box_mesh
                obj.scale = tuple(float(v) for v in occluders[j].get("size", (1.0, 1.0, 1.0)))
            obj.rigid_body.collision_shape = "CONVEX_HULL"
            obj.rigid_body.kinematic = False
            obj.hide_render = False
        self._randomize_looks(named, shown_occluders)
        set_instance_ids(self.active, [self.ground, *self.occluders])

        bodies = self.active + shown_occluders
        t0 = time.perf_counter()
        if layout is None:
            self._drop(bodies, rng)
            self._simulate(bodies)
        else:
            for obj, spec in zip(self.active + shown_occluders, objects + occluders, strict=True):
                obj.rotation_mode = "XYZ"
                obj.location = tuple(float(v) for v in spec["location"])
                obj.rotation_euler = tuple(float(v) for v in spec.get("rotation", (0, 0, 0)))
            if layout.get("physics", False):
                self._simulate(bodies)
            else:
                self.bpy_scene.rigidbody_world.enabled = False
                self.settle_frames = 0
        self._physics_ms = (time.perf_counter() - t0) * 1000
        bpy.context.view_layer.update()
        if self.active:
            centres = np.array([o.matrix_world.translation for o in self.active])
            self._center = centres.mean(0)
            self._center[2] = 0.0
            self._spread = float(np.sqrt(((centres[:, :2] - self._center[:2]) ** 2).sum(1)).max())
        else:
            self._center, self._spread = np.zeros(3), 0.0
        self._layout_camera = None
        if layout is not None and layout.get("camera") is not None:
            cam = layout["camera"]
            self._layout_camera = (
                np.asarray(cam["location"], np.float64),
                np.asarray(cam.get("target", (0.0, 0.0, 0.0)), np.float64),
            )

    def _park_all(self) -> None:
        """Put every slot and occluder back into one fixed state, evaluated.

        Measured: without this, an arrangement's simulation depended (by up to 2 units after
        80 frames) on what the previous arrangement left in the bodies, so that
        ``reset(seed=s)`` was not reproducible once other arrangements had run between.
        """
        for i, obj in enumerate(self.slots):
            obj.data = self.class_meshes[0]
            obj.rigid_body.collision_shape = self.class_shapes[0]
            obj.scale = (1.0, 1.0, 1.0)
            self._park(obj, i)
        for j, obj in enumerate(self.occluders):
            obj.data = bpy.data.meshes[obj["own_mesh"]]
            obj.rigid_body.collision_shape = "CONVEX_HULL"
            obj.scale = (1.0, 1.0, 1.0)
            self._park(obj, self.max_objects + j)
        bpy.context.view_layer.update()

    def _drop(self, bodies: list[Any], rng: np.random.Generator) -> None:
        """Place ``bodies`` on a jittered grid of cells above the ground, random orientations."""
        count = len(bodies)
        if count == 0:
            return
        per_layer = max(3, int(math.ceil(count / 4.0)))
        side = int(math.ceil(math.sqrt(per_layer)))
        cells = np.array([(x, y) for x in range(side) for y in range(side)], np.float64)
        cells = (cells - (side - 1) / 2.0) * CELL
        cells = cells[np.argsort(np.hypot(cells[:, 0], cells[:, 1]), kind="stable")][:per_layer]
        quaternions = random_rotations(rng, count)
        order = rng.permutation(per_layer * int(math.ceil(count / per_layer)))[:count]
        jitter = rng.uniform(-0.15, 0.15, (count, 3))
        for i, obj in enumerate(bodies):
            layer, cell = divmod(int(order[i]), per_layer)
            x, y = cells[cell]
            obj.rotation_mode = "QUATERNION"
            obj.rotation_quaternion = quaternions[i].tolist()
            obj.location = (
                x + jitter[i, 0],
                y + jitter[i, 1],
                0.8 + CELL * layer + abs(jitter[i, 2]),
            )

    def _simulate(self, bodies: list[Any]) -> None:
        """Run the rigid-body world until nothing moves, then freeze the poses."""
        scene = self.bpy_scene
        world = scene.rigidbody_world
        world.enabled = True
        bpy.context.view_layer.update()  # the new meshes and poses, before the world rebuilds
        bpy.ops.ptcache.free_bake_all()  # drop the last arrangement's simulated frames
        scene.frame_set(START_FRAME)
        last = np.array([o.matrix_world.translation for o in bodies]).reshape(-1, 3)
        frame = START_FRAME
        while frame < START_FRAME + self.max_settle_frames:
            frame += 1
            scene.frame_set(frame)
            if (frame - START_FRAME) % SETTLE_CHECK == 0:
                now = np.array([o.matrix_world.translation for o in bodies]).reshape(-1, 3)
                if np.abs(now - last).max(initial=0.0) < SETTLE_TOLERANCE:
                    break
                last = now
        self.settle_frames = frame - START_FRAME
        poses = [o.matrix_world.copy() for o in bodies]
        world.enabled = False
        for obj, pose in zip(bodies, poses, strict=True):
            obj.matrix_world = pose

    def _randomize_looks(self, named: dict[str, float], occluders: list[Any]) -> None:
        rng = self.np_random
        light = rng.uniform(*sorted((named["light_min"], named["light_max"])))
        value = sorted((named["value_min"], named["value_max"]))
        roughness = sorted((named["roughness_min"], named["roughness_max"]))
        sat = named["saturation_max"]
        objects = self.active + occluders
        colors = srgb_to_linear(hsv_colors(rng, len(objects), sat, value))
        rough = rng.uniform(*roughness, len(objects))
        for obj, color, r in zip(objects, colors, rough, strict=True):
            set_surface(bpy.data.materials[obj["material"]], color, r, light)
            if obj.material_slots:
                obj.material_slots[0].link = "OBJECT"
                obj.material_slots[0].material = bpy.data.materials[obj["material"]]
        background = sorted((named["background_min"], named["background_max"]))
        ground = srgb_to_linear(hsv_colors(rng, 1, min(sat, 0.3), background)[0])
        set_surface(bpy.data.materials[self.ground["material"]], ground, 0.8, light)
        sky = srgb_to_linear(hsv_colors(rng, 1, min(sat, 0.3), background)[0])
        world = self.bpy_scene.world
        world.color = sky.tolist()  # Workbench's background
        background = world.node_tree.nodes.get("Background") if world.node_tree else None
        if background is not None:  # Cycles' and EEVEE's (also some ambient light)
            background.inputs["Color"].default_value = (*sky.tolist(), 1.0)
        shading = self.bpy_scene.display.shading
        shading.studio_light = STUDIO_LIGHTS[int(rng.integers(len(STUDIO_LIGHTS)))]
        shading.shadow_intensity = float(rng.uniform(0.2, 0.6))
        # Workbench's shadow light is given in view space (x right, y up, z towards the
        # viewer), as the direction towards the light: keep it above and in front.
        towards = np.array([rng.uniform(-0.7, 0.7), rng.uniform(0.2, 0.8), rng.uniform(0.4, 1.0)])
        self.bpy_scene.display.light_direction = (towards / np.linalg.norm(towards)).tolist()
        sun = rng.normal(size=3)  # the sun (Cycles, EEVEE): from anywhere above, world space
        sun[2] = abs(sun[2]) + 0.5
        self.sun.data.energy = 3.0 * light
        self.sun.rotation_euler = look_at(sun / np.linalg.norm(sun) * 10.0, np.zeros(3))

    # -- views -----------------------------------------------------------------------------
    def _place_camera(self) -> None:
        rng = self.np_random
        if self._layout_camera is not None:
            location, target = self._layout_camera
        else:
            k = self.num_classes
            named = dict(zip(self.param_names[k:], self._used_params[k:].tolist(), strict=True))
            radius = rng.uniform(*sorted((named["radius_min"], named["radius_max"])))
            elevation = math.radians(
                rng.uniform(*sorted((named["elevation_min"], named["elevation_max"])))
            )
            azimuth = rng.uniform(0.0, 2 * math.pi)
            offset = rng.uniform(-0.25, 0.25, 2) * max(self._spread, 0.5)
            target = self._center + np.array([offset[0], offset[1], 0.0])
            location = target + radius * np.array(
                [
                    math.cos(elevation) * math.cos(azimuth),
                    math.cos(elevation) * math.sin(azimuth),
                    math.sin(elevation),
                ]
            )
        self.camera.location = location.tolist()
        self.camera.rotation_euler = look_at(location, target)

    def _view(self) -> tuple[np.ndarray, dict[str, Any]]:
        t0 = time.perf_counter()
        self._place_camera()
        bpy.context.view_layer.update()
        frame = self.renderer.render()
        t1 = time.perf_counter()
        ids, depth = self.ids.render()
        t2 = time.perf_counter()
        info = annotate(self.active, self.camera, ids, self.mesh_cache, self.bpy_scene)
        info["class_id"] = self.active_classes.copy()
        info["instance_id"] = np.arange(1, len(self.active) + 1, dtype=np.int32)
        info["num_objects"] = len(self.active)
        if self.pad_info:
            pad_per_object(info, self.max_objects)
        info["arrangement"] = self.arrangement
        info["view"] = self.steps
        info["settle_frames"] = self.settle_frames
        info["params"] = self._used_params.copy()
        if self.masks:
            info["mask"] = ids
        if depth is not None:
            info["depth"] = depth
        t3 = time.perf_counter()
        self.timings.update(
            {
                "render_ms": (t1 - t0) * 1000,
                "ids_ms": (t2 - t1) * 1000,
                "annotate_ms": (t3 - t2) * 1000,
                "physics_ms": getattr(self, "_physics_ms", 0.0),
            }
        )
        return frame, info
