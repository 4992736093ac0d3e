"""The rebuilt Experiment 2: augmentation, the adaptive controller and discriminator, the
target split, and the --quick pipeline end to end against real Blender."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agents.experiments import transfer as tr
from agents.experiments.adaptive_dr import (
    ADAPTED,
    AdaptiveRandomization,
    DiscriminatorTrainer,
    EvolutionStrategy,
)


def test_flip_and_zoom_move_boxes_with_the_pixels():
    h, w = 32, 40
    image = torch.zeros((1, 3, h, w))  # grey, as the border a zoom-out pads with
    image[0, :, 8:16, 4:12] = 0.5  # a white box [4, 8, 12, 16]
    labels = [(np.array([[4.0, 8.0, 12.0, 16.0]]), np.array([2]))]
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        out, new = tr.augment(image, labels, generator)
        boxes, classes = new[0]
        assert classes.tolist() == [2]
        x0, y0, x1, y1 = boxes[0]
        grey = out[0].mean(0)
        bright = grey > (grey.max() + grey.min()) / 2
        rows, cols = np.nonzero(bright.numpy())
        # The bright region's extent is the box, to the pixel the resampling blurs.
        assert abs(cols.min() - x0) <= 1.5 and abs(cols.max() + 1 - x1) <= 1.5
        assert abs(rows.min() - y0) <= 1.5 and abs(rows.max() + 1 - y1) <= 1.5


def test_augment_drops_boxes_pushed_out_of_the_frame():
    image = torch.zeros((1, 3, 32, 32))
    labels = [(np.array([[0.0, 0.0, 1.0, 1.0], [10.0, 10.0, 20.0, 20.0]]), np.array([0, 1]))]
    seen_drop = False
    generator = torch.Generator().manual_seed(1)
    for _ in range(30):
        _, new = tr.augment(image, labels, generator)
        boxes, classes = new[0]
        assert 1 in classes.tolist()  # the central box always survives
        assert np.all(boxes[:, 2] - boxes[:, 0] >= 2)
        seen_drop |= 0 not in classes.tolist()
    assert seen_drop  # a zoom-in pushes the 1 px corner box out


def test_strategy_climbs_towards_the_better_scored_candidates():
    strategy = EvolutionStrategy(ADAPTED, np.full(len(ADAPTED), 0.5), seed=0)
    goal = np.full(len(ADAPTED), 0.9)
    start = np.abs(strategy.mean - goal).sum()
    for _ in range(40):
        for k, candidate in enumerate(strategy.propose()):
            strategy.report(k, np.array([-np.abs(candidate - goal).sum()]))
        strategy.update()
    assert np.abs(strategy.mean - goal).sum() < 0.5 * start
    assert len(strategy.history) == 40
    named = strategy.params(strategy.mean)
    assert named["lens_min"] < named["lens_max"] and named["lens_min"] >= 25.0
    assert set(named) == {p for a in ADAPTED for p in a.params}


def test_strategy_keeps_its_mean_without_two_scored_candidates():
    strategy = EvolutionStrategy(ADAPTED, np.full(len(ADAPTED), 0.3), seed=0)
    strategy.propose()
    strategy.report(0, np.array([1.0]))
    strategy.update()
    np.testing.assert_allclose(strategy.mean, 0.3)
    with pytest.raises(ValueError, match="even number"):
        EvolutionStrategy(ADAPTED, np.zeros(len(ADAPTED)), seed=0, candidates=3)


def test_discriminator_learns_to_tell_bright_target_frames_from_dark_stream_frames():
    target = torch.rand(32, 3, 32, 40) * 0.3 + 0.2
    trainer = DiscriminatorTrainer(target, seed=0, lr=3e-3)
    for _ in range(60):
        scores = trainer.step(torch.rand(8, 3, 32, 40) * 0.3 - 0.5)
    assert float(scores.mean()) < 0.2  # stream frames: "not target"
    with torch.no_grad():
        assert float(torch.sigmoid(trainer.model(target)).mean()) > 0.8


def test_discriminator_extra_steps_on_recent_frames_learn_faster_per_batch():
    target = torch.rand(32, 3, 32, 40) * 0.3 + 0.2
    stream = [torch.rand(8, 3, 32, 40) * 0.3 - 0.5 for _ in range(12)]
    one = DiscriminatorTrainer(target, seed=0, lr=1e-3)
    more = DiscriminatorTrainer(target, seed=0, lr=1e-3, extra_steps=4, memory=4)
    for frames in stream:
        one.step(frames)
        more.step(frames)
    assert len(more.losses) == len(one.losses) == 12  # a loss per batch, its own step's
    assert len(more.recent) == 4  # the memory keeps the last 4 batches
    assert more.losses[-1] < 0.7 * one.losses[-1]
    with torch.no_grad():
        held_out = torch.rand(8, 3, 32, 40) * 0.3 - 0.5
        scores = [float(torch.sigmoid(t.model(held_out)).mean()) for t in (more, one)]
    assert scores[0] < scores[1]  # new stream frames: more surely "not target"


def test_adaptive_randomization_gives_instances_their_own_candidates_and_credits_frames():
    strategy = EvolutionStrategy(ADAPTED, np.full(len(ADAPTED), 0.5), seed=0)
    sent: dict[int, list[np.ndarray]] = {0: [], 1: []}
    trainer = DiscriminatorTrainer(torch.zeros(4, 3, 16, 16), seed=0)
    glue = AdaptiveRandomization(
        strategy,
        trainer,
        set_params=lambda params, ids: sent[ids[0]].append(params),
        to_action=lambda named: tr.action(named, tr.MASSIVE_ACTION),
        batches_per_candidate=2,
        instances=2,
    )
    assert len(sent[0]) == len(sent[1]) == 1
    assert not np.array_equal(sent[0][0], sent[1][0])
    for _ in range(2 * strategy.candidates // 2):
        frames = [sent[0][-1], sent[1][-1], tr.MASSIVE_ACTION]  # the last matches nothing
        glue.after_batch(torch.zeros(3, 3, 16, 16), frames)
    # One generation: two rounds of two candidates, 2 batches each, then an update.
    assert len(sent[0]) == len(sent[1]) == 3 and len(strategy.history) == 1
    assert all(np.isfinite(s) for s in strategy.history[0]["scores"])
    with pytest.raises(ValueError, match="whole rounds"):
        AdaptiveRandomization(strategy, trainer, lambda p, i: None, lambda n: n, 1, instances=3)


def test_target_split_keeps_arrangements_whole():
    items = [{"info": {"arrangement": 100 + i // 4}} for i in range(24)]
    adapt, evaluate = tr.split_target(items)
    assert sorted(adapt + evaluate) == list(range(24))
    assert adapt == [0, 1, 2, 3, 12, 13, 14, 15]  # arrangements 0 and 3 of 6
    assert len(evaluate) == 16


def test_massive_ranges_are_wide_and_inside_the_scene_bounds():
    named = tr.SPACE.to_dict(tr.MASSIVE_ACTION)
    assert named["saturation_max"] == 1.0 and named["matcap_prob"] == 0.5
    assert named["lens_max"] - named["lens_min"] >= 50
    assert np.all(tr.SPACE.box.low <= tr.MASSIVE_ACTION)
    assert np.all(tr.SPACE.box.high >= tr.MASSIVE_ACTION)


def test_v3_ranges_extend_v2_inside_the_scene_and_sensor_bounds():
    from btgym.sensor import SensorModel

    v2, v3 = (tr.SPACE.to_dict(a) for a in (tr.MASSIVE_ACTION, tr.MASSIVE_V3_ACTION))
    assert all(v3[name] == value for name, value in v2.items() if name in tr.MASSIVE)
    assert v3["ground_saturation_max"] > 0 and v3["ground_texture_prob"] > 0 < v3["pale_prob"]
    assert np.all(tr.SPACE.box.low <= tr.MASSIVE_V3_ACTION)
    assert np.all(tr.SPACE.box.high >= tr.MASSIVE_V3_ACTION)
    sensor = SensorModel(tr.SENSOR_V3).get_params()  # in bounds, or it raises
    assert sensor["shot_noise_max"] > sensor["shot_noise_min"] > 0
    sensed = tr.Sensed([{"obs": np.full((8, 8, 3), 100, np.uint8), "env_id": 0, "seed": 1,
                         "episode": 0, "step": 0}], SensorModel(tr.SENSOR_V3, seed=2))  # fmt: skip
    assert len(sensed) == 1 and sensed[0]["sensor"].shape == (7,)
    assert not np.array_equal(sensed[0]["obs"], np.full((8, 8, 3), 100, np.uint8))


@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_quick_pipeline_end_to_end(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    results = tr.main(["--quick", "--out", str(out), "--cache", str(cache)])
    assert [r["condition"] for r in results["runs"]] == list(tr.CONDITIONS)
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["summary"]) == set(tr.CONDITIONS)
    for row in saved["runs"]:
        assert 0.0 <= row["mAP"] <= 1.0 and len(row["pr50"]) == 101
        assert len(row["per_class"]) == len(tr.CLASS_NAMES)
    adaptive = next(r for r in saved["runs"] if r["condition"] == "adaptive")
    assert adaptive["trajectory"] and adaptive["discriminator_loss"]
    assert any(np.isfinite(s) for g in adaptive["trajectory"] for s in g["scores"])
    v3 = next(r for r in saved["runs"] if r["condition"] == "adaptive_v3")
    assert len(v3["trajectory"]) == 2  # 8 batches, generations of 4 candidates x 2 batches / 2
    assert len(v3["trajectory"][0]["scores"]) == tr.QUICK["v3_candidates"]
    assert {"shot_noise_min", "pale_prob", "ground_saturation_max"} <= set(v3["final_params"])
    assert [a["name"] for a in v3["adapted"]] == [a.name for a in tr.ADAPTED_V3]
    reweight = next(r for r in saved["runs"] if r["condition"] == "reweight")
    assert reweight["class_probs"]
    for name in ("pr.png", "domains.png", "trajectories.png", "trajectories_v3.png"):
        assert (out / name).stat().st_size > 1000
    table = (out / "results.md").read_text()
    assert all(label in table for label in tr.LABELS.values())
    # The quick target lives apart from the committed one: a trial never replaces it.
    assert (cache / "target-eevee-n24" / "meta.json").exists()
    assert (cache / "target-eevee-v3-n24" / "meta.json").exists()  # the held-out v3 target
    assert all(0.0 <= row["target_v3"]["mAP"] <= 1.0 for row in saved["runs"])
    assert not (cache / "target-eevee").exists()


def test_merge_runs_joins_result_files_and_refuses_a_run_twice(tmp_path, monkeypatch):
    from agents.experiments import merge_runs

    monkeypatch.setattr(merge_runs, "write_figures", lambda *args: [])

    def part(name, runs, offset):
        rows = [
            {
                "condition": c,
                "run": r,
                "mAP": 0.01 * (r + offset),
                "AP50": 0.1,
                "AP75": 0.0,
                "per_class": [0.0] * 6,
                "domain": {"mAP": 0.1},
                "train_s": 1.0,
            }
            for r in runs
            for c in tr.CONDITIONS
        ]
        results = {"config": {"runs": 2}, "class_names": tr.CLASS_NAMES, "runs": rows}
        results["command"], results["wall_s"] = f"cmd {name}", 10.0
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(results))
        return str(tmp_path / name)

    a, b = part("a", [0, 1], 0), part("b", [2], 0)
    merge_runs.main([a, b, "--out", str(tmp_path / "out")])
    merged = json.loads((tmp_path / "out" / "results.json").read_text())
    assert merged["summary"]["massive"]["runs"] == 3
    assert merged["summary"]["massive"]["mAP"] == pytest.approx(0.01)
    assert merged["command"] == "cmd a + cmd b" and merged["wall_s"] == 20.0
    with pytest.raises(SystemExit, match="each"):
        merge_runs.main([a, a, "--out", str(tmp_path / "again")])


def test_table_and_pr_figure_cover_both_targets(tmp_path):
    from PIL import Image

    from agents.experiments.figures import pr_figure

    def row(condition, run, v2, v3):
        metrics = {"AP50": 2 * v2, "AP75": v2 / 2, "per_class": [v2] * 6, "pr50": [v2] * 101}
        v3_metrics = {"mAP": v3, "AP50": 2 * v3, "AP75": v3 / 2, "per_class": [v3] * 6}
        v3_metrics["pr50"] = [v3] * 101
        return {"condition": condition, "run": run, "mAP": v2, **metrics, "train_s": 1.0,
                "domain": {"mAP": 0.3}, "target_v3": v3_metrics}  # fmt: skip

    runs = [row("massive", 0, 0.1, 0.2), row("massive", 1, 0.3, 0.4)]
    runs.append(row("massive_v3", 0, 0.25, 0.35))
    summary = tr.summarize(runs)
    assert summary["massive"]["mAP"] == pytest.approx(0.2)
    assert summary["massive"]["v3_mAP"] == pytest.approx(0.3)
    assert summary["massive"]["v3_mAP_std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert summary["massive"]["v3_AP75"] == pytest.approx(0.15)
    assert summary["massive"]["v3_per_class"] == pytest.approx([0.3] * 6)
    assert summary["massive_v3"]["v3_mAP_std"] == 0.0  # a single run
    results = {"class_names": tr.CLASS_NAMES, "runs": runs, "summary": summary}
    v2_table, v3_table = tr.markdown_table(results).split("**v3 target (held out)**")
    assert "| massive DR (Workbench stream) | 2 | 20.0 ± 14.1 | 40.0 | 10.0 | 20.0 |" in v2_table
    assert "| massive DR (Workbench stream) | 2 | 30.0 ± 14.1 | 60.0 | 15.0 | 30.0 |" in v3_table
    assert "own-domain" in v2_table and "own-domain" not in v3_table
    one = pr_figure({"runs": [{k: v for k, v in r.items() if k != "target_v3"} for r in runs]},
                    tmp_path / "one.png", tr.LABELS)  # fmt: skip
    two = pr_figure(results, tmp_path / "two.png", tr.LABELS)
    assert Image.open(two).size[0] == 2 * Image.open(one).size[0]  # a panel per target
