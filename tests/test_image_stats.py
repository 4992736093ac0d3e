"""blender_side.image_stats without Blender, against brute-force references.

Visible pixels and boxes are checked by looping over ids; silhouettes by testing every
pixel centre against every triangle; the EXR reader against files written here from the
OpenEXR layout (magic, attributes, offset table, one scanline per block).
"""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest

from blender_side.image_stats import read_exr_float32, silhouette_areas, visible_stats
from tests.conftest import ROOT


# -- visible pixels and tight boxes -------------------------------------------------------
def visible_reference(ids: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    pixels = np.zeros(count, np.int64)
    boxes = np.full((count, 4), -1.0, np.float32)
    for i in range(1, count + 1):
        rows, cols = np.nonzero(ids == i)
        pixels[i - 1] = len(rows)
        if len(rows):
            boxes[i - 1] = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    return pixels, boxes


@pytest.mark.parametrize("background", [0.2, 0.5, 0.9])  # dense and sparse labels
@pytest.mark.parametrize("seed", range(6))
def test_visible_stats_match_a_loop_over_ids(seed, background):
    rng = np.random.default_rng(seed)
    height, width, count = rng.integers(1, 40), rng.integers(1, 50), int(rng.integers(0, 12))
    ids = rng.integers(-2, count + 3, (height, width))  # ids outside 0..count are ignored
    ids[rng.random(ids.shape) < background] = 0
    pixels, boxes = visible_stats(ids, count)
    expected_pixels, expected_boxes = visible_reference(ids, count)
    np.testing.assert_array_equal(pixels, expected_pixels)
    np.testing.assert_array_equal(boxes, expected_boxes)
    assert boxes.dtype == np.float32 and boxes.shape == (count, 4)


def test_visible_stats_of_blobs_and_of_an_absent_id():
    ids = np.zeros((10, 12), np.int32)
    ids[2:5, 3:9] = 1
    ids[7, 0] = 3
    pixels, boxes = visible_stats(ids, 3)
    assert pixels.tolist() == [18, 0, 1]
    np.testing.assert_array_equal(boxes, [[3, 2, 9, 5], [-1, -1, -1, -1], [0, 7, 1, 8]])


# -- unoccluded silhouettes -----------------------------------------------------------------
def inside(points: np.ndarray, triangle: np.ndarray) -> np.ndarray:
    """Which points lie in the triangle (either orientation, edges included)."""
    a, b, c = triangle

    def side(p, q):
        return (q[0] - p[0]) * (points[:, 1] - p[1]) - (q[1] - p[1]) * (points[:, 0] - p[0])

    s1, s2, s3 = side(a, b), side(b, c), side(c, a)
    return ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))


def cross2(a, b) -> float:
    """The z component of the cross product of two 2-D vectors (numpy 2 refuses 2-D np.cross)."""
    return float(a[0] * b[1] - a[1] * b[0])


def silhouette_reference(triangles, owner, count, width, height) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    centres = np.c_[cols.ravel() + 0.5, rows.ravel() + 0.5]
    out = np.zeros(count, np.int64)
    for k in range(count):
        covered = np.zeros(len(centres), bool)
        for t in triangles[owner == k]:
            if abs(cross2(t[1] - t[0], t[2] - t[0])) > 0:  # degenerate ones cover nothing
                covered |= inside(centres, t)
        out[k] = covered.sum()
    return out


@pytest.mark.parametrize("seed", range(8))
def test_silhouette_areas_match_pixel_centre_tests(seed):
    rng = np.random.default_rng(seed)
    width, height, count = 37, 29, 5
    owner = np.sort(rng.integers(0, count, 30))  # grouped by object; some have none
    centres = rng.uniform([-5, -5], [width + 5, height + 5], (count, 2))
    triangles = centres[owner][:, None, :] + rng.normal(0, 6, (len(owner), 3, 2))
    areas = silhouette_areas(triangles, owner, count, width, height)
    np.testing.assert_array_equal(
        areas, silhouette_reference(triangles, owner, count, width, height)
    )


def test_silhouette_of_a_square_of_two_triangles_and_of_overlaps():
    square = np.array(
        [[[2.0, 3.0], [12.0, 3.0], [12.0, 8.0]], [[2.0, 3.0], [12.0, 8.0], [2.0, 8.0]]]
    )
    assert silhouette_areas(square, np.array([0, 0]), 1, 20, 20).tolist() == [50]
    twice = np.concatenate([square, square])  # the union counts each pixel once
    assert silhouette_areas(twice, np.array([0, 0, 0, 0]), 1, 20, 20).tolist() == [50]
    clipped = square + np.array([-7.0, 0.0])  # half outside the frame's left edge
    assert silhouette_areas(clipped, np.array([0, 0]), 1, 20, 20).tolist() == [25]
    assert silhouette_areas(np.zeros((0, 3, 2)), np.zeros(0, int), 3, 20, 20).tolist() == [0, 0, 0]
    flat = np.array([[[1.0, 1.0], [5.0, 5.0], [9.0, 9.0]]])  # zero area
    assert silhouette_areas(flat, np.array([1]), 2, 20, 20).tolist() == [0, 0]


# -- the EXR reader -------------------------------------------------------------------------
def attribute(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def write_exr(
    path, channels: dict[str, np.ndarray], y0: int = 0, decreasing: bool = False,
    pixel_type: int = 2, compression: int = 0,
) -> None:  # fmt: skip
    """A single-part scanline OpenEXR file, uncompressed, one line per block."""
    names = sorted(channels)
    height, width = channels[names[0]].shape
    chlist = b"".join(
        n.encode() + b"\0" + struct.pack("<iB3xii", pixel_type, 0, 1, 1) for n in names
    )
    window = struct.pack("<4i", 0, y0, width - 1, y0 + height - 1)
    header = b"\x76\x2f\x31\x01" + bytes([2, 0, 0, 0])
    header += attribute("channels", "chlist", chlist + b"\0")
    header += attribute("compression", "compression", bytes([compression]))
    header += attribute("dataWindow", "box2i", window)
    header += attribute("displayWindow", "box2i", window)
    header += attribute("lineOrder", "lineOrder", bytes([1 if decreasing else 0]))
    header += attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0))
    header += attribute("screenWindowCenter", "v2f", struct.pack("<2f", 0.0, 0.0))
    header += attribute("screenWindowWidth", "float", struct.pack("<f", 1.0)) + b"\0"
    order = range(height - 1, -1, -1) if decreasing else range(height)
    blocks, offsets = [], []
    position = len(header) + 8 * height
    for row in order:
        data = b"".join(channels[n][row].astype("<f4").tobytes() for n in names)
        block = struct.pack("<ii", y0 + row, len(data)) + data
        offsets.append(position)
        blocks.append(block)
        position += len(block)
    # The offset table lists blocks by row, whatever order they are stored in.
    by_row = dict(zip(order, offsets, strict=True))
    table = b"".join(struct.pack("<Q", by_row[r]) for r in range(height))
    path.write_bytes(header + table + b"".join(blocks))


@pytest.mark.parametrize("y0, decreasing", [(0, False), (5, False), (-3, True)])
def test_read_exr_float32_gives_each_channel_top_down(tmp_path, y0, decreasing):
    rng = np.random.default_rng(0)
    channels = {name: rng.normal(size=(7, 11)).astype(np.float32) for name in "RGBA"}
    channels["A"][0, 0] = 1e10  # Workbench's background depth
    write_exr(tmp_path / "x.exr", channels, y0=y0, decreasing=decreasing)
    read = read_exr_float32(str(tmp_path / "x.exr"))
    assert sorted(read) == ["A", "B", "G", "R"]
    for name, values in channels.items():
        np.testing.assert_array_equal(read[name], values)
        assert read[name].dtype == np.float32


def test_read_exr_float32_refuses_what_blender_does_not_write_there(tmp_path):
    channels = {"R": np.zeros((2, 3), np.float32)}
    (tmp_path / "png.exr").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(ValueError, match="expected an OpenEXR file"):
        read_exr_float32(str(tmp_path / "png.exr"))
    write_exr(tmp_path / "half.exr", channels, pixel_type=1)
    with pytest.raises(ValueError, match="expected float32 channels"):
        read_exr_float32(str(tmp_path / "half.exr"))
    write_exr(tmp_path / "zip.exr", channels, compression=3)
    with pytest.raises(ValueError, match="expected an uncompressed EXR"):
        read_exr_float32(str(tmp_path / "zip.exr"))


def test_image_stats_needs_no_blender():
    path = str(ROOT / "blender_side" / "image_stats.py")
    code = (
        "import sys, importlib.util; sys.modules['bpy'] = sys.modules['mathutils'] = None\n"
        f"spec = importlib.util.spec_from_file_location('s', {path!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
