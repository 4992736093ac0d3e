"""COCO export read back by pycocotools (no Blender needed)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from btgym.coco import to_coco, write_coco
from btgym.errors import ConfigError


def item(step, boxes, classes, visibility):
    return {
        "obs": np.zeros((48, 64, 3), np.uint8),
        "env_id": 1,
        "episode": 2,
        "step": step,
        "seed": 0,
        "params": None,
        "info": {  # Parts-v0's keys, the defaults
            "bbox_visib": np.asarray(boxes, np.float32),
            "class_id": np.asarray(classes),
            "visib_fract": np.asarray(visibility),
        },
    }


ITEMS = [
    item(0, [[1, 2, 11, 22], [30, 5, 40, 15]], [0, 2], [1.0, 0.05]),
    item(1, [[5, 5, 25, 45]], [1], [0.8]),
    item(2, np.zeros((0, 4)), np.zeros(0, int), np.zeros(0)),
]


def test_pycocotools_reads_the_export_and_scores_ground_truth_as_perfect(tmp_path):
    path = tmp_path / "coco.json"
    coco = write_coco(path, ITEMS, ["gear", "plate", "bolt"], min_visibility=0.1)
    assert [a["bbox"] for a in coco["annotations"]] == [[1, 2, 10, 20], [5, 5, 20, 40]]
    assert [a["category_id"] for a in coco["annotations"]] == [1, 2]  # ids start at 1
    assert coco["images"][1]["file_name"] == "001-000002-00001.png"
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(str(path))
        detections = ground_truth.loadRes(
            [{**a, "score": 1.0} for a in json.loads(path.read_text())["annotations"]]
        )
        evaluation = COCOeval(ground_truth, detections, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # mAP of ground truth against itself


def test_mismatched_annotations_are_refused():
    bad = item(0, [[1, 2, 3, 4]], [0, 1], [1.0])
    with pytest.raises(ValueError, match="as many 'class_id' as 'bbox_visib'"):
        to_coco([bad], ["a", "b"])


def test_a_missing_annotation_key_is_an_error_not_zero_annotations():
    with pytest.raises(KeyError, match=r"expected annotation keys \['bbox_visib'\]"):
        to_coco([{**ITEMS[0], "info": {"boxes": np.zeros((1, 4)), "class_id": [0]}}], ["a"])
    coco = to_coco([ITEMS[1]], ["a", "b"], boxes_key="bbox_visib", classes_key="class_id")
    assert len(coco["annotations"]) == 1


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_boxes_or_visibility_are_refused_and_never_written(tmp_path, value):
    path = tmp_path / "coco.json"
    boxes = item(0, [[1, 2, 11, 22], [1, 2, value, 22]], [0, 1], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"expected finite boxes in item 1, got \[1.0, 2.0, "):
        write_coco(path, [boxes], ["a", "b"])
    visibility = item(0, [[1, 2, 11, 22]], [0], [value])
    with pytest.raises(ValueError, match="expected finite visibility in item 1.*object 0"):
        write_coco(path, [visibility], ["a", "b"])
    assert not path.exists()


def test_class_ids_that_categories_does_not_define_are_refused(tmp_path):
    for bad in (3, -1):
        with pytest.raises(ValueError, match=f"from 0 to 2 .*3 names.*got {bad} for object 1"):
            to_coco([item(0, [[1, 2, 11, 22], [1, 2, 5, 6]], [0, bad], [1.0, 1.0])], "abc")
    coco = to_coco(ITEMS, ["gear", "plate", "bolt"])
    defined = {c["id"] for c in coco["categories"]}
    assert {a["category_id"] for a in coco["annotations"]} <= defined
    json.loads(json.dumps(coco, allow_nan=False))  # strict JSON


def masked_item(step):
    """Two objects as masks (the second hides part of the first), an L-shaped third."""
    mask = np.zeros((48, 64), np.int32)
    mask[2:22, 1:11] = 1
    mask[10:30, 6:20] = 2  # over object 1
    mask[30:40, 40:44] = 3
    mask[36:40, 44:60] = 3
    boxes = [[1, 2, 11, 22], [6, 10, 20, 30], [40, 30, 60, 40]]
    base = item(step, boxes, [0, 1, 2], [0.7, 1.0, 1.0])
    base["info"].update({"mask": mask, "instance_id": np.array([1, 2, 3], np.int32)})
    return base


def test_masks_become_rle_segmentations_that_pycocotools_scores_as_perfect(tmp_path):
    from pycocotools import mask as mask_utils

    path = tmp_path / "coco.json"
    items = [masked_item(0), masked_item(1), ITEMS[2]]
    coco = write_coco(path, items, ["gear", "plate", "bolt"])
    mask = items[0]["info"]["mask"]
    for annotation, instance in zip(coco["annotations"][:3], (1, 2, 3), strict=True):
        rle = mask_utils.frPyObjects(annotation["segmentation"], 48, 64)
        np.testing.assert_array_equal(mask_utils.decode(rle), mask == instance)
        assert annotation["area"] == (mask == instance).sum()  # the mask's, not the box's
    assert coco["annotations"][0]["area"] == 10 * 20 - 5 * 12  # the hidden part left out
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(str(path))
        results = [{**a, "score": 1.0} for a in json.loads(path.read_text())["annotations"]]
        for kind in ("segm", "bbox"):
            evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), kind)
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
            assert evaluation.stats[0] == pytest.approx(1.0), kind
    # A wrong mask scores lower: the evaluation can fail.
    shifted = [{**r, "segmentation": coco["annotations"][2]["segmentation"]} for r in results]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(shifted), "segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] < 0.5


def test_a_mask_that_is_not_an_id_frame_is_refused():
    bad = masked_item(0)
    bad["info"]["mask"] = np.zeros((48, 64), np.float32)
    with pytest.raises(ConfigError, match=r"info\['mask'\] of item 1 as an \(H, W\) integer"):
        to_coco([bad], ["gear", "plate", "bolt"])


@pytest.mark.blender
def test_parts_frames_export_with_masks_pycocotools_decodes(tmp_path):
    from pycocotools import mask as mask_utils

    import btgym

    items = []
    with btgym.BlenderEnv("envs.parts:PartsScene", width=96, height=72, masks=True) as env:
        for seed in range(2):
            obs, info = env.reset(seed=seed)
            items.append({"obs": obs, "info": info, "env_id": 0, "episode": seed, "step": 0})
        names = [f"class-{k}" for k in range(int(env.call("num_classes")))]
    coco = write_coco(tmp_path / "parts.json", items, names)
    annotations = [a for a in coco["annotations"] if a["image_id"] == 1]
    shown = items[0]["info"]
    visible = (shown["px_count_visib"][: shown["num_objects"]] > 0).sum()
    assert len(annotations) == visible > 0
    for annotation in annotations:
        decoded = mask_utils.decode(mask_utils.frPyObjects(annotation["segmentation"], 72, 96))
        assert decoded.sum() == annotation["area"] > 0
        x, y, w, h = annotation["bbox"]  # the box is the mask's extent
        rows, cols = np.nonzero(decoded)
        assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x, y, x + w, y + h)
