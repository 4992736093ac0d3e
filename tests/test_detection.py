"""Experiment 2 (detection): CenterNet targets, loss and decoding on known inputs, COCO
evaluation, and the --quick pipeline end to end against real Blender."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from agents.experiments import centernet as cn
from agents.experiments import detection as det

CLASSES = ["cube", "bushing", "block", "knob", "bracket", "plug"]


def perfect_output(boxes: np.ndarray, classes: np.ndarray, hw=(32, 40)) -> dict:
    """Network outputs equal to the targets (heatmap logits of the Gaussian targets)."""
    t = cn.batch_targets([(boxes, classes)], len(CLASSES), hw)
    heat = t.heatmap.clamp(1e-6, 1 - 1e-6)
    return {"heatmap": torch.log(heat / (1 - heat)), "size": t.size, "offset": t.offset}


BOXES = np.array([[10.0, 12.0, 40.0, 30.0], [90.0, 60.0, 121.0, 101.0], [130.0, 5.0, 150.0, 25.0]])
LABELS = np.array([0, 3, 3])


def test_targets_peak_at_the_centre_with_size_and_offset_in_output_cells():
    heat, size, offset, mask = cn.image_targets(BOXES[:1], LABELS[:1], 6, (32, 40))
    # centre (25, 21) px -> (6.25, 5.25) cells: peak at cell (x 6, y 5), offset (0.25, 0.25)
    assert heat[0, 5, 6] == 1.0 and heat[0].max() == 1.0 and (heat[0] == 1.0).sum() == 1
    assert heat[1:].max() == 0.0
    assert np.allclose(size[:, 5, 6], [30 / 4, 18 / 4]) and np.allclose(offset[:, 5, 6], 0.25)
    assert mask.sum() == 1 and mask[5, 6] == 1
    radius = int(cn.gaussian_radius(math.ceil(18 / 4), math.ceil(30 / 4)))
    assert radius >= 1 and 0 < heat[0, 5, 6 + radius] < 1 and heat[0, 5, 6 + radius + 1] == 0


def _reference_targets(boxes, classes, num_classes, out_hw):
    """The targets one object at a time (the loop the vectorized code replaced)."""
    h, w = out_hw
    heat = np.zeros((num_classes, h, w), np.float32)
    size, offset = np.zeros((2, h, w), np.float32), np.zeros((2, h, w), np.float32)
    mask = np.zeros((h, w), np.float32)
    for box, cls in zip(np.asarray(boxes, np.float64) / cn.STRIDE, classes, strict=True):
        bw, bh = box[2] - box[0], box[3] - box[1]
        if bw <= 0 or bh <= 0:
            continue
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        cx, cy = int(np.clip(centre[0], 0, w - 1)), int(np.clip(centre[1], 0, h - 1))
        r = max(0, int(float(cn.gaussian_radius(math.ceil(bh), math.ceil(bw)))))
        sigma = (2 * r + 1) / 6
        y, x = np.ogrid[-r : r + 1, -r : r + 1]
        g = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
        left, right = min(cx, r), min(w - cx, r + 1)
        top, bottom = min(cy, r), min(h - cy, r + 1)
        region = heat[int(cls), cy - top : cy + bottom, cx - left : cx + right]
        np.maximum(region, g[r - top : r + bottom, r - left : r + right], out=region)
        size[:, cy, cx] = (bw, bh)
        offset[:, cy, cx] = (centre[0] - cx, centre[1] - cy)
        mask[cy, cx] = 1.0
    return heat, size, offset, mask


def test_targets_equal_the_per_object_reference_bit_for_bit():
    rng = np.random.default_rng(0)
    batch = []
    for count in [0, 1, 3, 12, 40]:
        x0, y0 = rng.uniform(-20, 170, count), rng.uniform(-20, 140, count)
        bw, bh = rng.uniform(-2, 60, count), rng.uniform(-2, 60, count)
        boxes = np.stack([x0, y0, x0 + bw, y0 + bh], 1)
        if count >= 12:  # two boxes on one centre cell: the later one's size wins
            boxes[5] = boxes[4] + [0.5, 0.5, 0.9, 0.9]
        batch.append((boxes, rng.integers(0, 6, count)))
    targets = cn.batch_targets(batch, 6, (32, 40))
    for i, (boxes, classes) in enumerate(batch):
        expected = _reference_targets(boxes, classes, 6, (32, 40))
        got = (targets.heatmap[i], targets.size[i], targets.offset[i], targets.mask[i])
        for name, a, b in zip(("heatmap", "size", "offset", "mask"), got, expected, strict=True):
            assert np.array_equal(a.numpy(), b), f"image {i}: {name}"
    assert targets.mask.sum() > 20 and targets.heatmap.max() == 1.0


def test_gaussian_radius_matches_centernet_for_a_square():
    # 10 x 10, IoU 0.7: CenterNet's three cases give 19.07, 36.73 and 2.733 (the minimum).
    r3 = (-2 * 0.7 * 20 + math.sqrt((2 * 0.7 * 20) ** 2 + 4 * 4 * 0.7 * 0.3 * 100)) / 2
    assert cn.gaussian_radius(10, 10, 0.7) == pytest.approx(r3) == pytest.approx(2.7332, abs=1e-4)


def test_focal_loss_known_values():
    target = torch.tensor([[[[1.0, 0.0]]]])  # one centre, one negative, one class
    logits = torch.zeros(1, 1, 1, 2)  # p = 0.5 everywhere
    total, per_class = cn.focal_loss(logits, target)
    expected = 2 * math.log(2) * 0.25  # pos: -log(.5) (1-.5)^2; neg: -log(.5) .5^2 (1-0)^4
    assert total.item() == pytest.approx(expected, rel=1e-5)
    assert per_class.tolist() == pytest.approx([expected], rel=1e-5)
    # A near-perfect prediction costs almost nothing; classes without centres give NaN.
    good, _ = cn.focal_loss(torch.tensor([[[[9.0, -9.0]]]]), target)
    assert good.item() < 1e-6
    two = torch.zeros(1, 2, 1, 2)
    _, per_class = cn.focal_loss(two, torch.cat([target, torch.zeros_like(target)], 1))
    assert per_class[0].item() == pytest.approx(expected, rel=1e-5)
    assert math.isnan(per_class[1].item())


def test_focal_loss_penalty_reduced_near_centres():
    logits = torch.zeros(1, 1, 1, 1)
    near, _ = cn.focal_loss(logits, torch.full((1, 1, 1, 1), 0.9))  # no centre: / 1
    far, _ = cn.focal_loss(logits, torch.zeros(1, 1, 1, 1))
    assert near.item() == pytest.approx(far.item() * 0.1**4, rel=1e-5)


def test_detection_loss_weights_size_by_a_tenth():
    out = perfect_output(BOXES, LABELS)
    t = cn.batch_targets([(BOXES, LABELS)], 6, (32, 40))
    loss, parts, _ = cn.detection_loss(out, t)
    assert parts["size"] == pytest.approx(0.0, abs=1e-6)
    out["size"] = out["size"] + 2.0 * t.mask.unsqueeze(1)  # every size off by 2 cells
    loss2, parts2, _ = cn.detection_loss(out, t)
    assert parts2["size"] == pytest.approx(4.0)  # L1 over (w, h), averaged over centres
    assert (loss2 - loss).item() == pytest.approx(0.1 * 4.0, rel=1e-4)


def test_perfect_heatmap_decodes_to_the_exact_boxes_and_ap_one():
    out = perfect_output(BOXES, LABELS)
    ((boxes, scores, classes),) = cn.decode(out, top_k=3)
    order = np.lexsort((boxes[:, 0], classes))
    assert np.allclose(boxes[order], BOXES, atol=1e-4)
    assert classes[order].tolist() == LABELS.tolist() and np.all(scores > 0.99)
    gt = {
        "images": [{"id": 1, "width": 160, "height": 128, "file_name": "x.png"}],
        "annotations": [
            {
                "id": i + 1,
                "image_id": 1,
                "category_id": int(c) + 1,
                "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                "area": float((b[2] - b[0]) * (b[3] - b[1])),
                "iscrowd": 0,
            }
            for i, (b, c) in enumerate(zip(BOXES.tolist(), LABELS, strict=True))
        ],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)],
    }
    ((boxes, scores, classes),) = cn.decode(out, top_k=100)  # junk peaks score ~0
    dets = [
        {"image_id": 1, "category_id": int(c) + 1, "bbox": [*b[:2], *(b[2:] - b[:2])], "score": s}
        for b, s, c in zip(boxes.astype(float), scores.astype(float), classes, strict=True)
    ]
    metrics = det.coco_metrics(gt, dets)
    assert metrics["mAP"] == pytest.approx(1.0) and metrics["AP75"] == pytest.approx(1.0)
    assert metrics["per_class"][0] == pytest.approx(1.0) and metrics["per_class"][3] == 1.0
    assert math.isnan(metrics["per_class"][1])  # no ground truth of that class
    # Boxes shifted by half their width (IoU 1/3) match nothing.
    shifted = [dict(d, bbox=[d["bbox"][0] + d["bbox"][2] / 2, *d["bbox"][1:]]) for d in dets]
    assert det.coco_metrics(gt, shifted)["AP50"] == pytest.approx(0.0)


def test_annotations_drop_invisible_and_barely_visible_objects():
    info = {
        "bbox_visib": np.array([[1, 2, 10, 12], [-1, -1, -1, -1], [5, 5, 9, 9]], np.float32),
        "class_id": np.array([2, 1, 4], np.int32),
        "visib_fract": np.array([0.8, 0.0, 0.05], np.float32),
    }
    boxes, classes = det.annotations(info, 0.1)
    assert boxes.tolist() == [[1, 2, 10, 12]] and classes.tolist() == [2]


class FakeDataset:
    num_instances = 2

    def __init__(self) -> None:
        self.sent: dict[int, np.ndarray] = {}

    def set_params(self, params, env_ids):
        for i in env_ids:
            self.sent[i] = np.asarray(params)


def test_adaptive_hook_gives_the_hardest_class_the_largest_probability():
    from agents.curriculum import ClassReweighting
    from agents.curriculum.glue import StreamCurriculum

    scene = det.SceneInfo(["class_prob_0", "class_prob_1", "class_prob_2", "x"], np.zeros(4), [])
    scene.class_names = ["a", "b", "c"]
    dataset = FakeDataset()
    curriculum = StreamCurriculum(dataset, ClassReweighting(3), transform=scene.with_class_probs)
    curriculum.apply()
    assert np.allclose(dataset.sent[0][:3], 1 / 3)  # no outcome yet: uniform
    dataset.sent.clear()
    hook = det.AdaptiveHook(curriculum, every=2, num_classes=3)
    hook(0, torch.tensor([1.0, 3.0, float("nan")]))
    assert not dataset.sent  # nothing before `every` steps
    hook(1, torch.tensor([1.0, 1.0, 0.5]))  # means: 1.0, 2.0, 0.5
    probs = dataset.sent[0][:3]
    assert np.argmax(probs) == 1 and np.argmin(probs) == 2 and probs.sum() == pytest.approx(1)
    assert np.allclose(dataset.sent[1], dataset.sent[0]) and dataset.sent[0][3] == 0.0
    assert len(hook.history) == 1


def test_summary_std_and_worst_class():
    runs = [
        {"condition": "uniform", "mAP": m, "AP50": 0.5, "AP75": 0.2, "per_class": [m, 0.1]}
        for m in (0.2, 0.4)
    ]
    summary = det.summarize(runs, ["a", "b"])["uniform"]
    assert summary["mAP"] == pytest.approx(0.3) and summary["mAP_std"] == pytest.approx(
        0.1414, 1e-3
    )
    assert summary["worst_class"] == "b" and summary["worst_AP"] == pytest.approx(0.1)


@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_pipeline_end_to_end(tmp_path):
    """Every path against real Blender: both streams (the adaptive one steering the class
    probabilities), the Cycles set, the target set, COCO evaluation and the table."""
    torch.set_num_threads(1)
    out, cache = tmp_path / "out", tmp_path / "cache"
    results = det.main(["--quick", "--out", str(out), "--cache", str(cache)])
    cfg = results["config"]
    assert {r["condition"] for r in results["runs"]} == set(det.CONDITIONS)
    for r in results["runs"]:
        assert 0.0 <= r["mAP"] <= r["AP50"] <= 1.0 and len(r["per_class"]) == 6
        assert sum(r["class_counts"]) > 0 and np.isfinite(r["final_loss"])
        assert 0.0 <= r["source"]["mAP"] <= r["source"]["AP50"] <= 1.0
    adaptive = next(r for r in results["runs"] if r["condition"] == "adaptive")
    history = np.array(adaptive["class_probs"])
    assert history.shape == (cfg["iterations"] // cfg["update_every"], 6)
    assert np.allclose(history.sum(1), 1.0) and np.ptp(history[-1]) > 1e-3  # not uniform
    # The fixed sets: right sizes, Cycles, and the target rendered with its own parameters.
    cycles_dir = next(cache.glob("cycles-*"))
    target_dir = next(cache.glob("target-*"))
    assert len(det.ReplayDataset(cycles_dir)) == cfg["batch"] * cfg["iterations"]
    target = det.ReplayDataset(target_dir)
    assert len(target) == cfg["target_size"] == 16
    meta = json.loads((target_dir / "meta.json").read_text())
    assert meta["kwargs"]["engine"] == "cycles"
    names = results["class_names"]
    param_names = det.probe_scene().param_names
    for item in target:
        params = dict(zip(param_names, item["info"]["params"].tolist(), strict=True))
        assert params["radius_min"] == pytest.approx(10.5) and params["light_max"] == 2.0
    assert results["target_objects"] > 0 and names[0] == "cube"
    table = (out / "results.md").read_text()
    assert all(label in table for label in det.LABELS.values()) and "worst class" in table
    assert json.loads((out / "results.json").read_text())["summary"].keys() == set(det.CONDITIONS)
