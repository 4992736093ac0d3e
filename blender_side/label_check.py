"""Do a scene's labels describe the frame it returned? Checked against the frame itself.

:func:`check_labels` (run by :func:`~blender_side.testing.check_scene`) takes each
:class:`~blender_side.annotations.Annotator` a scene holds and compares its last labels
with two more renders of the scene, which change no object (a changed visibility would
rebuild a rigid-body world and change the simulation):

- the frame again, as the scene's renderer made it: it must equal the frame returned,
  else the scene moved something between its render and its labels;
- the frame over a transparent film: its alpha tells the pixels where the frame shows an
  object and where the world; no annotated object may cover the world;
- boxes equal the extents of the id pass's pixels; the visible box of each object lies
  inside the box of its projected evaluated vertices (``bbox_full``); depth is there
  exactly where an object is seen.

Each failure names the label, the object and by how much.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blender_side.annotations import Annotator
from blender_side.image_stats import read_exr_float32, visible_stats
from blender_side.passes import image_output, overridden, render_still
from blender_side.tiff import read_tiff_rgb8
from btgym.wire.frame_files import WRITER

#: Pixels (and fraction of an object's pixels) a label may be off by: rasterizers differ
#: on edge pixels.
TOLERANCE_PIXELS = 3
TOLERANCE_FRACTION = 0.02
#: Keys an annotated frame's info carries (one of them).
LABEL_KEYS = frozenset({"bbox_visib", "mask", "instance_id", "px_count_visib"})
#: Slack of the projected-vertex box around the visible one, in pixels.
BOX_SLACK = 1.5


def annotators_of(scene: Any) -> list[Annotator]:
    """The :class:`Annotator` objects a scene holds as attributes."""
    return [value for value in vars(scene).values() if isinstance(value, Annotator)]


def check_labels(scene: Any, info: dict[str, Any], name: str, where: str) -> None:
    """Raise ``AssertionError`` where ``scene``'s last labels disagree with its frame."""
    renderer = getattr(scene, "renderer", None)
    if not LABEL_KEYS & set(info):
        return  # this frame carries no labels
    for annotator in annotators_of(scene):
        if annotator.last_ids is None:
            continue
        ids, objects = annotator.last_ids, annotator.last_objects
        label = f"{name}.{where}"
        if renderer is not None and renderer.last_frame is not None:
            _check_frame(renderer, ids, objects, label)
        _check_boxes(info, ids, len(objects), label)
        _check_depth(info, ids, label)


def _check_frame(renderer: Any, ids: np.ndarray, objects: list[Any], label: str) -> None:
    """The frame returned is the scene's current state, and no object covers the world."""
    if getattr(renderer, "engine", None) == "raster":
        _check_raster_frame(renderer, ids, objects, label)
        return
    scene = renderer.bpy_scene
    render = scene.render
    tiff, exr = WRITER.scratch_path("check.tif"), WRITER.scratch_path("check.exr")
    with overridden(image_output(scene, tiff, "TIFF", "RGB")):
        render_still(scene)
    _check_same_frame(read_tiff_rgb8(tiff), renderer.last_frame, label)
    transparent = [(render, "film_transparent", True), (render, "use_compositing", False)]
    with overridden([*transparent, *image_output(scene, exr, "EXR", "RGBA")]):
        render_still(scene)
    alpha = read_exr_float32(exr)["A"]
    if alpha.shape == ids.shape:
        _check_masks_off_the_world(ids, objects, alpha <= 0.0, label)


def _check_raster_frame(renderer: Any, ids: np.ndarray, objects: list[Any], label: str) -> None:
    """The raster draws the scene again: the same frame; the world is where it drew nothing."""
    frame = renderer.last_frame
    again = renderer.render()
    renderer.last_frame = frame
    _check_same_frame(again, frame, label)
    _, depth = renderer.labels()
    if depth.shape == ids.shape:
        _check_masks_off_the_world(ids, objects, depth <= 0.0, label)


def _check_same_frame(again: np.ndarray, frame: np.ndarray, label: str) -> None:
    """``frame`` shows the state the scene renders as ``again`` now (within the tolerance)."""
    if again.shape == frame.shape:
        changed = (again != frame).any(-1)
        if changed.sum() > max(TOLERANCE_PIXELS, TOLERANCE_FRACTION * changed.size):
            raise AssertionError(
                f"expected {label}'s frame to show the state its labels describe, but the "
                f"scene renders {int(changed.sum())} of {changed.size} pixels differently "
                "now: something moved after the render (render after the last change)"
            )


def _check_masks_off_the_world(
    ids: np.ndarray, objects: list[Any], world: np.ndarray, label: str
) -> None:
    """No object's mask covers pixels where the frame shows the world (beyond tolerance)."""
    count = len(objects)
    if ids.max(initial=0) > count:
        raise AssertionError(
            f"expected {label}'s mask to hold ids 0..{count} (its {count} objects), got "
            f"id {int(ids.max())} on {int((ids > count).sum())} pixels"
        )
    counts = np.bincount(ids.reshape(-1), minlength=count + 1)[1:]
    on_world = np.bincount(ids[world], minlength=count + 1)[1:]
    for i, (bad, total) in enumerate(zip(on_world, counts, strict=True)):
        if bad > max(TOLERANCE_PIXELS, TOLERANCE_FRACTION * total):
            raise AssertionError(
                f"expected {label}'s mask of {objects[i].name!r} (id {i + 1}) to cover "
                f"pixels where the frame shows an object, but {int(bad)} of its "
                f"{int(total)} pixels ({100.0 * bad / max(total, 1):.0f} %) show the world there"
            )


def _check_boxes(info: dict[str, Any], ids: np.ndarray, count: int, label: str) -> None:
    """``bbox_visib`` and ``px_count_visib`` equal the id pass's; inside ``bbox_full``."""
    pixels, boxes = visible_stats(ids, count)
    if "bbox_visib" in info:
        given = np.asarray(info["bbox_visib"], np.float64)[:count]
        off = np.abs(given - boxes).max(1) if count else np.zeros(0)
        if len(off) and off.max() > 0:
            i = int(off.argmax())
            raise AssertionError(
                f"expected {label}'s bbox_visib[{i}] to be the extent of id {i + 1}'s mask "
                f"{boxes[i].tolist()}, got {given[i].tolist()} (off by {off[i]:g} px)"
            )
    if "px_count_visib" in info:
        given = np.asarray(info["px_count_visib"])[:count]
        if not np.array_equal(given, pixels):
            i = int(np.abs(given - pixels).argmax())
            raise AssertionError(
                f"expected {label}'s px_count_visib[{i}] = {int(pixels[i])} (id {i + 1}'s "
                f"mask), got {int(given[i])}"
            )
    if "bbox_full" in info:
        full = np.asarray(info["bbox_full"], np.float64)[:count]
        seen = pixels > TOLERANCE_PIXELS
        outside = np.zeros(count)
        outside[seen] = np.maximum(
            np.maximum(full[seen, :2] - boxes[seen, :2], boxes[seen, 2:] - full[seen, 2:]).max(1),
            0.0,
        )
        if count and outside.max() > BOX_SLACK:
            i = int(outside.argmax())
            raise AssertionError(
                f"expected {label}'s visible box of id {i + 1} {boxes[i].tolist()} inside "
                f"its projected vertices' bbox_full {full[i].tolist()}, but it reaches "
                f"{outside[i]:.1f} px beyond: the geometry labels are not of the frame"
            )


def _check_depth(info: dict[str, Any], ids: np.ndarray, label: str) -> None:
    """Depth is positive wherever an annotated object is seen."""
    depth = info.get("depth")
    if depth is None or np.shape(depth) != ids.shape:
        return
    missing = int(((np.asarray(depth) <= 0) & (ids > 0)).sum())
    if missing > TOLERANCE_PIXELS:
        raise AssertionError(
            f"expected {label}'s depth wherever its mask shows an object, but {missing} "
            "mask pixels have none"
        )


__all__ = ["check_labels"]
