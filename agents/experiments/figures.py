"""Figures of the rebuilt Experiment 2: precision-recall, domains side by side, and what
the adaptive controller learned.

- ``pr.png``: precision against recall at IoU 0.5 on the v2 target (and the held-out v3
  target beside it, where runs carry its curves), mean over classes and runs, one curve
  per condition (the paper's Figure 7);
- ``domains.png``: a contact sheet, one column per domain (massive DR, photo-realistic,
  adaptive DR with the first run's final parameters, the target);
- ``trajectories.png``: the adapted parameters' centres per generation, every adaptive
  run, against the target's own values where it has one (the controller never sees them);
- ``trajectories_v3.png``: the same for ``adaptive_v3`` (appearance and sensor too),
  against the v3 target's true values, read here from ``target_v3_spec.json`` (this module
  is the only reader: the controller gets the target's unlabeled frames, nothing else).

The experiment's module (:mod:`agents.experiments.transfer`) is passed in as
``experiment``: the experiment calls this module, not the reverse.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from agents.experiments.adaptive_dr import ADAPTED
from agents.experiments.target import SPEC_V3_FILE, load_spec

ROWS = 4


def write_figures(
    results: dict[str, Any], directory: Path, cfg: Any, cache: Path, experiment: Any
) -> list[Path]:
    """Write every figure that the results allow; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    directory.mkdir(parents=True, exist_ok=True)
    paths = [pr_figure(results, directory / "pr.png", experiment.LABELS)]
    paths.append(domains_figure(results, directory / "domains.png", cfg, cache, experiment))
    conditions = {r["condition"] for r in results["runs"] if "trajectory" in r}
    if "adaptive" in conditions:
        paths.append(
            trajectory_figure(results, directory / "trajectories.png", experiment.TARGET_VALUES)
        )
    if "adaptive_v3" in conditions:
        values = v3_target_values(load_spec(SPEC_V3_FILE))
        path = directory / "trajectories_v3.png"
        paths.append(trajectory_figure(results, path, values, "adaptive_v3"))
    return paths


def v3_target_values(spec: dict[str, Any]) -> dict[str, float]:
    """The v3 target's true value of each adapted quantity that has a counterpart in its
    spec (range centres; light strength and background value have none): for the plot
    only. Sensor terms as :mod:`btgym.sensor` counts them: shot noise ``1/sqrt(full
    well)``, the spec's gamma 2.2 is the sRGB-like encoding (tone curve 1), EEVEE exposure
    0 is gain 1, no JPEG (quality 100); its tables are all textured, its parts all grey."""
    plastic, camera, sensor = spec["plastic"], spec["camera"], spec["sensor"]
    finishes = np.array([np.add(f["dark"], f["light"]) / 2 for f in spec["table"]["finishes"]])
    ground = (finishes.max(1) - finishes.min(1)) / finishes.max(1)  # HSV saturation
    wells = np.asarray(sensor["full_well"], np.float64)
    return {
        "object value": float(np.mean(plastic["value"])),
        "saturation": float(plastic["saturation_max"]),
        "roughness": float(np.mean(plastic["roughness"])),
        "camera distance": float(np.mean(camera["radius"])),
        "elevation": float(np.mean(camera["elevation"])),
        "focal length": float(camera["lens"]),
        "matcap probability": 0.0,
        "ground saturation": float(ground.mean()),
        "ground texture probability": 1.0,
        "pale probability": 1.0,
        "exposure": float(2.0 ** spec["eevee"]["exposure"]),
        "gamma": 1.0,
        "blur": float(np.mean(sensor["blur_sigma"])),
        "vignetting": float(np.mean(sensor["vignetting"])),
        "shot noise": float(np.mean(1.0 / np.sqrt(wells))),
        "read noise": float(np.mean(sensor["read_noise"])),
        "jpeg quality": 100.0,
    }


def pr_figure(results: dict[str, Any], path: Path, labels: dict[str, str]) -> Path:
    """Mean precision-recall curves at IoU 0.5 per condition: on the v2 target, and beside
    it on the held-out v3 target where the runs carry its curves."""
    import matplotlib.pyplot as plt

    recall = np.linspace(0, 1, 101)
    panels = [("v2 target", lambda r: r.get("pr50"))]
    if any("pr50" in r.get("target_v3", {}) for r in results["runs"]):
        panels.append(("v3 target (held out)", lambda r: r.get("target_v3", {}).get("pr50")))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (title, curve_of) in zip(axes[0], panels, strict=True):
        for condition, label in labels.items():
            runs = [r for r in results["runs"] if r["condition"] == condition]
            curves = [c for c in map(curve_of, runs) if c is not None]
            if curves:
                ax.plot(recall, np.mean(curves, axis=0), label=f"{label} ({len(curves)} runs)")
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1))
        ax.set_title(f"{title}, IoU 0.5, mean over classes and runs")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def domains_figure(
    results: dict[str, Any], path: Path, cfg: Any, cache: Path, transfer: Any
) -> Path:
    """Frames of each domain side by side (columns), ``ROWS`` each."""
    from PIL import Image

    conditions = cfg.condition_list
    columns = [("massive DR", frames(transfer.cached_set(cfg, cache, "domain")))]
    if "massive_v3" in conditions:
        columns.append(("massive DR v3", massive_v3_frames(cfg, transfer)))
    if {"photoreal", "photoreal_sensor"} & set(conditions):
        photoreal = transfer.cached_set(cfg, cache, "photoreal")
        columns.append(("photo-realistic", frames(photoreal)))
        if "photoreal_sensor" in conditions:
            sensor = transfer.SensorModel(transfer.SENSOR_V3, seed=cfg.seed)
            columns.append(("photo-real + sensor", frames(transfer.Sensed(photoreal, sensor))))
    adaptive = [r for r in results["runs"] if r["condition"] == "adaptive"]
    if adaptive:
        columns.append(("adaptive (run 0, final)", adapted_frames(adaptive[0], cfg, transfer)))
    adaptive_v3 = [r for r in results["runs"] if r["condition"] == "adaptive_v3"]
    if adaptive_v3:
        frames_v3 = adapted_frames(adaptive_v3[0], cfg, transfer, v3=True)
        columns.append(("adaptive v3 (run 0, final)", frames_v3))
    columns.append(("target v2 (EEVEE)", frames(transfer.target_set(cfg, cache))))
    columns.append(("target v3 (held out)", frames(transfer.target_set(cfg, cache, v3=True))))
    h, w = cfg.height, cfg.width
    label_h = 18
    sheet = Image.new("RGB", (len(columns) * (w + 4), ROWS * (h + 4) + label_h), "white")
    from PIL import ImageDraw

    draw = ImageDraw.Draw(sheet)
    for c, (name, images) in enumerate(columns):
        draw.text((c * (w + 4) + 4, 3), name, fill="black")
        for r, image in enumerate(images[:ROWS]):
            sheet.paste(Image.fromarray(image), (c * (w + 4) + 2, label_h + r * (h + 4) + 2))
    sheet.save(path)
    return path


def frames(dataset: Any) -> list[np.ndarray]:
    """``ROWS`` frames spread over ``dataset`` (one per arrangement where possible)."""
    step = max(1, len(dataset) // ROWS)
    return [np.asarray(dataset[i * step]["obs"]) for i in range(min(ROWS, len(dataset)))]


def adapted_frames(
    run: dict[str, Any], cfg: Any, transfer: Any, v3: bool = False
) -> list[np.ndarray]:
    """``ROWS`` fresh frames of the massive stream with a run's final adapted parameters
    (``v3``: over the v3 ranges, through the final sensor)."""
    from btgym.data import StreamDataset

    final = run["final_params"]
    scene = {k: v for k, v in final.items() if k not in transfer.SENSOR_PARAMS}
    sensor = {**transfer.SENSOR_V3, **{k: v for k, v in final.items() if k not in scene}}
    base = transfer.MASSIVE_V3_ACTION if v3 else transfer.MASSIVE_ACTION
    params = transfer.action(scene, base)
    kwargs = {**transfer.scene_kwargs(cfg), "views": 1}
    dataset = StreamDataset(
        transfer.ENV_ID, 1, items=ROWS, seed=7, params=params, env_kwargs=kwargs,
        sensor=sensor if v3 else None,
    )  # fmt: skip
    return [np.asarray(item["obs"]) for item in dataset]


def massive_v3_frames(cfg: Any, transfer: Any) -> list[np.ndarray]:
    """``ROWS`` fresh frames of the massive DR v3 stream (appearance and sensor)."""
    from agents.experiments.shards import rendered
    from btgym.data import StreamDataset

    params = transfer.MASSIVE_V3_ACTION
    kwargs = {**transfer.scene_kwargs(cfg), "views": 1}
    dataset = StreamDataset(
        transfer.ENV_ID, 1, seed=8, params=params, env_kwargs=kwargs, sensor=transfer.SENSOR_V3
    )
    # Frames of arrangements started before the stream's action applied show the scene's
    # defaults: left out (``rendered``).
    stream = iter(dataset)
    try:
        return [np.asarray(item["obs"]) for item in islice(rendered(stream, params), ROWS)]
    finally:
        stream.close()  # type: ignore[attr-defined]


def trajectory_figure(
    results: dict[str, Any],
    path: Path,
    target_values: dict[str, Any],
    condition: str = "adaptive",
) -> Path:
    """One panel per adapted quantity: its centre per generation, every run of
    ``condition``, and the target's value as a dashed line where it has one."""
    import matplotlib.pyplot as plt

    runs = [r for r in results["runs"] if r["condition"] == condition]
    default = [{"name": a.name, "low": a.low, "high": a.high} for a in ADAPTED]
    quantities = runs[0].get("adapted", default) if runs else default
    cols = 3 if len(quantities) <= 9 else 4
    rows = -(-len(quantities) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 2, 2.6 * rows), squeeze=False)
    for k, adapted in enumerate(quantities):
        ax = axes[k // cols][k % cols]
        for run in runs:
            means = np.array([g["mean"][k] for g in run["trajectory"]])
            ax.plot(np.arange(1, len(means) + 1), means, alpha=0.8, label=f"run {run['run']}")
        if adapted["name"] in target_values:
            ax.axhline(target_values[adapted["name"]], color="black", ls="--", label="target")
        ax.set(title=adapted["name"], xlabel="generation", ylim=(adapted["low"], adapted["high"]))
        ax.grid(alpha=0.3)
    for k in range(len(quantities), rows * cols):
        axes[k // cols][k % cols].axis("off")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["write_figures"]
