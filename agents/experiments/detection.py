"""Experiment 2: detection as in the BlendTorch paper's Table I, rebuilt at CPU scale.

The same small CenterNet-style detector (:mod:`agents.experiments.centernet`), with fixed
hyper-parameters, is trained on three kinds of data from ``btgym/Parts-v0``:

* ``uniform``: the real-time Workbench stream with the scene's default randomization
  (uniform class probabilities), every image fresh;
* ``adaptive``: the same stream, with class probabilities steered by
  :class:`~agents.curriculum.ClassReweighting` from the trainer's per-class heatmap loss
  (through :class:`~agents.curriculum.StreamCurriculum`);
* ``cycles``: a fixed "photo-realistic" set of the same size rendered once with Cycles
  (same randomization ranges), cached as tar shards.

Every condition trains for the same number of iterations on the same number of distinct
images (each seen once). Each model is evaluated with COCO mAP (pycocotools) on a
held-out target set rendered with Cycles at settings outside every training range
(:data:`TARGET_PARAMS`: farther camera, stronger light, glossier and more saturated
materials), chosen before any result was seen.

    python -m agents.experiments.detection            # the benchmark (docs/detection.md)
    python -m agents.experiments.detection --quick    # every path in a few minutes (CI)
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from agents.curriculum import ClassReweighting
from agents.curriculum.glue import StreamCurriculum
from agents.experiments.centernet import (
    STRIDE,
    CenterNet,
    batch_targets,
    decode,
    detection_loss,
    to_input,
)
from agents.experiments.runner import config_from, log_line, parse_args, write_outputs
from agents.experiments.shards import cached_shards, rendered
from btgym.coco import to_coco
from btgym.data import ReplayDataset, StreamDataset, collate

ENV_ID = "btgym/Parts-v0"
CONDITIONS = ("uniform", "adaptive", "cycles")
LABELS = {
    "uniform": "uniform DR (Workbench stream)",
    "adaptive": "adaptive DR (class re-weighting)",
    "cycles": "photo-realistic (fixed Cycles set)",
}
#: The held-out target domain, fixed before any training: Cycles renders with every
#: listed range outside the training ranges (defaults: radius [6, 10], light [0.7, 1.3],
#: roughness [0.25, 0.75], saturation [0, 0.1]) and 4 views per arrangement.
TARGET_PARAMS = {
    "radius_min": 10.5,
    "radius_max": 12.5,
    "light_min": 1.5,
    "light_max": 2.0,
    "roughness_min": 0.0,
    "roughness_max": 0.2,
    "saturation_max": 0.3,
}
CYCLES_SEED, TARGET_SEED, SOURCE_SEED = 10_000, 20_000, 30_000


@dataclass
class Config:
    """Everything fixed across conditions (the full benchmark's values)."""

    width: int = 160
    height: int = 128
    batch: int = 8
    iterations: int = 250
    echo: int = 5
    runs: int = 3
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 20
    model_width: int = 32
    min_visibility: float = 0.1
    top_k: int = 100
    instances: int = 2
    cycles_samples: int = 16
    target_size: int = 300
    source_size: int = 200
    target_views: int = 4
    update_every: int = 10
    temperature: float = 0.5
    floor: float = 0.2
    smoothing: float = 0.9
    seed: int = 0
    threads: int = 1

    @property
    def train_images(self) -> int:
        return self.batch * self.iterations

    @property
    def steps(self) -> int:
        """Optimizer steps: each batch is used ``echo`` times in a row (data echoing,
        Choi et al. 2019), since rendering, not the network, limits the rate."""
        return self.iterations * self.echo


QUICK = {
    "batch": 4,
    "iterations": 20,
    "runs": 1,
    "target_size": 16,
    "source_size": 16,
    "update_every": 4,
    "cycles_samples": 4,
}


# -- the scene -------------------------------------------------------------------------------
@dataclass
class SceneInfo:
    param_names: list[str]
    default_action: np.ndarray
    class_names: list[str]

    def action(self, **named: float) -> np.ndarray:
        """The default action with some entries replaced by name."""
        out = self.default_action.copy()
        for name, value in named.items():
            out[self.param_names.index(name)] = value
        return out

    def with_class_probs(self, probs: np.ndarray) -> np.ndarray:
        out = self.default_action.copy()
        out[: len(self.class_names)] = probs
        return out


def probe_scene() -> SceneInfo:
    """Parameter names, default action and class names, from a tiny Parts-v0 instance."""
    import gymnasium as gym

    env = gym.make(ENV_ID, width=32, height=32)
    try:
        scene = env.unwrapped
        names = list(scene.call("param_names"))
        default = np.asarray(scene.call("default_action"), np.float32)
        classes = list(scene.call("class_names"))
    finally:
        env.close()
    return SceneInfo(names, default, classes)


def scene_kwargs(cfg: Config, engine: str = "workbench", views: int = 8) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "width": cfg.width,
        "height": cfg.height,
        "views": views,
    }
    if engine == "cycles":
        kwargs.update(engine="cycles", samples=cfg.cycles_samples)
    return kwargs


def annotations(info: dict[str, Any], min_visibility: float) -> tuple[np.ndarray, np.ndarray]:
    """Visible boxes ``[x0, y0, x1, y1]`` and classes of objects at least that visible."""
    boxes = np.asarray(info["bbox_visib"], np.float64).reshape(-1, 4)
    classes = np.asarray(info["class_id"], np.int64).reshape(-1)
    visible = np.asarray(info["visib_fract"], np.float64).reshape(-1)
    keep = (visible >= min_visibility) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[keep], classes[keep]


# -- cached Cycles sets ----------------------------------------------------------------------
def render_set(
    directory: Path, count: int, kwargs: dict[str, Any], params: np.ndarray, seed: int
) -> ReplayDataset:
    """``count`` frames rendered once into tar shards under ``directory`` (reused if complete)."""
    meta = {"count": count, "kwargs": kwargs, "params": params.tolist(), "seed": seed}

    def items() -> Iterator[dict[str, Any]]:
        # One instance: Cycles already uses every core, two instances render slower.
        dataset = StreamDataset(
            ENV_ID, 1, seed=seed, params=params, env_kwargs=kwargs, start_timeout=300
        )
        return rendered(iter(dataset), params)

    return cached_shards(directory, meta, count, items)


def cache_name(kind: str, cfg: Config, count: int, samples: int) -> str:
    return f"{kind}-{cfg.width}x{cfg.height}-n{count}-s{samples}-seed{cfg.seed}"


# -- training --------------------------------------------------------------------------------
def lr_factor(cfg: Config) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to 0 over the run."""

    def factor(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


Labels = list[tuple[np.ndarray, np.ndarray]]  # (boxes, classes) per image


@dataclass
class TrainLog:
    losses: list[float]
    class_counts: np.ndarray
    class_probs: list[list[float]]
    seconds: float = 0.0


def bf16_supported() -> bool:
    """Whether oneDNN runs bfloat16 natively here (AVX-512 BF16 or AMX); elsewhere
    bfloat16 autocast is emulated and slower than float32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class ReplayBuffer:
    """Every training image received so far (uint8 frames and their labels), to draw
    echo batches from: example echoing after shuffling (Choi et al. 2019) generalizes
    better than repeating one batch (docs/detection.md measures both)."""

    def __init__(self, capacity: int, generator: torch.Generator) -> None:
        self.capacity, self.generator = capacity, generator
        self.frames: torch.Tensor | None = None
        self.labels: Labels = []

    def add(self, obs: torch.Tensor, labels: Labels) -> None:
        if self.frames is None:
            self.frames = torch.empty((self.capacity, *obs.shape[1:]), dtype=obs.dtype)
        start = len(self.labels)
        if start + len(obs) > self.capacity:
            raise ValueError(f"expected at most {self.capacity} images, got {start + len(obs)}")
        self.frames[start : start + len(obs)] = obs
        self.labels.extend(labels)

    def sample(self, count: int) -> tuple[torch.Tensor, Labels]:
        """``count`` images drawn uniformly (with replacement) from those added."""
        assert self.frames is not None, "sample() before add()"
        index = torch.randint(0, len(self.labels), (count,), generator=self.generator)
        return to_input(self.frames[index]), [self.labels[i] for i in index.tolist()]


def replay_buffer(cfg: Any, seed: int) -> ReplayBuffer | None:
    """A buffer for ``cfg.train_images`` images drawing with ``seed``, if ``cfg.replay``."""
    if not getattr(cfg, "replay", False):
        return None
    return ReplayBuffer(cfg.train_images, torch.Generator().manual_seed(seed))


def train(
    model: nn.Module,
    batches: Iterable[dict[str, Any]],
    cfg: Any,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    augment: Callable[[torch.Tensor, Labels], tuple[torch.Tensor, Labels]] | None = None,
    after_batch: Callable[[int, torch.Tensor, dict[str, Any], torch.Tensor], None] | None = None,
    replay: ReplayBuffer | None = None,
) -> TrainLog:
    """AdamW on ``cfg.iterations`` collated batches, ``cfg.echo`` steps each: a batch's
    first step uses it, the others repeat it or, with ``replay``, draw from every image
    received so far. ``on_step(batch_index, per_class_loss)`` after each batch's first
    step, ``augment(inputs, labels)`` before every step, ``after_batch(batch_index,
    inputs, batch, per_class_loss of its first step)`` after each batch's last step.
    ``cfg.bf16``: bfloat16 autocast and channels-last memory (about 1.7x faster on a CPU
    with AVX-512 BF16; weights, batch norm and losses stay float32)."""
    bf16 = bool(getattr(cfg, "bf16", False))
    if bf16:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg))
    out_hw = (cfg.height // STRIDE, cfg.width // STRIDE)
    log = TrainLog([], np.zeros(model.num_classes, np.int64), [])
    start = time.perf_counter()
    model.train()
    for step, batch in enumerate(batches):
        if step >= cfg.iterations:
            break
        labels = [annotations(info, cfg.min_visibility) for info in batch["infos"]]
        for _, classes in labels:
            log.class_counts += np.bincount(classes, minlength=model.num_classes)
        inputs = to_input(batch["obs"])
        if replay is not None:
            replay.add(torch.as_tensor(batch["obs"]), labels)
        own_targets = None if augment else batch_targets(labels, model.num_classes, out_hw)
        first: torch.Tensor | None = None
        for repeat in range(cfg.echo):
            x, seen, targets = inputs, labels, own_targets
            if replay is not None and repeat > 0:
                x, seen = replay.sample(len(inputs))
                targets = None
            if augment is not None:
                x, seen = augment(x, seen)
            if targets is None:
                targets = batch_targets(seen, model.num_classes, out_hw)
            if bf16:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(x)
            out = {k: v.float() for k, v in out.items()}
            loss, _, per_class = detection_loss(out, targets)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            schedule.step()
            if repeat == 0:
                first = per_class
                log.losses.append(float(loss.detach()))
                if on_step is not None:
                    on_step(step, per_class)
        if after_batch is not None and first is not None:
            after_batch(step, inputs, batch, first)
    log.seconds = time.perf_counter() - start
    if len(log.losses) != cfg.iterations:
        raise RuntimeError(f"expected {cfg.iterations} iterations, ran {len(log.losses)}")
    return log


class AdaptiveHook:
    """Feeds the mean per-class heatmap loss of the last ``every`` steps to the controller
    and pushes its class probabilities to every instance of the stream."""

    def __init__(self, curriculum: StreamCurriculum, every: int, num_classes: int) -> None:
        self.curriculum, self.every = curriculum, every
        self.sums, self.counts = np.zeros(num_classes), np.zeros(num_classes)
        self.history: list[list[float]] = []

    def __call__(self, step: int, per_class: torch.Tensor) -> None:
        values = per_class.numpy()
        seen = ~np.isnan(values)
        self.sums[seen] += values[seen]
        self.counts[seen] += 1
        if (step + 1) % self.every:
            return
        outcome = {c: self.sums[c] / self.counts[c] for c in np.flatnonzero(self.counts)}
        self.curriculum.report({0: {int(c): float(v) for c, v in outcome.items()}})
        sent = self.curriculum.apply()
        self.history.append(self.curriculum.controller.probabilities.tolist())
        self.sums[:], self.counts[:] = 0.0, 0.0
        assert len(sent) == self.curriculum.dataset.num_instances


def stream_loader(cfg: Config, scene: SceneInfo, seed: int) -> tuple[StreamDataset, DataLoader]:
    dataset = StreamDataset(
        ENV_ID,
        cfg.instances,
        items=cfg.train_images,
        seed=seed,
        params=scene.default_action,
        env_kwargs=scene_kwargs(cfg),
        start_timeout=300,
    )
    return dataset, DataLoader(dataset, batch_size=cfg.batch, collate_fn=collate)


def train_condition(
    condition: str, run: int, cfg: Config, scene: SceneInfo, cycles_set: ReplayDataset
) -> tuple[CenterNet, TrainLog]:
    """Train a fresh model (initialization seeded by ``run``, the same for every condition)."""
    torch.manual_seed(cfg.seed * 1000 + run)
    model = CenterNet(len(scene.class_names), cfg.model_width)
    data_seed = cfg.seed * 1000 + 100 + run
    if condition == "cycles":
        generator = torch.Generator().manual_seed(data_seed)
        loader = DataLoader(
            cycles_set, cfg.batch, shuffle=True, drop_last=True, generator=generator,
            collate_fn=collate,
        )  # fmt: skip
        return model, train(model, loader, cfg)
    dataset, loader = stream_loader(cfg, scene, data_seed)
    if condition == "uniform":
        return model, train(model, loader, cfg)
    controller = ClassReweighting(len(scene.class_names), cfg.temperature, cfg.floor, cfg.smoothing)
    curriculum = StreamCurriculum(dataset, controller, transform=scene.with_class_probs)
    curriculum.apply()
    hook = AdaptiveHook(curriculum, cfg.update_every, len(scene.class_names))
    log = train(model, loader, cfg, on_step=hook)
    log.class_probs = hook.history
    return model, log


# -- evaluation ------------------------------------------------------------------------------
def ground_truth(target: ReplayDataset, class_names: list[str], cfg: Config) -> dict[str, Any]:
    """COCO ground truth of the target set (objects at least ``min_visibility`` visible)."""
    return to_coco(
        target,
        class_names,
        boxes_key="bbox_visib",
        classes_key="class_id",
        visibility_key="visib_fract",
        min_visibility=cfg.min_visibility,
    )


@torch.no_grad()
def detect(model: nn.Module, target: ReplayDataset, top_k: int) -> list[dict[str, Any]]:
    """COCO detection results on ``target`` (image ids from 1, in dataset order)."""
    model.eval()
    results: list[dict[str, Any]] = []
    image_id = 1
    for batch in DataLoader(target, batch_size=32, collate_fn=collate):
        for boxes, scores, classes in decode(model(to_input(batch["obs"])), top_k):
            for box, score, cls in zip(boxes, scores, classes, strict=True):
                x0, y0, x1, y1 = (float(v) for v in box)
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": int(cls) + 1,
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "score": float(score),
                    }
                )
            image_id += 1
    return results


def coco_evaluation(gt: dict[str, Any], results: list[dict[str, Any]]) -> Any:
    """pycocotools' accumulated ``COCOeval`` (bbox) of ``results``, or None without any."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = json.loads(json.dumps(gt))
        coco_gt.createIndex()
        evaluation = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


def coco_metrics(gt: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """COCO mAP (IoU .5:.95), AP50, AP75 and per-class AP (area all, 100 detections)."""
    return metrics_of(coco_evaluation(gt, results), len(gt["categories"]))


def metrics_of(evaluation: Any, num_classes: int) -> dict[str, Any]:
    """:func:`coco_metrics` of an evaluation from :func:`coco_evaluation` (None: all 0)."""
    if evaluation is None:
        return {"mAP": 0.0, "AP50": 0.0, "AP75": 0.0, "per_class": [0.0] * num_classes}
    precision = evaluation.eval["precision"]  # [IoU, recall, class, area, max dets]
    per_class = []
    for k in range(num_classes):
        p = precision[:, :, k, 0, -1]
        per_class.append(float(p[p > -1].mean()) if (p > -1).any() else float("nan"))
    stats = evaluation.stats
    return {
        "mAP": float(stats[0]),
        "AP50": float(stats[1]),
        "AP75": float(stats[2]),
        "per_class": per_class,
    }


# -- the experiment --------------------------------------------------------------------------
def prepare_sets(cfg: Config, scene: SceneInfo, cache: Path) -> tuple[ReplayDataset, ...]:
    """The fixed Cycles training set, the target set and an in-range Workbench set (a
    diagnostic: the training domain, not a target), rendered once, then cached."""
    target_kwargs = scene_kwargs(cfg, "cycles", views=cfg.target_views)
    cycles_dir = cache / cache_name("cycles", cfg, cfg.train_images, cfg.cycles_samples)
    target_dir = cache / cache_name("target", cfg, cfg.target_size, cfg.cycles_samples)
    cycles_set = render_set(
        cycles_dir,
        cfg.train_images,
        scene_kwargs(cfg, "cycles"),
        scene.default_action,
        CYCLES_SEED + cfg.seed,
    )
    target_set = render_set(
        target_dir,
        cfg.target_size,
        target_kwargs,
        scene.action(**TARGET_PARAMS),
        TARGET_SEED + cfg.seed,
    )
    source_set = render_set(
        cache / cache_name("source", cfg, cfg.source_size, 0),
        cfg.source_size,
        scene_kwargs(cfg),
        scene.default_action,
        SOURCE_SEED + cfg.seed,
    )
    return cycles_set, target_set, source_set


def run_experiment(
    cfg: Config, out: Path, cache: Path, log: Callable[[str], None] = log_line
) -> dict[str, Any]:
    """Render (or load) the fixed sets, train every condition ``cfg.runs`` times, evaluate."""
    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    scene = probe_scene()
    t0 = time.perf_counter()
    cycles_set, target_set, source_set = prepare_sets(cfg, scene, cache)
    render_s = time.perf_counter() - t0
    log(f"sets ready in {render_s:.0f} s: {len(cycles_set)} Cycles, {len(target_set)} target")
    gt = ground_truth(target_set, scene.class_names, cfg)
    source_gt = ground_truth(source_set, scene.class_names, cfg)
    runs: list[dict[str, Any]] = []
    for run in range(cfg.runs):
        for condition in CONDITIONS:
            model, train_log = train_condition(condition, run, cfg, scene, cycles_set)
            t1 = time.perf_counter()
            metrics = coco_metrics(gt, detect(model, target_set, cfg.top_k))
            source = coco_metrics(source_gt, detect(model, source_set, cfg.top_k))
            record_ = {
                "condition": condition,
                "run": run,
                **metrics,
                "source": source,
                "train_s": train_log.seconds,
                "eval_s": time.perf_counter() - t1,
                "final_loss": float(np.mean(train_log.losses[-10:])),
                "class_counts": train_log.class_counts.tolist(),
                "class_probs": train_log.class_probs,
            }
            runs.append(record_)
            log(
                f"run {run} {condition:9s} mAP {metrics['mAP']:.3f} AP50 {metrics['AP50']:.3f} "
                f"(in-range Workbench mAP {source['mAP']:.3f}) "
                f"loss {record_['final_loss']:.2f} train {train_log.seconds:.0f} s"
            )
    results = {
        "config": asdict(cfg),
        "target_params": TARGET_PARAMS,
        "class_names": scene.class_names,
        "target_objects": len(gt["annotations"]),
        "render_s": render_s,
        "wall_s": time.perf_counter() - started,
        "runs": runs,
        "summary": summarize(runs, scene.class_names),
    }
    write_outputs(results, out, markdown_table)
    return results


def summarize(runs: list[dict[str, Any]], class_names: list[str]) -> dict[str, Any]:
    """Mean and standard deviation (ddof 1; 0 for one run) per condition, worst class."""
    summary: dict[str, Any] = {}
    for condition in CONDITIONS:
        rows = [r for r in runs if r["condition"] == condition]
        if not rows:
            continue
        maps = np.array([r["mAP"] for r in rows])
        per_class = np.nanmean(np.array([r["per_class"] for r in rows], np.float64), axis=0)
        worst = int(np.nanargmin(per_class))
        summary[condition] = {
            "runs": len(rows),
            "mAP": float(maps.mean()),
            "mAP_std": float(maps.std(ddof=1)) if len(rows) > 1 else 0.0,
            "AP50": float(np.mean([r["AP50"] for r in rows])),
            "AP75": float(np.mean([r["AP75"] for r in rows])),
            "per_class": per_class.tolist(),
            "worst_class": class_names[worst],
            "worst_AP": float(per_class[worst]),
            **source_summary(rows),
        }
    return summary


def source_summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean mAP and AP50 on the in-range Workbench set, where it was evaluated."""
    source = [r["source"] for r in rows if "source" in r]
    if not source:
        return {}
    return {
        "source_mAP": float(np.mean([m["mAP"] for m in source])),
        "source_AP50": float(np.mean([m["AP50"] for m in source])),
    }


def markdown_table(results: dict[str, Any]) -> str:
    """The paper's Table I, shaped for these conditions (AP in percent)."""
    names = results["class_names"]
    cfg = results["config"]
    head = ["training data", "mAP", "AP50", "AP75", *names, "worst class"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for condition, s in results["summary"].items():
        cells = [
            LABELS[condition],
            f"{100 * s['mAP']:.1f} ± {100 * s['mAP_std']:.1f}",
            f"{100 * s['AP50']:.1f}",
            f"{100 * s['AP75']:.1f}",
            *(f"{100 * v:.1f}" for v in s["per_class"]),
            f"{s['worst_class']} ({100 * s['worst_AP']:.1f})",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    runs = min(s["runs"] for s in results["summary"].values())
    lines.append("")
    lines.append(
        f"COCO AP in % on {cfg['target_size']} held-out Cycles target images "
        f"({results['target_objects']} objects); mean ± std over {runs} run(s); "
        f"{cfg['iterations']} iterations x batch {cfg['batch']} = "
        f"{cfg['batch'] * cfg['iterations']} training images per model, each batch used for "
        f"{cfg['echo']} steps; {cfg['width']}x{cfg['height']}."
    )
    source = [
        f"{LABELS[c]} {100 * s['source_mAP']:.1f} (AP50 {100 * s['source_AP50']:.1f})"
        for c, s in results["summary"].items()
        if "source_mAP" in s
    ]
    if source:
        lines.append("")
        lines.append(
            f"Diagnostic, mAP on {cfg['source_size']} in-range Workbench frames (the streams' "
            "own domain, not a target): " + "; ".join(source) + "."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv, __doc__.split("\n")[0], Config, Path("runs/detection/cache"))
    cfg = config_from(args, Config, QUICK)
    out = args.out or Path("runs/detection/quick" if args.quick else "runs/detection")
    command = "python -m agents.experiments.detection " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    results = run_experiment(cfg, out, args.cache)
    results["command"] = command.strip()
    write_outputs(results, out, markdown_table)
    print(markdown_table(results))
    print(f"wall {results['wall_s']:.0f} s; written to {out}/results.json and results.md")
    return results


if __name__ == "__main__":
    main()
