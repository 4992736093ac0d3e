"""Procedural geometry in numpy alone: meshes, shape formulas, poses and placements.

Nothing here imports ``bpy``, so scenes' geometry is tested without Blender
(``tests/test_geometry.py``) and :mod:`blender_side.kit` turns the arrays into Blender
meshes. A mesh is ``(vertices (V, 3) float64, polygons)``, where ``polygons`` is a list
of vertex-index arrays of any sizes (or an ``(F, n)`` array), counter-clockwise seen from
outside once :func:`orient_outward` has run.
"""

from __future__ import annotations

import math

import numpy as np

Polygons = list[np.ndarray]
Mesh = tuple[np.ndarray, Polygons]

#: The corners of the cube ``[-1, 1]^3``; corner ``4x + 2y + z`` has coordinates of signs x, y, z.
BOX_CORNERS = np.array(
    [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float32
)
#: The six quads of :data:`BOX_CORNERS`.
BOX_QUADS = np.array(
    [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]],
    dtype=np.int32,
)


def box(half: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Corners ``(8, 3) float32`` and quads of a box of half-extents ``half`` about the origin."""
    return BOX_CORNERS * np.asarray(half, np.float32), BOX_QUADS


# -- shape formulas ---------------------------------------------------------------------------
def gielis(angle: np.ndarray, m: float, n1: float, n2: float, n3: float) -> np.ndarray:
    """The Gielis superformula ``r(angle)`` with ``a = b = 1`` (1 where it is undefined)."""
    t = m * angle / 4.0
    with np.errstate(divide="ignore", over="ignore"):
        r = (np.abs(np.cos(t)) ** n2 + np.abs(np.sin(t)) ** n3) ** (-1.0 / n1)
    return np.nan_to_num(r, nan=1.0, posinf=1.0)


def supershape(
    lon: tuple[float, float, float, float],
    lat: tuple[float, float, float, float],
    segments: int = 32,
    rings: int = 14,
    z_scale: float = 1.0,
) -> Mesh:
    """A closed 3D supershape: ``r1 = gielis(theta, *lon)`` times ``r2 = gielis(phi, *lat)``.

    ``rings`` rings of ``segments`` vertices between two pole vertices.
    """
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


# -- mesh builders ----------------------------------------------------------------------------
def ring_mesh(
    rings: np.ndarray,
    bottom: np.ndarray | None = None,
    top: np.ndarray | None = None,
    wrap: bool = False,
) -> Mesh:
    """Vertices and polygons of stacked rings ``(R, S, 3)`` joined by quads.

    The ends get a pole vertex (``bottom``/``top`` points, triangle fans) or, when None, an
    n-gon cap; ``wrap=True`` joins the last ring to the first instead (a torus-like tube).
    """
    count, size = rings.shape[:2]
    index = np.arange(count * size).reshape(count, size)
    after = np.roll(np.arange(size), -1)
    pairs = [(j, j + 1) for j in range(count - 1)] + ([(count - 1, 0)] if wrap else [])
    quads = [np.stack([index[a], index[a][after], index[b][after], index[b]], 1) for a, b in pairs]
    polygons: Polygons = list(np.concatenate(quads)) if quads else []
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


def lathe(profile: np.ndarray, segments: int = 28) -> Mesh:
    """Revolve an ``(r, z)`` profile about z. Ends on the axis (``r = 0``) become poles; a
    profile that never touches the axis is closed into a ring (a tube with a hole).
    """
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


def prism(polygon: np.ndarray, half_height: float) -> Mesh:
    """Extrude a counter-clockwise 2D polygon (convex or not) along z; n-gon caps."""
    polygon = np.asarray(polygon, np.float64)
    rings = np.stack(
        [np.c_[polygon, np.full(len(polygon), z)] for z in (-half_height, half_height)]
    )
    return ring_mesh(rings)


def chamfered_block(half: tuple[float, float, float], chamfer: float) -> Mesh:
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


# -- mesh measures ------------------------------------------------------------------------------
def signed_volume(vertices: np.ndarray, polygons: Polygons) -> float:
    """Six times the signed volume of a closed mesh (positive when its faces point outward)."""
    volume = 0.0
    for poly in polygons:
        a = vertices[poly[0]]
        b, c = vertices[poly[1:-1]], vertices[poly[2:]]
        volume += float(np.einsum("ij,ij->", np.cross(b, c), np.broadcast_to(a, b.shape)))
    return volume


def orient_outward(vertices: np.ndarray, polygons: Polygons) -> Polygons:
    """Reverse every polygon when the closed mesh's signed volume is negative."""
    if signed_volume(vertices, polygons) >= 0:
        return polygons
    return [p[::-1] for p in polygons]


def polygon_normals(vertices: np.ndarray, polygons: Polygons) -> np.ndarray:
    """Unit normals ``(F, 3)`` by Newell's method (right-hand rule over each polygon's order)."""
    normals = np.zeros((len(polygons), 3))
    for i, poly in enumerate(polygons):
        points = vertices[np.asarray(poly)]
        normals[i] = np.cross(points, np.roll(points, -1, axis=0)).sum(0)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-300)


def normalized(vertices: np.ndarray, half_extent: float) -> np.ndarray:
    """Centre the bounding box on the origin and scale its largest half-side to ``half_extent``."""
    low, high = vertices.min(0), vertices.max(0)
    centred = vertices - (low + high) / 2
    return centred * (half_extent / max(float(np.abs(centred).max()), 1e-9))


def sharp_edges(
    loop_edges: np.ndarray,
    loop_totals: np.ndarray,
    face_normals: np.ndarray,
    edge_count: int,
    angle: float,
) -> np.ndarray:
    """Which of ``edge_count`` edges are sharp: their two faces meet at more than ``angle``.

    Inputs are a mesh's loops as Blender stores them: the edge of each loop (faces' loops
    in order), the loop count of each face and the faces' unit normals. Edges without
    exactly two faces are sharp.
    """
    faces = np.repeat(np.arange(len(loop_totals)), loop_totals)
    order = np.argsort(loop_edges, kind="stable")
    edges, faces = loop_edges[order], faces[order]
    twin = edges[1:] == edges[:-1]
    cosine = np.einsum("ij,ij->i", face_normals[faces[:-1][twin]], face_normals[faces[1:][twin]])
    sharp = np.ones(edge_count, bool)
    sharp[edges[:-1][twin]] = cosine < math.cos(angle)
    return sharp


# -- poses and placements -----------------------------------------------------------------------
def random_rotations(rng: np.random.Generator, count: int) -> np.ndarray:
    """Uniformly random unit quaternions ``(count, 4)`` as ``w, x, y, z``."""
    q = rng.normal(size=(count, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def orbit_location(
    target: np.ndarray, radius: float, elevation: float, azimuth: float
) -> np.ndarray:
    """The point at ``radius`` from ``target``, ``elevation`` above its horizon (radians)."""
    return target + radius * np.array(
        [
            math.cos(elevation) * math.cos(azimuth),
            math.cos(elevation) * math.sin(azimuth),
            math.sin(elevation),
        ]
    )


def random_view(
    rng: np.random.Generator,
    center: np.ndarray,
    spread: float,
    radius: tuple[float, float],
    elevation: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """A random camera ``(location, target)`` looking at a pile of ``spread`` at ``center``.

    Distance and elevation (degrees) uniform in their ranges (sorted first), azimuth
    uniform; the target is moved by up to a quarter of ``max(spread, 0.5)`` in x and y.
    """
    distance = rng.uniform(*sorted(radius))
    angle = math.radians(rng.uniform(*sorted(elevation)))
    azimuth = rng.uniform(0.0, 2 * math.pi)
    offset = rng.uniform(-0.25, 0.25, 2) * max(spread, 0.5)
    target = center + np.array([offset[0], offset[1], 0.0])
    return orbit_location(target, distance, angle, azimuth), target


def pile_extent(points: np.ndarray) -> tuple[np.ndarray, float]:
    """The centre of ``points`` ``(n, 3)`` on the ground (z = 0) and their largest horizontal
    distance from it; the origin and 0 for no points.
    """
    if len(points) == 0:
        return np.zeros(3), 0.0
    center = points.mean(0)
    center[2] = 0.0
    return center, float(np.sqrt(((points[:, :2] - center[:2]) ** 2).sum(1)).max())


def drop_grid(rng: np.random.Generator, count: int, cell: float, floor: float) -> np.ndarray:
    """Start locations ``(count, 3)`` for dropping ``count`` bodies of radius < ``cell / 2``.

    The bodies take cells of a square grid of spacing ``cell`` about the origin (the cells
    nearest the centre, at least 3 per layer, about a quarter of the bodies per layer),
    layers ``cell`` apart from height ``floor`` up, in random order, jittered by up to 0.15.
    """
    per_layer = max(3, int(math.ceil(count / 4.0)))
    side = int(math.ceil(math.sqrt(per_layer)))
    cells = np.array([(x, y) for x in range(side) for y in range(side)], np.float64)
    cells = (cells - (side - 1) / 2.0) * cell
    cells = cells[np.argsort(np.hypot(cells[:, 0], cells[:, 1]), kind="stable")][:per_layer]
    order = rng.permutation(per_layer * int(math.ceil(count / per_layer)))[:count]
    jitter = rng.uniform(-0.15, 0.15, (count, 3))
    layer, slot = np.divmod(order, per_layer)
    return np.c_[
        cells[slot, 0] + jitter[:, 0],
        cells[slot, 1] + jitter[:, 1],
        floor + cell * layer + np.abs(jitter[:, 2]),
    ]


# -- the industrial parts of Parts-v0 ---------------------------------------------------------
CUBE_EDGE = 0.8  # part class 0 is an axis-aligned cube of this edge length, centred on its origin


def part_geometry(k: int) -> tuple[str, np.ndarray, Polygons, str]:
    """``(name, vertices, polygons, collision shape)`` of part class ``k``, about 1 across.

    Classes 0-5 are a cube, a flanged bushing, a chamfered block, a knob, an L-bracket and
    a stepped plug; from 6 on, supershapes with parameters fixed per class.
    """
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
    rng = np.random.default_rng(1000 + k)  # fixed per class, independent of any env's seed
    lon = (int(rng.integers(2, 9)), *rng.uniform(1.5, 8.0, 3))
    lat = (int(rng.integers(1, 5)), *rng.uniform(1.5, 8.0, 3))
    vertices, polygons = supershape(lon, lat, 32, 14, float(rng.uniform(0.4, 1.0)))
    return f"supershape{k}", normalized(vertices, 0.5), polygons, "CONVEX_HULL"


def random_supershape(rng: np.random.Generator) -> np.ndarray:
    """Vertices of an occluder: a supershape with random parameters, 24 x 10 (fixed topology)."""
    lon = (int(rng.integers(1, 9)), *np.exp(rng.uniform(np.log(0.5), np.log(8.0), 3)))
    lat = (int(rng.integers(0, 7)), *np.exp(rng.uniform(np.log(0.5), np.log(8.0), 3)))
    vertices, _ = supershape(lon, lat, 24, 10, float(rng.uniform(0.3, 1.0)))
    return normalized(vertices, 0.5)


__all__ = [
    "BOX_CORNERS",
    "BOX_QUADS",
    "CUBE_EDGE",
    "box",
    "chamfered_block",
    "drop_grid",
    "gielis",
    "lathe",
    "normalized",
    "orbit_location",
    "orient_outward",
    "part_geometry",
    "pile_extent",
    "polygon_normals",
    "prism",
    "random_rotations",
    "random_supershape",
    "random_view",
    "ring_mesh",
    "sharp_edges",
    "signed_volume",
    "supershape",
]
