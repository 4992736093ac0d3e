"""Issue 27's diagnosis, re-measured: image factors of each training domain and the target,
and how much of the target each domain covers.

Per frame: the noise sigma (Immerkaer's estimator on the luma, in 8-bit levels) and the
noise-corrected sharpness (mean squared luma gradient minus the noise's share, ``4 sigma^2``);
per object (``visib_fract >= 0.1``, the central half of its visible box): chroma (max - min
of RGB, 0-1), luma (0-1) and the box's share of the frame. Each factor is summarized by
its 10/50/90 % quantiles; a domain *covers* a target value when the value lies within the
domain's 1-99 % quantiles, and the table gives the share of the target's values covered.

Domains (``agents.experiments.transfer``'s ranges): the v2 target (EEVEE, cached under
``--cache``), massive DR v2 (Workbench stream, ``MASSIVE``), the same frames through the v3
sensor (``SENSOR_V3``, :mod:`btgym.sensor`), massive DR v3 (``MASSIVE_V3``: Parts-v0's
appearance parameters, and the sensor), the photo-realistic Cycles set (``PHOTOREAL``)
with and without the sensor.

    python benchmarks/domain_stats.py            # 100 frames a domain
    python benchmarks/domain_stats.py --quick    # 8 frames a domain (minutes)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.experiments.shards import rendered  # noqa: E402
from agents.experiments.target import render_target  # noqa: E402
from agents.experiments.transfer import (  # noqa: E402
    MASSIVE,
    MASSIVE_V3,
    PHOTOREAL,
    SENSOR_V3,
    action,
)
from btgym.data import StreamDataset  # noqa: E402
from btgym.sensor import SensorModel  # noqa: E402

FACTORS = ("noise", "sharpness", "chroma", "luma", "box area")
MIN_VISIBILITY = 0.1


# -- factors ---------------------------------------------------------------------------------
def luma(frame: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an ``(H, W, 3)`` frame, in 8-bit levels (float)."""
    return np.asarray(frame, np.float64)[..., :3] @ np.array([0.299, 0.587, 0.114])


def noise_sigma(frame: np.ndarray) -> float:
    """Immerkaer's (1996) noise estimate: the mean absolute response to the Laplacian
    difference mask, which cancels smooth image structure, scaled to a standard deviation.
    """
    y = luma(frame)
    response = (
        y[:-2, :-2] - 2 * y[:-2, 1:-1] + y[:-2, 2:]
        - 2 * y[1:-1, :-2] + 4 * y[1:-1, 1:-1] - 2 * y[1:-1, 2:]
        + y[2:, :-2] - 2 * y[2:, 1:-1] + y[2:, 2:]
    )  # fmt: skip
    return float(np.sqrt(np.pi / 2) * np.abs(response).mean() / 6)


def sharpness(frame: np.ndarray, sigma: float) -> float:
    """Mean squared luma gradient less what noise of ``sigma`` adds (``4 sigma^2``)."""
    y = luma(frame)
    energy = (np.diff(y, axis=0) ** 2).mean() + (np.diff(y, axis=1) ** 2).mean()
    return float(max(energy - 4 * sigma**2, 0.0))


def frame_factors(frame: np.ndarray, info: dict[str, Any]) -> dict[str, list[float]]:
    """Every factor of one frame: one value per frame (noise, sharpness) or per object."""
    sigma = noise_sigma(frame)
    out: dict[str, list[float]] = {
        "noise": [sigma],
        "sharpness": [sharpness(frame, sigma)],
        "chroma": [],
        "luma": [],
        "box area": [],
    }
    height, width = frame.shape[:2]
    boxes = np.asarray(info.get("bbox_visib", np.zeros((0, 4))), np.float64).reshape(-1, 4)
    visible = np.asarray(info.get("visib_fract", np.ones(len(boxes))), np.float64)
    for (x0, y0, x1, y1), fraction in zip(boxes, visible, strict=False):
        if fraction < MIN_VISIBILITY or x1 - x0 < 2 or y1 - y0 < 2:
            continue
        cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 4, (y1 - y0) / 4
        patch = frame[int(cy - hh) : int(np.ceil(cy + hh)), int(cx - hw) : int(np.ceil(cx + hw))]
        pixels = np.asarray(patch, np.float64).reshape(-1, 3) / 255
        out["chroma"].append(float(np.median(pixels.max(axis=1) - pixels.min(axis=1))))
        out["luma"].append(float(np.median(pixels.mean(axis=1))))
        out["box area"].append(float((x1 - x0) * (y1 - y0) / (width * height)))
    return out


def domain_factors(items: Iterable[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The factors of every item's frame, pooled per factor."""
    pooled: dict[str, list[float]] = {name: [] for name in FACTORS}
    for item in items:
        for name, values in frame_factors(np.asarray(item["obs"]), item["info"]).items():
            pooled[name].extend(values)
    return {name: np.asarray(values) for name, values in pooled.items()}


def coverage(domain: np.ndarray, target: np.ndarray) -> float:
    """Share of ``target``'s values within ``domain``'s 1-99 % quantiles."""
    if len(domain) == 0 or len(target) == 0:
        return float("nan")
    low, high = np.quantile(domain, [0.01, 0.99])
    return float(((target >= low) & (target <= high)).mean())


# -- domains ---------------------------------------------------------------------------------
def stream(params: dict[str, Any], count: int, seed: int, **kwargs: Any) -> list[dict[str, Any]]:
    """``count`` Parts-v0 items rendered with ``params`` (first arrangements left out)."""
    vector = action(params)
    dataset = StreamDataset(
        "btgym/Parts-v0", 1, seed=seed, params=vector, start_timeout=300, timeout=300,
        env_kwargs={"width": 160, "height": 128, "views": 4, **kwargs},
    )  # fmt: skip
    items = iter(dataset)
    try:
        return list(islice(rendered(items, vector), count))
    finally:
        items.close()  # type: ignore[attr-defined]


def sensed(items: list[dict[str, Any]], seed: int) -> Iterator[dict[str, Any]]:
    """``items`` through the v3 sensor (``SENSOR_V3``)."""
    model = SensorModel(SENSOR_V3, seed=seed)
    return (model.sense_item(item) for item in items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="8 frames a domain")
    parser.add_argument("--cache", type=Path, default=Path("runs/detection/cache"))
    parser.add_argument("--no-cycles", action="store_true", help="leave the Cycles set out")
    args = parser.parse_args()
    count = 8 if args.quick else args.frames
    started = time.perf_counter()
    target = domain_factors(render_target(args.cache / f"target-eevee-{count}", frames=count))
    massive = stream(MASSIVE, count, seed=50_000)
    domains = {
        "massive DR v2": domain_factors(massive),
        "massive DR v2 + sensor": domain_factors(sensed(massive, 1)),
        "massive DR v3 (+ appearance, + sensor)": domain_factors(
            sensed(stream(MASSIVE_V3, count, seed=50_001), 2)
        ),
    }
    if not args.no_cycles:
        cycles = stream(PHOTOREAL, count, seed=40_000, engine="cycles", samples=16)
        domains["photo-realistic (Cycles)"] = domain_factors(cycles)
        domains["photo-realistic + sensor"] = domain_factors(sensed(cycles, 3))
    print(f"{count} frames a domain, 160x128 ({time.perf_counter() - started:.0f} s)\n")
    print("| domain | " + " | ".join(f"{f} (10/50/90 %)" for f in FACTORS) + " |")
    print("|---|" + "---|" * len(FACTORS))
    for name, factors in {"target v2 (EEVEE)": target, **domains}.items():
        cells = [" / ".join(f"{q:.3g}" for q in np.quantile(factors[f], [0.1, 0.5, 0.9]))
                 if len(factors[f]) else "-" for f in FACTORS]  # fmt: skip
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nCoverage of the target (share of its values within the domain's 1-99 % range):\n")
    print("| domain | " + " | ".join(FACTORS) + " |")
    print("|---|" + "---|" * len(FACTORS))
    for name, factors in domains.items():
        cells = [f"{100 * coverage(factors[f], target[f]):.0f} %" for f in FACTORS]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
