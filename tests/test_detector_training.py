"""The detectors' training loop (echo steps from the batch or a replay buffer, bfloat16
autocast) and the residual CenterNet, in-process on synthetic batches."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from agents.experiments.centernet import ResidualCenterNet
from agents.experiments.detection import ReplayBuffer, bf16_supported, train
from agents.experiments.runner import _boolean


def config(**overrides):
    values = dict(
        iterations=3, echo=4, lr=1e-3, weight_decay=0.0, warmup=1, height=32, width=32,
        min_visibility=0.1, bf16=False,
    )  # fmt: skip
    values.update(overrides)
    values["steps"] = values["iterations"] * values["echo"]
    return SimpleNamespace(**values)


def batch(value: int, size: int = 2) -> dict:
    """Frames filled with ``value`` (so a step's inputs tell which batch they came from),
    one box each."""
    info = {
        "bbox_visib": [[4.0, 4.0, 20.0, 20.0]],
        "class_id": [value % 2],
        "visib_fract": [1.0],
    }
    frames = torch.full((size, 32, 32, 3), value, dtype=torch.uint8)
    return {"obs": frames, "infos": [info] * size}  # as btgym.data.collate makes them


def values_of(x: torch.Tensor) -> list[int]:
    """The fill value behind each image of a step's inputs (to_input maps v to v/255 - 0.5)."""
    return [round((float(v) + 0.5) * 255) for v in x.mean(dim=(1, 2, 3))]


def sources(x: torch.Tensor) -> set[int]:
    """The batches behind a step's inputs."""
    return set(values_of(x))


def record_steps(cfg, replay):
    seen: list[set[int]] = []

    def augment(x, labels):
        seen.append(sources(x))
        return x, labels

    torch.manual_seed(0)
    model = ResidualCenterNet(2, width=8, features=8)
    train(model, [batch(10), batch(20), batch(30)], cfg, augment=augment, replay=replay)
    return seen


def test_residual_centernet_predicts_at_stride_4_with_the_focal_loss_prior():
    model = ResidualCenterNet(6).eval()
    for h, w in ((128, 160), (64, 96)):
        out = model(torch.zeros(2, 3, h, w))
        assert out["heatmap"].shape == (2, 6, h // 4, w // 4)
        assert out["size"].shape == out["offset"].shape == (2, 2, h // 4, w // 4)
    assert torch.sigmoid(model.heatmap.bias).detach().numpy() == pytest.approx(0.1, abs=1e-3)


def test_replay_buffer_draws_only_what_was_added_and_refuses_more_than_its_capacity():
    buffer = ReplayBuffer(6, torch.Generator().manual_seed(0))
    for value in (1, 2):
        frames = batch(value, size=1)["obs"]
        buffer.add(frames, [(np.zeros((1, 4)), np.array([value]))])
    x, labels = buffer.sample(50)
    values = values_of(x)
    assert set(values) == {1, 2}  # both drawn, nothing else
    assert [int(c[0]) for _, c in labels] == values  # each label stays with its frame
    buffer.add(batch(3, size=4)["obs"], [(np.zeros((1, 4)), np.array([3]))] * 4)
    with pytest.raises(ValueError, match="at most 6 images, got 7"):
        buffer.add(batch(4, size=1)["obs"], [(np.zeros((1, 4)), np.array([4]))])


def test_echo_steps_repeat_the_batch_without_replay():
    seen = record_steps(config(), None)
    assert seen == [{10}] * 4 + [{20}] * 4 + [{30}] * 4


def test_echo_steps_draw_from_every_earlier_image_with_replay():
    replay = ReplayBuffer(6, torch.Generator().manual_seed(0))
    seen = record_steps(config(), replay)
    assert [seen[0], seen[4], seen[8]] == [{10}, {20}, {30}]  # a batch's first step is its own
    for index, values in enumerate(seen):
        received = {10, 20, 30} if index >= 8 else {10, 20} if index >= 4 else {10}
        assert values <= received  # never a batch not yet received
    assert any(values & {10, 20} for values in seen[9:])  # the last batch's echoes reach back


@pytest.mark.skipif(not bf16_supported(), reason="this CPU has no native bfloat16")
def test_bf16_training_learns_and_keeps_float32_weights():
    torch.manual_seed(0)
    model = ResidualCenterNet(2, width=8, features=8)
    cfg = config(iterations=40, echo=1, lr=5e-3, bf16=True)
    log = train(model, [batch(10)] * 40, cfg)  # one batch, 40 times: it can be fitted
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert np.all(np.isfinite(log.losses))
    assert np.mean(log.losses[-5:]) < 0.7 * log.losses[0]
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 32, 32))  # float32 inference after bf16 training
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize(("text", "value"), [("1", True), ("True", True), ("no", False)])
def test_boolean_options(text, value):
    assert _boolean(text) is value


def test_boolean_options_refuse_anything_else():
    with pytest.raises(Exception, match="expected true or false, got 'maybe'"):
        _boolean("maybe")
