"""blender_side.geometry without Blender: closed meshes, outward faces, known shapes, volumes.

References are computed here independently: edge bookkeeping for closedness, Euler
characteristics for topology, closed-form volumes (prisms, frustums of regular n-gons),
and per-edge loops for the sharp-edge flags.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter, defaultdict

import numpy as np
import pytest

from blender_side import geometry as geo
from tests.conftest import ROOT

PART_VERTICES = [8, 192, 32, 482, 12, 170, 450, 450]  # docs/scenes.md's table


def directed_edges(polygons) -> Counter:
    return Counter(
        (int(a), int(b)) for p in polygons for a, b in zip(p, np.roll(p, -1), strict=True)
    )


def assert_closed_and_consistent(polygons) -> None:
    """Every edge is used once in each direction: a closed, consistently oriented surface."""
    edges = directed_edges(polygons)
    assert all(count == 1 for count in edges.values()), "an edge is used twice the same way"
    assert all(edges[(b, a)] == 1 for a, b in edges), "an edge has no opposite"


def euler_characteristic(vertices, polygons) -> int:
    edges = {frozenset(e) for e in directed_edges(polygons)}
    used = {int(v) for p in polygons for v in p}
    assert used == set(range(len(vertices))), "a vertex belongs to no polygon"
    return len(vertices) - len(edges) + len(polygons)


def volume(vertices, polygons) -> float:
    """Volume by tetrahedra from the origin over a fan of each polygon, in plain Python."""
    total = 0.0
    for p in polygons:
        a = vertices[p[0]]
        for i in range(1, len(p) - 1):
            b, c = vertices[p[i]], vertices[p[i + 1]]
            total += float(np.dot(a, np.cross(b, c))) / 6.0
    return total


def ngon_area(r: float, n: int) -> float:
    return n / 2 * r * r * math.sin(2 * math.pi / n)


def lathe_volume(profile, n: int) -> float:
    """Exact volume of an n-sided lathe: each profile segment is a frustum of similar n-gons."""
    total = 0.0
    for (r0, z0), (r1, z1) in zip(profile, profile[1:], strict=False):
        a0, a1 = ngon_area(r0, n), ngon_area(r1, n)
        total += (z1 - z0) / 3 * (a0 + a1 + math.sqrt(a0 * a1))
    return total


@pytest.mark.parametrize("k", range(8))
def test_every_part_is_closed_outward_and_fits_the_drop_cell(k):
    name, vertices, polygons, shape = geo.part_geometry(k)
    polygons = geo.orient_outward(vertices, polygons)
    assert_closed_and_consistent(polygons)
    assert volume(vertices, polygons) > 0
    assert len(vertices) == PART_VERTICES[k]
    assert np.linalg.norm(vertices, axis=1).max() < 0.75  # the drop grid's cell is 1.5
    assert shape in {"BOX", "CYLINDER", "CONVEX_HULL"}
    genus_one = name == "bushing"  # a tube with a hole
    assert euler_characteristic(vertices, polygons) == (0 if genus_one else 2)


def test_supershape_classes_are_fixed_per_class_whatever_else_ran():
    first = geo.part_geometry(7)[1]
    np.random.default_rng(1).random(10)
    np.testing.assert_array_equal(geo.part_geometry(7)[1], first)
    assert not np.array_equal(geo.part_geometry(6)[1], first)


def test_volumes_match_closed_forms():
    _, cube, faces, _ = geo.part_geometry(0)
    assert geo.signed_volume(cube, faces) / 6 == pytest.approx(geo.CUBE_EDGE**3)
    # The L-bracket: an L of two rectangles, 0.44 high.
    _, vertices, polygons, _ = geo.part_geometry(4)
    assert volume(vertices, polygons) == pytest.approx((1.0 * 0.2 + 0.2 * 0.6) * 0.44)
    # A chamfered block: an octagonal prism between two prismatoids (vertices in two planes,
    # planar faces: volume h / 6 * (bottom + 4 middle + top) is exact).
    hx, hy, hz, c = 0.55, 0.32, 0.2, 0.07
    vertices, polygons = geo.chamfered_block((hx, hy, hz), c)

    def octagon(ax, ay):
        return 4 * ax * ay - 2 * c * c

    cap = c / 6 * (octagon(hx - c, hy - c) + 4 * octagon(hx - c / 2, hy - c / 2) + octagon(hx, hy))
    expected = 2 * cap + 2 * (hz - c) * octagon(hx, hy)
    assert volume(vertices, polygons) == pytest.approx(expected, rel=1e-12)


PLUG = [[0, -0.5], [0.3, -0.5], [0.3, 0], [0.24, 0.06], [0.18, 0.06], [0.18, 0.42], [0.14, 0.5]]
PLUG += [[0.0, 0.5]]


@pytest.mark.parametrize(
    "profile, segments",
    [
        (PLUG, 28),  # part class 5
        ([[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]], 7),  # a heptagonal prism
        ([[0.0, 0.0], [0.4, 0.3], [0.0, 0.6]], 12),  # a double cone
    ],
)
def test_lathe_volume_is_the_sum_of_its_frustums(profile, segments):
    vertices, polygons = geo.lathe(np.array(profile), segments)
    polygons = geo.orient_outward(vertices, polygons)
    assert_closed_and_consistent(polygons)
    assert volume(vertices, polygons) == pytest.approx(lathe_volume(profile, segments))


def test_a_lathe_that_never_touches_the_axis_is_a_tube():
    profile = np.array([[0.2, 0.0], [0.5, 0.0], [0.5, 1.0], [0.2, 1.0]])
    vertices, polygons = geo.lathe(profile, 16)
    polygons = geo.orient_outward(vertices, polygons)
    assert_closed_and_consistent(polygons)
    assert euler_characteristic(vertices, polygons) == 0
    outer = ngon_area(0.5, 16) - ngon_area(0.2, 16)
    assert volume(vertices, polygons) == pytest.approx(outer * 1.0)


def test_prism_extrudes_any_simple_polygon():
    angles = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    radii = np.array([1.0, 0.4] * 5)
    star = np.c_[radii * np.cos(angles), radii * np.sin(angles)]  # counter-clockwise, concave
    vertices, polygons = geo.prism(star, 0.25)
    polygons = geo.orient_outward(vertices, polygons)
    assert_closed_and_consistent(polygons)
    area = 0.5 * abs(
        np.dot(star[:, 0], np.roll(star[:, 1], -1)) - np.dot(star[:, 1], np.roll(star[:, 0], -1))
    )
    assert volume(vertices, polygons) == pytest.approx(area * 0.5)


def test_orient_outward_turns_an_inside_out_mesh():
    vertices, polygons = geo.prism(np.array([[1, -1], [1, 1], [-1, 1], [-1, -1]]) * 0.5, 0.5)
    inside_out = [p[::-1] for p in geo.orient_outward(vertices, polygons)]
    assert geo.signed_volume(vertices, inside_out) < 0
    fixed = geo.orient_outward(vertices, inside_out)
    assert geo.signed_volume(vertices, fixed) > 0
    assert geo.orient_outward(vertices, fixed) is fixed  # already outward: unchanged


@pytest.mark.parametrize("k", [0, 2])
def test_faces_of_convex_parts_point_away_from_the_centre(k):
    _, vertices, polygons, _ = geo.part_geometry(k)
    polygons = geo.orient_outward(vertices, polygons)
    normals = geo.polygon_normals(vertices, polygons)
    centres = np.array([vertices[p].mean(0) for p in polygons])
    assert np.all(np.einsum("ij,ij->i", normals, centres) > 0)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0)


def test_box_corners_and_quads_make_an_outward_cube():
    corners, quads = geo.box((1.0, 2.0, 3.0))
    assert corners.dtype == np.float32 and quads.dtype == np.int32
    np.testing.assert_array_equal(np.abs(corners), np.tile([1.0, 2.0, 3.0], (8, 1)))
    assert_closed_and_consistent(list(quads))
    assert volume(corners.astype(np.float64), list(quads)) == pytest.approx(2 * 4 * 6)


# -- the superformula -------------------------------------------------------------------------
def test_gielis_known_cases():
    angle = np.linspace(-np.pi, np.pi, 101)
    np.testing.assert_allclose(geo.gielis(angle, 4, 2, 2, 2), 1.0)  # a circle
    np.testing.assert_allclose(geo.gielis(angle, 0, 1, 1, 1), 1.0)  # m = 0: a circle
    r = geo.gielis(angle, 4, 1, 1, 1)  # a square rotated 45 degrees: |x| + |y| = 1
    np.testing.assert_allclose(np.abs(r * np.cos(angle)) + np.abs(r * np.sin(angle)), 1.0)
    r = geo.gielis(angle, 4, 4, 4, 4)  # the unit "squircle" x^4 + y^4 = 1
    np.testing.assert_allclose((r * np.cos(angle)) ** 4 + (r * np.sin(angle)) ** 4, 1.0)
    # Where the formula is undefined (0 ** negative), it gives 1 instead of inf or nan.
    assert np.all(np.isfinite(geo.gielis(angle, 4, 1, 0.0, 0.0)))


def test_supershape_of_circles_is_a_sphere_and_z_scale_squashes_it():
    vertices, polygons = geo.supershape((4, 2, 2, 2), (4, 2, 2, 2), segments=24, rings=10)
    np.testing.assert_allclose(np.linalg.norm(vertices, axis=1), 1.0)
    assert len(vertices) == 24 * 10 + 2
    polygons = geo.orient_outward(vertices, polygons)
    assert_closed_and_consistent(polygons)
    assert euler_characteristic(vertices, polygons) == 2
    squashed, _ = geo.supershape((4, 2, 2, 2), (4, 2, 2, 2), 24, 10, z_scale=0.5)
    np.testing.assert_allclose(squashed[:, :2], vertices[:, :2])
    np.testing.assert_allclose(squashed[:, 2], vertices[:, 2] * 0.5)


def test_random_supershapes_keep_one_topology():
    rng = np.random.default_rng(0)
    shapes = [geo.random_supershape(rng) for _ in range(5)]
    assert {s.shape for s in shapes} == {(242, 3)}
    for s in shapes:
        half = (s.max(0) - s.min(0)) / 2
        assert half.max() == pytest.approx(0.5)
        np.testing.assert_allclose((s.max(0) + s.min(0)) / 2, 0.0, atol=1e-12)


def test_normalized_centres_the_box_and_scales_its_largest_side():
    points = np.random.default_rng(3).normal(size=(50, 3)) * [1.0, 3.0, 0.5] + [4.0, -2.0, 1.0]
    out = geo.normalized(points, 2.0)
    np.testing.assert_allclose((out.max(0) + out.min(0)) / 2, 0.0, atol=1e-12)
    assert np.abs(out).max() == pytest.approx(2.0)
    # A similarity: ratios of distances are kept.
    d = np.linalg.norm(points[1:] - points[0], axis=1)
    e = np.linalg.norm(out[1:] - out[0], axis=1)
    np.testing.assert_allclose(e / d, e[0] / d[0])


# -- sharp edges --------------------------------------------------------------------------------
def blender_like_loops(polygons):
    """Edge indices per loop (numbered by first appearance), loop totals, edge count."""
    numbers: dict[frozenset, int] = {}
    loop_edges = []
    for p in polygons:
        for a, b in zip(p, np.roll(p, -1), strict=True):
            loop_edges.append(numbers.setdefault(frozenset((int(a), int(b))), len(numbers)))
    totals = np.array([len(p) for p in polygons], np.int32)
    return np.array(loop_edges, np.int32), totals, len(numbers), numbers


@pytest.mark.parametrize("k", [0, 1, 3, 5])
def test_sharp_edges_match_a_per_edge_reference(k):
    _, vertices, polygons, _ = geo.part_geometry(k)
    polygons = geo.orient_outward(vertices, polygons)
    normals = geo.polygon_normals(vertices, polygons)
    loop_edges, totals, count, numbers = blender_like_loops(polygons)
    angle = math.radians(30.0)
    sharp = geo.sharp_edges(loop_edges, totals, normals, count, angle)
    faces_of = defaultdict(list)
    for f, p in enumerate(polygons):
        for a, b in zip(p, np.roll(p, -1), strict=True):
            faces_of[numbers[frozenset((int(a), int(b)))]].append(f)
    for edge, faces in faces_of.items():
        assert len(faces) == 2
        between = math.acos(np.clip(np.dot(normals[faces[0]], normals[faces[1]]), -1, 1))
        assert sharp[edge] == (between > angle), (edge, math.degrees(between))
    if k == 0:
        assert sharp.all()  # a cube's edges are all 90 degrees


def test_edges_without_two_faces_are_sharp():
    polygons = [np.array([0, 1, 2])]  # one lonely triangle
    normals = np.array([[0.0, 0.0, 1.0]])
    loop_edges, totals, count, _ = blender_like_loops(polygons)
    assert geo.sharp_edges(loop_edges, totals, normals, count, 0.5).all()


# -- poses and placements -----------------------------------------------------------------------
def test_random_rotations_are_unit_quaternions_spread_over_the_sphere():
    q = geo.random_rotations(np.random.default_rng(0), 4000)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0)
    # Uniform on S^3: each component has mean 0 and E[q_i^2] = 1/4.
    np.testing.assert_allclose(q.mean(0), 0.0, atol=0.03)
    np.testing.assert_allclose((q**2).mean(0), 0.25, atol=0.02)


@pytest.mark.parametrize("count", [1, 3, 7, 20, 24])
def test_drop_grid_keeps_bodies_a_cell_apart(count):
    starts = geo.drop_grid(np.random.default_rng(count), count, cell=1.5, floor=0.8)
    assert starts.shape == (count, 3)
    assert np.all(starts[:, 2] >= 0.8)
    for i in range(count):
        for j in range(i):
            # Different cells or layers: 1.5 apart on some axis, less 2 x 0.15 of jitter.
            assert np.abs(starts[i] - starts[j]).max() >= 1.5 - 0.3 - 1e-9


def test_orbit_location_is_at_the_radius_and_elevation():
    target = np.array([1.0, -2.0, 0.5])
    location = geo.orbit_location(target, 5.0, math.radians(30), math.radians(120))
    offset = location - target
    assert np.linalg.norm(offset) == pytest.approx(5.0)
    assert math.degrees(math.asin(offset[2] / 5.0)) == pytest.approx(30.0)
    assert math.degrees(math.atan2(offset[1], offset[0])) == pytest.approx(120.0)


def test_random_view_stays_in_its_ranges():
    rng = np.random.default_rng(0)
    centre = np.array([1.0, 1.0, 0.0])
    for _ in range(50):
        location, target = geo.random_view(rng, centre, 2.0, (10.0, 6.0), (25.0, 80.0))
        offset = location - target
        assert 6.0 <= np.linalg.norm(offset) <= 10.0
        assert 25.0 <= math.degrees(math.asin(offset[2] / np.linalg.norm(offset))) <= 80.0
        assert np.abs(target - centre).max() <= 0.25 * 2.0 and target[2] == 0.0


def test_pile_extent():
    points = np.array([[0.0, 0.0, 1.0], [2.0, 0.0, 3.0], [1.0, 3.0, 0.5]])
    centre, spread = geo.pile_extent(points)
    np.testing.assert_allclose(centre, [1.0, 1.0, 0.0])
    assert spread == pytest.approx(2.0)
    centre, spread = geo.pile_extent(np.zeros((0, 3)))
    assert spread == 0.0 and not centre.any()


def test_geometry_needs_no_blender():
    path = str(ROOT / "blender_side" / "geometry.py")
    code = (
        "import sys, importlib.util; sys.modules['bpy'] = sys.modules['mathutils'] = None\n"
        f"spec = importlib.util.spec_from_file_location('g', {path!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
