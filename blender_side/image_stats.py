"""Pixel statistics of rendered frames, in numpy alone (no ``bpy``): ids, silhouettes, EXR.

What :mod:`blender_side.annotations` computes per frame, kept free of Blender so that it
is tested against brute-force references without it (``tests/test_image_stats.py``):

- :func:`visible_stats`: visible pixel count and tight box per id of an id frame.
- :func:`silhouette_areas`: each object's *unoccluded* pixel count from its projected
  triangles (vectorized scanline rasterization, unioned per object).
- :func:`read_exr_float32`: the float32 EXR files Blender writes for the depth pass.

Pixel coordinates follow :mod:`blender_side.camera`: x right, y down, pixel ``[r, c]``
covers ``[c, c+1) x [r, r+1)``; boxes are ``[x0, y0, x1, y1]`` in those continuous
coordinates, so a box of visible pixels is ``[min c, min r, max c + 1, max r + 1]``.
"""

from __future__ import annotations

import struct

import numpy as np

from btgym.errors import ConfigError


def visible_stats(ids: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Visible pixels and tight boxes of ids ``1..count`` in an ``(H, W)`` id frame.

    Returns ``(pixels (count,) int64, boxes (count, 4) float32)``; boxes are ``[x0, y0,
    x1, y1]`` of the visible pixels (``x1 = last column + 1``), ``-1`` where an id is
    not visible. Ids outside ``0..count`` are ignored. Two ``bincount`` calls, one over
    (row, id) and one over (column, id) pairs, each key array made just before its
    count and never a copy of ``ids`` it does not need; no loop over pixels or objects.
    """
    height, width = ids.shape
    grid = np.asarray(ids)
    if grid.size and (grid.min() < 0 or grid.max() > count):
        grid = np.where((grid >= 0) & (grid <= count), grid, 0)
    stride = count + 1
    dtype = np.int32 if height * width * stride < 2**31 else np.int64
    grid = grid.astype(dtype, copy=False)
    row_offsets = (np.arange(height, dtype=dtype) * stride)[:, None]
    per_row = np.bincount((grid + row_offsets).reshape(-1), minlength=height * stride)
    col_offsets = np.arange(width, dtype=dtype) * stride
    per_col = np.bincount((grid + col_offsets).reshape(-1), minlength=width * stride)
    per_row = per_row.reshape(height, stride)[:, 1:]
    per_col = per_col.reshape(width, stride)[:, 1:]
    pixels = per_row.sum(0)
    rows, cols = per_row.T, per_col.T
    boxes = np.full((count, 4), -1.0, np.float32)
    seen = pixels > 0
    if seen.any():
        col_hit, row_hit = cols[seen] > 0, rows[seen] > 0
        boxes[seen, 0] = col_hit.argmax(1)
        boxes[seen, 1] = row_hit.argmax(1)
        boxes[seen, 2] = width - col_hit[:, ::-1].argmax(1)
        boxes[seen, 3] = height - row_hit[:, ::-1].argmax(1)
    return pixels, boxes


def silhouette_areas(
    triangles: np.ndarray, owner: np.ndarray, count: int, width: int, height: int
) -> np.ndarray:
    """Pixels covered by the union of each owner's triangles, inside the frame.

    ``triangles``: ``(T, 3, 2)`` pixel coordinates; ``owner``: ``(T,)`` object index in
    ``0..count-1``, non-decreasing (triangles grouped by object). A pixel is covered when
    its centre lies in a triangle, the rasterization rule of the GPU (ties on edges aside).
    For a closed mesh the union of its projected triangles is its silhouette, so the count
    is what the object would cover rendered alone.

    Vectorized scanline rasterization: one span ``[c0, c1)`` per (triangle, pixel row),
    written as +1/-1 into a difference array over each object's bounding rectangle (one
    row slot longer than the rectangle, so every row sums to zero), one cumulative sum,
    and a count of positive cells per object.
    """
    result = np.zeros(count, np.int64)
    if len(triangles) == 0:
        return result
    xy = np.asarray(triangles, np.float64)
    owner = np.asarray(owner)
    # Sort each triangle's corners by y: rows above the middle corner are bounded by the
    # edges 0-1 and 0-2, rows below it by 1-2 and 0-2. Each half is a span generator
    # x = a + b * y for its two edges.
    order = np.argsort(xy[..., 1], axis=1)
    xy = np.take_along_axis(xy, order[..., None], axis=1)
    (x0, y0), (x1, y1), (x2, y2) = (xy[:, k].T for k in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        b02, b01, b12 = (x2 - x0) / (y2 - y0), (x1 - x0) / (y1 - y0), (x2 - x1) / (y2 - y1)
    a02, a01, a12 = x0 - b02 * y0, x0 - b01 * y0, x1 - b12 * y1

    def rows_from(y):
        return np.clip(np.ceil(y - 0.5), 0, height).astype(np.int64)

    r0, rm, r2 = rows_from(y0), rows_from(y1), rows_from(y2)

    # Halves, interleaved (upper, lower) per triangle so they stay grouped by owner:
    # first row, row count, long-edge (a, b), short-edge (a, b), owner.
    def halves(upper, lower):
        return np.stack([upper, lower], axis=1).reshape(-1)

    first, n_rows = halves(r0, rm), halves(rm - r0, r2 - rm)
    a_long, b_long = halves(a02, a02), halves(b02, b02)
    a_short, b_short = halves(a01, a12), halves(b01, b12)
    half_owner = halves(owner, owner)
    total = int(n_rows.sum())
    if total == 0:
        return result
    half = np.repeat(np.arange(len(first)), n_rows)
    row = first[half] + np.arange(total) - (np.cumsum(n_rows) - n_rows)[half]
    y = row + 0.5
    x_long = a_long[half] + b_long[half] * y
    x_short = a_short[half] + b_short[half] * y
    # An empty span (c1 <= c0) adds +1 and -1 at the same or crossing cells: no effect on
    # the union, so no filtering is needed.
    c0 = np.clip(np.ceil(np.minimum(x_long, x_short) - 0.5), 0, width).astype(np.int64)
    c1 = np.clip(np.ceil(np.maximum(x_long, x_short) - 0.5), 0, width).astype(np.int64)
    c1 = np.maximum(c0, c1)
    obj = half_owner[half]
    # Each object's rectangle: rows [top, bottom), columns [left, right] (one extra slot).
    # Spans are grouped by object (owner is non-decreasing), so reduceat finds the extents.
    first = np.flatnonzero(np.r_[True, obj[1:] != obj[:-1]])
    which = obj[first]
    top = np.full(count, height, np.int64)
    bottom = np.zeros(count, np.int64)
    left = np.full(count, width, np.int64)
    right = np.zeros(count, np.int64)
    top[which] = np.minimum.reduceat(row, first)
    bottom[which] = np.maximum.reduceat(row, first) + 1
    left[which] = np.minimum.reduceat(c0, first)
    right[which] = np.maximum.reduceat(c1, first)
    present = bottom > top
    span_w = np.where(present, right - left + 1, 0)
    area = np.where(present, (bottom - top) * span_w, 0)
    base = np.cumsum(area) - area
    start = base[obj] + (row - top[obj]) * span_w[obj]
    size = int(area.sum())
    diff = np.bincount(start + c0 - left[obj], minlength=size + 1)[: size + 1]
    diff -= np.bincount(start + c1 - left[obj], minlength=size + 1)[: size + 1]
    covered = (np.cumsum(diff[:size]) > 0).astype(np.int64)
    sums = np.add.reduceat(covered, base[present]) if size else np.zeros(0, np.int64)
    result[present] = sums
    return result


def read_exr_float32(path: str) -> dict[str, np.ndarray]:
    """Read a single-part, scanline, uncompressed, float32 OpenEXR file into ``(H, W)`` arrays.

    Only the layout Blender writes with ``exr_codec = 'NONE'`` and ``color_depth = '32'``
    is accepted; rows come out top-down (EXR's y grows downwards), in whichever order
    the file stores them.
    """
    data = np.fromfile(path, dtype=np.uint8)
    raw = data[:65536].tobytes()  # the header and the start of the offset table
    if raw[:4] != b"\x76\x2f\x31\x01":
        raise ConfigError(f"expected an OpenEXR file at {path}, got {raw[:4]!r}")
    if raw[5] & 0x1A:  # tiled, deep or multi-part (long names parse the same)
        raise ConfigError(f"expected a single-part scanline EXR at {path}, flags {raw[5]:#x}")
    attrs: dict[str, bytes] = {}
    i = 8
    while raw[i] != 0:
        name_end = raw.index(b"\0", i)
        type_end = raw.index(b"\0", name_end + 1)
        (size,) = struct.unpack("<i", raw[type_end + 1 : type_end + 5])
        attrs[raw[i:name_end].decode()] = raw[type_end + 5 : type_end + 5 + size]
        i = type_end + 5 + size
    header_end = i + 1
    names, j, chlist = [], 0, attrs["channels"]
    while chlist[j] != 0:
        end = chlist.index(b"\0", j)
        (pixel_type,) = struct.unpack("<i", chlist[end + 1 : end + 5])
        if pixel_type != 2:
            raise ConfigError(f"expected float32 channels in {path}, got type {pixel_type}")
        names.append(chlist[j:end].decode())
        j = end + 17
    if attrs["compression"][0] != 0:
        raise ConfigError(f"expected an uncompressed EXR at {path}")
    x0, y0, x1, y1 = struct.unpack("<4i", attrs["dataWindow"])
    width, height = x1 - x0 + 1, y1 - y0 + 1
    # The offset table lists blocks by row; they lie back to back from the lowest offset
    # (the first row's block, unless the file stores rows bottom-up).
    first = int(data[header_end : header_end + 8 * height].view("<u8").min())
    line = 8 + 4 * width * len(names)
    blocks = data[first : first + line * height].reshape(height, line)
    rows = blocks[:, :4].copy().view(np.int32).ravel() - y0
    pixels = blocks[:, 8:].copy().view(np.float32).reshape(height, len(names), width)
    if not np.array_equal(rows, np.arange(height)):
        pixels = pixels[np.argsort(rows)]
    return {name: pixels[:, k] for k, name in enumerate(names)}


__all__ = ["read_exr_float32", "silhouette_areas", "visible_stats"]
