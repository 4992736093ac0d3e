"""The adaptive controller v3 (issue 27): the equalizer hides a noise-only cue from the
discriminator, calibrated scores rank candidates by how close they are to the target,
the evolution strategy follows them, candidates' sensors reach their own frames, and the
target's true values never reach the controller. No Blender."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from agents.experiments.adaptive_dr import (
    Adapted,
    AdaptiveRandomization,
    CandidateSensor,
    DiscriminatorTrainer,
    Equalizer,
    EvolutionStrategy,
)
from btgym.sensor import SENSOR_NAMES


def scenes(n: int, generator: torch.Generator, h: int = 32, w: int = 40) -> torch.Tensor:
    """Smooth random colour frames ``(n, 3, h, w)`` in [-0.4, 0.4]: content, no noise."""
    low = torch.rand(n, 3, 4, 5, generator=generator) * 0.8 - 0.4
    return F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)


def separation(trainer: DiscriminatorTrainer, a: torch.Tensor, b: torch.Tensor) -> float:
    """AUC: how often a frame of ``a`` scores above a frame of ``b`` (0.5: no separation)."""
    la, lb = trainer.score(a), trainer.score(b)
    return float((la[:, None] > lb[None, :]).float().mean())


def test_equalizer_hides_a_noise_only_difference_from_the_discriminator():
    torch.set_num_threads(1)
    auc = {}
    for name, equalizer in (("raw", None), ("equalized", Equalizer(seed=1))):
        g = torch.Generator().manual_seed(0)
        clean = scenes(32, g)  # the stream: the same scenes, without noise
        noisy = (clean + 24 / 255 * torch.randn(clean.shape, generator=g)).clamp(-0.5, 0.5)
        trainer = DiscriminatorTrainer(
            noisy, seed=0, lr=3e-3, extra_steps=1, equalizer=equalizer, smoothing=0.1
        )
        for _ in range(80):
            trainer.step(clean[torch.randint(32, (16,), generator=g)])
        auc[name] = separation(trainer, noisy, clean)
    assert auc["raw"] > 0.95  # noise alone separates every target frame
    assert abs(auc["equalized"] - 0.5) < 0.1  # near chance


def test_equalizer_is_symmetric_fresh_and_keeps_coarse_appearance():
    equalizer = Equalizer(sigma=1.5, noise=4 / 255, seed=0)
    flat = torch.full((2, 3, 24, 30), 0.2)
    assert torch.allclose(equalizer.blur(flat), flat, atol=1e-6)  # reflected edges
    a, b = equalizer(flat), equalizer(flat)
    assert not torch.equal(a, b)  # fresh noise every call
    assert abs(float((a - flat).std()) - 4 / 255) < 1 / 255
    g = torch.Generator().manual_seed(0)
    noise = 0.05 * torch.randn((4, 3, 64, 64), generator=g)
    assert float(equalizer.blur(noise).std()) < 0.3 * float(noise.std())
    assert float(equalizer(flat + 0.1).mean() - equalizer(flat).mean()) == pytest.approx(
        0.1, abs=3e-3
    )


def test_label_smoothing_bounds_the_logits_and_is_checked():
    g = torch.Generator().manual_seed(0)
    target = scenes(16, g) * 0.3 + 0.3
    smooth = DiscriminatorTrainer(target, seed=0, lr=3e-3, smoothing=0.1)
    sharp = DiscriminatorTrainer(target, seed=0, lr=3e-3)
    for _ in range(60):
        stream = scenes(8, g) * 0.3 - 0.3
        smooth.step(stream)
        sharp.step(stream)
    bound = float(np.log(0.9 / 0.1))
    assert float(smooth.score(target).mean()) < 1.5 * bound
    assert float(sharp.score(target).mean()) > float(smooth.score(target).mean())
    with pytest.raises(ValueError, match="label smoothing"):
        DiscriminatorTrainer(target, seed=0, smoothing=0.5)


def brightened(frames: torch.Tensor, brightness: float) -> torch.Tensor:
    return (frames + brightness).clamp(-0.5, 0.5)


def test_calibrated_scores_rise_monotonically_towards_the_target_brightness():
    """Spectral norm + label smoothing + one network for all (``score``): the mean logit
    grows with closeness to the target. (Without spectral norm, the far candidates all
    score about the same: a step at the target, no slope for the strategy.)"""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    levels = [-0.2, -0.1, 0.0, 0.1, 0.2]  # the target's brightness is 0.2
    target = brightened(scenes(64, g) * 0.5, 0.2)
    trainer = DiscriminatorTrainer(
        target, seed=0, lr=2e-3, equalizer=Equalizer(seed=2), smoothing=0.1, spectral=True
    )
    for _ in range(40):  # a stream mixing every candidate
        trainer.step(torch.cat([brightened(scenes(3, g) * 0.5, b) for b in levels]))
    scores = [float(trainer.score(brightened(scenes(32, g) * 0.5, b)).mean()) for b in levels]
    assert all(np.diff(scores) > 0), scores  # the closer to the target, the higher
    assert scores[-1] - scores[0] > 1.0  # graded: a signal, not noise


def test_the_strategy_follows_calibrated_scores_to_the_target_brightness():
    """The whole v3 loop on a synthetic scene whose one parameter is brightness: the
    instances "render" their candidates, frames are credited by the params they carry,
    rescored at each generation's end; the mean climbs to the target's brightness."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    adapted = (Adapted("brightness", -0.3, 0.3, 0.0, ("brightness",)),)
    strategy = EvolutionStrategy(adapted, np.array([0.2]), seed=0, candidates=8, sigma=0.2)
    target = brightened(scenes(64, g) * 0.5, 0.2)  # normalized 0.83
    trainer = DiscriminatorTrainer(
        target, seed=0, lr=2e-3, equalizer=Equalizer(seed=3), smoothing=0.1, spectral=True
    )
    current: dict[int, np.ndarray] = {}
    glue = AdaptiveRandomization(
        strategy,
        trainer,
        set_params=lambda params, ids: current.update({ids[0]: params}),
        to_action=lambda named: np.array([named["brightness"]], np.float32),
        batches_per_candidate=1,
        instances=2,
        rescore=True,
    )
    for _ in range(4 * 15):  # 15 generations of 4 rounds
        params = [current[0]] * 6 + [current[1]] * 6
        frames = torch.cat([brightened(scenes(6, g) * 0.5, float(current[k][0])) for k in (0, 1)])
        glue.after_batch(frames, params)
    assert len(strategy.history) == 15
    assert all(np.isfinite(strategy.history[-1]["scores"]))
    assert strategy.mean[0] > 0.6  # from 0.2 (brightness -0.18) towards 0.83 (0.2)


def test_candidate_sensors_reach_their_own_frames_and_stay_out_of_the_action():
    adapted = (  # one scene parameter and the sensor's read noise (a range of width 0)
        Adapted("x", 0.0, 1.0, 0.0, ("x",)),
        Adapted("read noise", 0.0, 0.1, 0.0, ("read_noise_min", "read_noise_max")),
    )
    strategy = EvolutionStrategy(adapted, np.array([0.5, 0.5]), seed=0, candidates=2, sigma=0.4)
    sent: dict[int, np.ndarray] = {}
    seen: list[dict[str, float]] = []

    def to_action(named: dict[str, float]) -> np.ndarray:
        seen.append(named)
        return np.array([named["x"]])

    glue = AdaptiveRandomization(
        strategy,
        DiscriminatorTrainer(torch.zeros(2, 3, 16, 16), seed=0),
        set_params=lambda params, ids: sent.update({ids[0]: params}),
        to_action=to_action,
        batches_per_candidate=1,
        instances=2,
        sensor_names={"read_noise_min", "read_noise_max"},
    )
    assert all(set(n) == {"x"} for n in seen)
    noise = [glue.sensor_for(sent[k])["read_noise_min"] for k in (0, 1)]
    assert noise[0] != noise[1]
    mean = strategy.params(strategy.mean)["read_noise_min"]
    assert glue.sensor_for(np.array([-5.0]))["read_noise_max"] == mean  # no match: the mean
    sense = CandidateSensor(glue, {"blur_max": 0.0}, seed=3)
    grey = np.full((4, 12, 16, 3), 128, np.uint8)
    batch = {
        "obs": torch.as_tensor(grey),
        "infos": [{"params": sent[k]} for k in (0, 0, 1, 1)],
        **{k: torch.arange(4) for k in ("env_id", "seed", "episode", "step")},
    }
    out = sense(batch)
    assert out["sensor"].shape == (4, 7)
    read = SENSOR_NAMES.index("read_noise")
    np.testing.assert_allclose(out["sensor"][:, read], [noise[0]] * 2 + [noise[1]] * 2, rtol=1e-5)
    spread = out["obs"].float().std(dim=(1, 2, 3)).numpy()
    louder = int(np.argmax(noise))
    assert (
        spread[2 * louder : 2 * louder + 2].min()
        > spread[2 * (1 - louder) : 2 * (1 - louder) + 2].max()
    )
    again = sense(batch)["obs"]
    assert torch.equal(out["obs"], again)  # each frame's noise from its own seeded generator
    assert not torch.equal(out["obs"][0], out["obs"][1])  # and fresh from frame to frame


# -- the adaptive_v3 condition (agents/experiments/transfer.py) ------------------------------
def test_v3_adapts_appearance_and_sensor_from_the_v3_centres_within_their_bounds():
    from agents.experiments import transfer as tr

    names = {a.name for a in tr.ADAPTED_V3}
    assert {a.name for a in tr.ADAPTED} < names  # v2's nine, and more
    assert {"ground saturation", "pale probability", "ground texture probability"} < names
    assert {n.replace("_", " ") for n in SENSOR_NAMES} < names  # every sensor effect
    strategy = EvolutionStrategy(tr.ADAPTED_V3, tr.v3_start(), seed=0, candidates=16)
    start = strategy.params(strategy.mean)
    for key in ("shot_noise", "blur", "exposure", "jpeg_quality", "ground_saturation"):
        ranges = {**tr.SENSOR_V3, **tr.MASSIVE_V3}
        centre = (ranges[f"{key}_min"] + ranges[f"{key}_max"]) / 2
        assert (start[f"{key}_min"] + start[f"{key}_max"]) / 2 == pytest.approx(centre)
    assert start["pale_prob"] == pytest.approx(tr.MASSIVE_V3["pale_prob"])
    assert start["saturation_max"] == pytest.approx(tr.MASSIVE_V3["saturation_max"])
    ranges = {**tr.MASSIVE_V3, **tr.SENSOR_V3}
    ends = [k[:-4] for k in ranges if k.endswith("_min") and f"{k[:-4]}_max" in ranges]
    rng = np.random.default_rng(0)
    for _ in range(5):  # wherever the search goes, ranges stay inside the v3 ones
        for candidate in strategy.propose():
            named = strategy.params(candidate)
            for stem in ends:
                for key in (f"{stem}_min", f"{stem}_max"):
                    if key in named:
                        assert ranges[f"{stem}_min"] - 1e-9 <= named[key]
                        assert named[key] <= ranges[f"{stem}_max"] + 1e-9
        strategy.mean = rng.uniform(-1, 2, len(tr.ADAPTED_V3)).clip(0, 1)


def test_v3_candidates_spend_v2s_frames_per_generation_and_are_configurable():
    from agents.experiments import transfer as tr

    for cfg in (tr.Config(), tr.Config(**tr.QUICK), tr.Config(v3_candidates=8)):
        v2 = cfg.candidates * cfg.batches_per_candidate // cfg.instances
        v3 = cfg.v3_candidates * cfg.v3_batches_per_candidate // cfg.instances
        assert v3 == v2 and cfg.v3_candidates > cfg.candidates
    assert tr.Config().v3_candidates == 16 and tr.Config().v3_batches_per_candidate == 1
    assert "adaptive_v3" in tr.CONDITIONS and "adaptive" in tr.CONDITIONS


def test_the_v3_controller_never_receives_the_targets_true_values(monkeypatch):
    """Build and run a generation of the controller with every way to the target's spec
    refusing; what it holds of the target is its unlabeled frames."""
    from agents.experiments import figures
    from agents.experiments import target as target_module
    from agents.experiments import transfer as tr

    def refuse(*args, **kwargs):
        raise AssertionError("the controller read the target's spec")

    for module in (target_module, tr, figures):
        monkeypatch.setattr(module, "load_spec", refuse)
    monkeypatch.setattr(figures, "v3_target_values", refuse)
    cfg = tr.Config(**tr.QUICK)
    unlabeled = torch.rand(6, 3, 32, 40) - 0.5
    sent: dict[int, np.ndarray] = {}
    strategy, trainer, glue, sense = tr.adaptive_v3_controller(
        cfg, unlabeled, lambda params, ids: sent.update({ids[0]: params}), seed=5
    )
    assert trainer.target is unlabeled and trainer.equalizer is not None
    for batch_index in range(cfg.v3_candidates * cfg.v3_batches_per_candidate // 2):
        params = [sent[0], sent[0], sent[1], sent[1]]
        batch = {
            "obs": torch.full((4, 32, 40, 3), 120, dtype=torch.uint8),
            "infos": [{"params": p} for p in params],
            **{k: torch.arange(4) + 4 * batch_index for k in ("env_id", "seed", "episode", "step")},
        }
        batch = sense(batch)
        glue.after_batch(tr.to_input(batch["obs"]), params)
    assert len(strategy.history) == 1 and np.isfinite(strategy.history[0]["scores"]).all()
    assert len(sent[0]) == len(tr.MASSIVE_V3_ACTION)  # scene parameters only: no sensor
    named = tr.SPACE.to_dict(sent[0])
    assert named["ground_texture_prob"] >= 0 and "shot_noise_min" not in named


def test_trajectory_figure_draws_the_v3_targets_true_values(tmp_path):
    from agents.experiments import figures
    from agents.experiments import transfer as tr

    values = figures.v3_target_values(figures.load_spec(figures.SPEC_V3_FILE))
    assert values["camera distance"] == 9.0 and values["blur"] == 0.75
    assert values["shot noise"] == pytest.approx((8000**-0.5 + 2000**-0.5) / 2)
    bounds = {a.name: (a.low, a.high) for a in tr.ADAPTED_V3}
    assert set(values) <= set(bounds)
    assert all(bounds[n][0] <= v <= bounds[n][1] for n, v in values.items())
    adapted = [{"name": a.name, "low": a.low, "high": a.high} for a in tr.ADAPTED_V3]
    strategy = EvolutionStrategy(tr.ADAPTED_V3, tr.v3_start(), seed=0)
    trajectory = [{"mean": strategy.physical(strategy.mean).tolist(), "scores": [0.0]}] * 3
    run = {"condition": "adaptive_v3", "run": 0, "adapted": adapted, "trajectory": trajectory}
    path = figures.trajectory_figure({"runs": [run]}, tmp_path / "t.png", values, "adaptive_v3")
    assert path.stat().st_size > 1000
