"""Export detection annotations of stream or replay items as COCO JSON (pycocotools reads it).

Each item's ``info`` holds per-object arrays: boxes ``(M, 4)`` as ``[x0, y0, x1, y1]``
in pixels, class ids ``(M,)``, optionally visibility ``(M,)``. The keys default to
Parts-v0's (``bbox_visib``, ``class_id``, ``visib_fract``, BOP's names) and are
arguments for other scenes; an item without the box or class key is an error (a key
typo must not silently give zero annotations). Objects below ``min_visibility`` are
left out. Non-finite boxes or visibility and class ids outside ``class_names`` are
errors: the JSON is always valid and every ``category_id`` is defined.

Instance segmentation: where the info holds an instance mask (``mask``: an ``(H, W)``
id frame, object ``i`` drawn as ``instance_id[i]``, the Annotator's ``masks=True``),
each annotation gets its ``segmentation`` as COCO's uncompressed run-length encoding
(column-major runs, starting with background) and its ``area`` as the mask's pixel
count; without a mask the area is the box's. pycocotools evaluates both ``bbox`` and
``segm`` on the export (``tests/test_coco.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from btgym.errors import ConfigError


def to_coco(
    items: Iterable[dict[str, Any]],
    class_names: Sequence[str],
    *,
    boxes_key: str = "bbox_visib",
    classes_key: str = "class_id",
    visibility_key: str | None = "visib_fract",
    min_visibility: float = 0.0,
    file_name: str = "{env_id:03d}-{episode:06d}-{step:05d}.png",
    mask_key: str | None = "mask",
    instances_key: str = "instance_id",
) -> dict[str, Any]:
    """A COCO dict: ``images``, ``annotations`` (with ``segmentation`` where the item has
    a ``mask_key`` mask) and ``categories`` (ids from 1).
    """
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, item in enumerate(items, start=1):
        height, width = np.asarray(item["obs"]).shape[:2]
        images.append(
            {
                "id": image_id,
                "width": int(width),
                "height": int(height),
                "file_name": file_name.format(**item),
            }
        )
        info = item["info"]
        missing = [key for key in (boxes_key, classes_key) if key not in info]
        if missing:
            raise KeyError(
                f"expected annotation keys {missing} in item {image_id}'s info, got keys "
                f"{sorted(info)} (pass boxes_key=/classes_key= for this scene)"
            )
        boxes = np.asarray(info[boxes_key], dtype=np.float64).reshape(-1, 4)
        classes = np.asarray(info[classes_key], dtype=np.int64).reshape(-1)
        if len(boxes) != len(classes):
            raise ConfigError(
                f"expected as many {classes_key!r} as {boxes_key!r}, got {len(classes)} and "
                f"{len(boxes)} in item {image_id}"
            )
        visibility = (
            np.asarray(info[visibility_key], dtype=np.float64).reshape(-1)
            if visibility_key and visibility_key in info
            else np.ones(len(boxes))
        )
        _check_values(boxes, classes, visibility, len(class_names), image_id)
        masks = _instance_masks(info, mask_key, instances_key, len(boxes), image_id)
        for row, (box, cls, visible) in enumerate(zip(boxes, classes, visibility, strict=True)):
            width_box, height_box = box[2] - box[0], box[3] - box[1]
            if visible < min_visibility or width_box <= 0 or height_box <= 0:
                continue
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": int(cls) + 1,
                "bbox": [float(box[0]), float(box[1]), float(width_box), float(height_box)],
                "area": float(width_box * height_box),
                "iscrowd": 0,
                "visibility": float(visible),
            }
            if masks is not None:
                flat, instance = masks[0], int(masks[1][row])
                annotation["segmentation"] = run_lengths(flat == instance, masks[2])
                annotation["area"] = float(masks[3][instance]) if instance < len(masks[3]) else 0.0
            annotations.append(annotation)
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _instance_masks(
    info: dict[str, Any], mask_key: str | None, instances_key: str, rows: int, image_id: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], np.ndarray] | None:
    """``(column-major flat mask, instance id per row, (H, W), pixels per id)`` or None."""
    if mask_key is None or mask_key not in info:
        return None
    mask = np.asarray(info[mask_key])
    if mask.ndim != 2 or mask.dtype.kind not in "iu":
        raise ConfigError(
            f"expected info[{mask_key!r}] of item {image_id} as an (H, W) integer id frame, "
            f"got {mask.dtype} {mask.shape}"
        )
    instances = (
        np.asarray(info[instances_key], np.int64).reshape(-1)[:rows]
        if instances_key in info
        else np.arange(1, rows + 1)
    )
    flat = mask.T.reshape(-1)  # COCO's runs go down the columns
    counts = np.bincount(np.clip(flat, 0, None).astype(np.int64))
    return flat, instances, (int(mask.shape[0]), int(mask.shape[1])), counts


def run_lengths(flat: np.ndarray, size: tuple[int, int]) -> dict[str, Any]:
    """COCO's uncompressed RLE of a column-major flat binary mask of ``size`` (H, W):
    alternating run lengths, the first one of background (0 when the mask starts set).
    """
    flat = np.asarray(flat, bool)
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    runs = np.diff(bounds)
    if flat.size and flat[0]:
        runs = np.concatenate([[0], runs])
    return {"counts": runs.astype(int).tolist(), "size": [int(size[0]), int(size[1])]}


def _check_values(
    boxes: np.ndarray, classes: np.ndarray, visibility: np.ndarray, names: int, image_id: int
) -> None:
    """Finite boxes and visibility, class ids that ``categories`` defines; else ConfigError.

    JSON has no NaN or Infinity (``json.dump`` would write them anyway, and COCO readers
    then fail or score garbage), and an annotation of an undefined category breaks them.
    """
    for name, values in (("boxes", boxes), ("visibility", visibility)):
        finite = np.isfinite(values)
        bad = np.flatnonzero(~(finite.all(axis=1) if finite.ndim > 1 else finite))
        if bad.size:
            raise ConfigError(
                f"expected finite {name} in item {image_id}, got {values[bad[0]].tolist()} "
                f"for object {int(bad[0])}"
            )
    outside = np.flatnonzero((classes < 0) | (classes >= names))
    if outside.size:
        raise ConfigError(
            f"expected class ids from 0 to {names - 1} (class_names has {names} names), got "
            f"{int(classes[outside[0]])} for object {int(outside[0])} in item {image_id}"
        )


def write_coco(
    path: str | os.PathLike[str],
    items: Iterable[dict[str, Any]],
    class_names: Sequence[str],
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`to_coco`, written to ``path``."""
    coco = to_coco(items, class_names, **kwargs)
    text = json.dumps(coco, allow_nan=False)  # valid JSON or an error, never NaN
    with open(path, "w") as f:
        f.write(text)
    return coco


__all__ = ["run_lengths", "to_coco", "write_coco"]
