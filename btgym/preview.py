"""Contact sheets: rendered frames in a grid, with the annotations found in their infos drawn.

What ``btgym preview`` writes; numpy and Pillow only (no Blender), so that it can be
tested on synthetic frames. What is drawn, by info key (anything else is ignored):

- 2-D keypoints: every numeric array of shape ``(K, 2)`` or ``(N, K, 2)``, in pixels (x
  right, y down, as :mod:`blender_side.camera`), e.g. the Cube's ``info["xy"]``: a dot
  per point, one colour per key;
- boxes ``[x0, y0, x1, y1]`` (``x1``, ``y1`` exclusive, as
  :mod:`blender_side.annotations`) from the first of :data:`BOX_KEYS` present, an
  ``(M, 4)`` array; rows beyond ``info["num_objects"]`` (padding) and empty rows (``-1``:
  not seen) are skipped;
- a label per box from ``class_id`` and ``instance_id`` (or the other names in
  :data:`CLASS_KEYS` / :data:`INSTANCE_KEYS`) when they have one entry per box; the box
  colour follows the class.

A caption (``seed 3, step 0``) runs under each tile. Small frames are scaled up by an
integer factor (nearest neighbour) so that labels stay legible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from btgym.errors import ConfigError

#: Info keys holding boxes, by priority: only the first one present is drawn.
BOX_KEYS = ("bbox_visib", "boxes", "bbox", "bboxes", "bbox_full")
CLASS_KEYS = ("class_id", "class_ids", "category_id", "labels")
INSTANCE_KEYS = ("instance_id", "instance_ids")
#: Keypoint colours, one per info key in the order found.
KEYPOINT_COLOURS = ((255, 60, 60), (60, 220, 255), (255, 220, 40), (200, 90, 255))
#: Box colours by class id (modulo its length).
BOX_COLOURS = (
    (60, 255, 90),
    (255, 150, 40),
    (80, 140, 255),
    (255, 80, 200),
    (230, 230, 60),
    (60, 230, 220),
    (170, 110, 255),
    (255, 110, 110),
)
BACKGROUND = (24, 24, 24)
CAPTION_COLOUR = (235, 235, 235)
#: Frames narrower than this are scaled up by an integer factor.
MIN_TILE_WIDTH = 256
CAPTION_HEIGHT = 16
POINT_RADIUS = 3


@dataclass
class Annotations:
    """What :func:`find_annotations` recognized in one info dict."""

    keypoints: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (K, 2)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # (M, 4)
    classes: list[int | None] = field(default_factory=list)  # per box
    labels: list[str] = field(default_factory=list)  # per box


def find_annotations(info: Mapping[str, Any]) -> Annotations:
    """Keypoints, boxes and box labels in ``info``; keys of other shapes are ignored."""
    found = Annotations()
    named = {*BOX_KEYS, *CLASS_KEYS, *INSTANCE_KEYS}
    for key, value in info.items():
        array = _numeric(value)
        if key in named or array is None or array.ndim not in (2, 3) or array.shape[-1] != 2:
            continue
        points = array.reshape(-1, 2).astype(np.float64)
        points = points[np.isfinite(points).all(1)]
        if len(points):
            found.keypoints[key] = points
    box_key = next((key for key in BOX_KEYS if key in info), None)
    boxes = None if box_key is None else _numeric(info[box_key])
    if boxes is None or boxes.ndim != 2 or boxes.shape[1] != 4:
        return found
    rows = len(boxes)
    count = info.get("num_objects")
    if isinstance(count, int | np.integer) and 0 <= count < rows:
        rows = int(count)
    classes = _per_box(info, CLASS_KEYS, len(boxes))
    instances = _per_box(info, INSTANCE_KEYS, len(boxes))
    keep = []
    for i, (x0, y0, x1, y1) in enumerate(boxes[:rows].astype(np.float64)):
        if np.isfinite([x0, y0, x1, y1]).all() and x1 > x0 and y1 > y0:
            keep.append(i)
    found.boxes = boxes[keep].astype(np.float64).reshape(-1, 4)
    for i in keep:
        cls = None if classes is None else int(classes[i])
        parts = [] if cls is None else [str(cls)]
        if instances is not None:
            parts.append(f"#{int(instances[i])}")
        found.classes.append(cls)
        found.labels.append(" ".join(parts))
    return found


def as_rgb8(frame: Any) -> np.ndarray:
    """``frame`` as ``(H, W, 3) uint8``: grey, RGBA and float frames in ``[0, 1]`` converted."""
    array = np.asarray(frame)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype.kind not in "biuf":
        raise ConfigError(
            f"expected a frame of shape (H, W), (H, W, 3) or (H, W, 4), got {array.dtype} "
            f"{array.shape}"
        )
    array = array[:, :, :3]
    if array.dtype.kind == "f":
        scale = 255.0 if np.nanmax(array, initial=0.0) <= 1.0 else 1.0
        array = np.nan_to_num(array * scale)
    return np.clip(array, 0, 255).astype(np.uint8)


def image_of(observation: Any) -> np.ndarray | None:
    """The frame in an observation (itself, or the first frame-shaped value of a dict), or None."""
    values = observation.values() if isinstance(observation, Mapping) else [observation]
    for value in values:
        array = np.asarray(value) if isinstance(value, np.ndarray | list) else None
        if array is None or array.dtype.kind not in "biuf":
            continue
        if array.ndim == 3 and array.shape[2] in (1, 3, 4) and min(array.shape[:2]) > 4:
            return array
    return None


def tile_scale(width: int) -> int:
    """The integer factor a frame ``width`` pixels wide is scaled up by (1 when wide enough)."""
    if width <= 0:
        raise ConfigError(f"expected a frame width > 0, got {width}")
    return max(1, math.ceil(MIN_TILE_WIDTH / width))


def draw_tile(frame: Any, info: Mapping[str, Any], caption: str = "") -> Image.Image:
    """One tile: ``frame`` scaled by :func:`tile_scale`, annotations drawn, caption below."""
    rgb = as_rgb8(frame)
    height, width = rgb.shape[:2]
    scale = tile_scale(width)
    image = Image.fromarray(rgb).resize((width * scale, height * scale), Image.Resampling.NEAREST)
    tile = Image.new("RGB", (width * scale, height * scale + CAPTION_HEIGHT), BACKGROUND)
    tile.paste(image, (0, 0))
    draw = ImageDraw.Draw(tile)
    draw.fontmode = "1"  # crisp text: legible on nearest-neighbour tiles, exact colours
    font = ImageFont.load_default(size=11)
    found = find_annotations(info)
    for (x0, y0, x1, y1), cls, label in zip(found.boxes, found.classes, found.labels, strict=True):
        colour = BOX_COLOURS[(cls or 0) % len(BOX_COLOURS)]
        corners = [x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1]
        draw.rectangle(corners, outline=colour, width=2 if scale > 1 else 1)
        if label:
            left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
            x, y = corners[0] + 2, max(1.0, corners[1] - (bottom - top) - 3)
            draw.rectangle([x - 1, y - 1, x + right - left, y + bottom - top], fill=BACKGROUND)
            draw.text((x - left, y - top), label, fill=colour, font=font)
    for k, points in enumerate(found.keypoints.values()):
        colour = KEYPOINT_COLOURS[k % len(KEYPOINT_COLOURS)]
        for x, y in points * scale:
            r = POINT_RADIUS
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(0, 0, 0))
    if caption:
        draw.text((3, height * scale + 2), caption, fill=CAPTION_COLOUR, font=font)
    return tile


def grid_shape(count: int, columns: int | None = None) -> tuple[int, int]:
    """``(columns, rows)`` of a sheet of ``count`` tiles (a square-ish grid by default)."""
    if count < 1:
        raise ConfigError(f"expected at least one tile, got {count}")
    columns = columns or math.ceil(math.sqrt(count))
    if columns < 1:
        raise ConfigError(f"expected columns >= 1, got {columns}")
    columns = min(columns, count)
    return columns, math.ceil(count / columns)


def sheet_size(count: int, width: int, height: int, columns: int | None = None) -> tuple[int, int]:
    """The pixel size of a sheet of ``count`` tiles of ``width`` x ``height`` frames."""
    cols, rows = grid_shape(count, columns)
    scale = tile_scale(width)
    return cols * width * scale, rows * (height * scale + CAPTION_HEIGHT)


def contact_sheet(
    tiles: Sequence[tuple[Any, Mapping[str, Any], str]], columns: int | None = None
) -> Image.Image:
    """A grid of ``(frame, info, caption)`` tiles, row by row; every tile the first one's size."""
    drawn = [draw_tile(frame, info, caption) for frame, info, caption in tiles]
    cols, rows = grid_shape(len(drawn), columns)
    tile_w, tile_h = drawn[0].size
    sheet = Image.new("RGB", (cols * tile_w, rows * tile_h), BACKGROUND)
    for i, tile in enumerate(drawn):
        if tile.size != (tile_w, tile_h):
            tile = tile.resize((tile_w, tile_h), Image.Resampling.BILINEAR)
        sheet.paste(tile, (tile_w * (i % cols), tile_h * (i // cols)))
    return sheet


def _numeric(value: Any) -> np.ndarray | None:
    """``value`` as a numeric (not bool) array, or None."""
    if not isinstance(value, np.ndarray | list | tuple):
        return None
    try:
        array = np.asarray(value)
    except ValueError:  # ragged
        return None
    return array if array.dtype.kind in "iuf" else None


def _per_box(info: Mapping[str, Any], keys: Sequence[str], count: int) -> np.ndarray | None:
    """The first of ``keys`` holding one integer-valued entry per box, or None."""
    for key in keys:
        array = _numeric(info.get(key))
        if array is not None and array.shape == (count,):
            return array
    return None


__all__ = [
    "BOX_KEYS",
    "CLASS_KEYS",
    "INSTANCE_KEYS",
    "Annotations",
    "as_rgb8",
    "contact_sheet",
    "draw_tile",
    "find_annotations",
    "grid_shape",
    "image_of",
    "sheet_size",
    "tile_scale",
]
