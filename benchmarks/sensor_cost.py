"""The sensor model's cost per frame against a Workbench env step, side by side.

For each scene (640x512, Workbench AA off, one instance): rounds interleave ``frames``
env steps (timed each) with the sensor model applied to those steps' frames in every
configuration of :data:`CONFIGS` (timed each); medians per round, the median of the
rounds, and the ratio to the step's median.

    python benchmarks/sensor_cost.py [--rounds 3 --frames 30 --scenes Cube-v0,Parts-v0]
    python benchmarks/sensor_cost.py --sheet docs/img/sensor-sheet.png   # docs/sensor.md's figure
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from btgym import BlenderEnv  # noqa: E402
from btgym.sensor import SensorModel  # noqa: E402

SCENES = {
    "Cube-v0": "envs.cube:CubeScene",
    "Parts-v0": "envs.parts:PartsScene",
}
NOISE = {"shot_noise_min": 0.01, "shot_noise_max": 0.03, "read_noise_max": 0.01}
OPTICS = {"blur_min": 0.5, "blur_max": 3.0, "vignetting_max": 0.5}
TONE = {"exposure_min": 0.6, "exposure_max": 1.6, "gamma_min": 0.8, "gamma_max": 1.25}
CONFIGS = {
    "noise": NOISE,
    "noise+blur+vignetting": {**NOISE, **OPTICS},
    "all but JPEG": {**NOISE, **OPTICS, **TONE},
    "all, JPEG 40-95": {**NOISE, **OPTICS, **TONE, "jpeg_quality_min": 40, "jpeg_quality_max": 95},
}


#: The figure: one Parts-v0 frame through single effects, then whole draws; then the
#: appearance parameters of Parts-v0 (issue 27).
SHEET_SENSORS = {
    "clean": {},
    "shot 0.03 + read 0.01": {"shot_noise": 0.03, "read_noise": 0.01},
    "blur 2.5 px": {"blur": 2.5},
    "vignetting 0.6, exposure 0.7": {"vignetting": 0.6, "exposure": 0.7},
    "gamma 0.6": {"gamma": 0.6},
    "JPEG quality 25": {"jpeg_quality": 25},
}
SHEET_DRAWS = {**NOISE, **OPTICS, **TONE, "jpeg_quality_min": 50, "jpeg_quality_max": 95}
SHEET_LOOKS = {
    "Parts-v0 defaults": {},
    "vivid ground": {"ground_saturation_min": 0.6, "ground_saturation_max": 1.0},
    "textured ground": {"ground_texture_prob": 1.0, "ground_texture_contrast": 1.0},
    "pale parts": {"pale_prob": 1.0, "saturation_max": 1.0},
}


def sheet(path: str) -> None:
    """Write the contact sheet of sensor effects and appearance modes to ``path``."""
    from btgym.preview import contact_sheet

    tiles = []
    with BlenderEnv(SCENES["Parts-v0"], width=320, height=256) as env:
        frame, _ = env.reset(seed=5)
        for caption, fixed in SHEET_SENSORS.items():
            ranges = {f"{n}_{end}": v for n, v in fixed.items() for end in ("min", "max")}
            model = SensorModel(ranges)
            tiles.append((model.apply(frame, model.frame_rng(0))[0], {}, caption))
        model = SensorModel(SHEET_DRAWS)
        for k in range(2):
            out, values = model.apply(frame, model.frame_rng(1, k))
            drawn = model.to_dict(values)
            caption = f"drawn: blur {drawn['blur']:.1f}, noise {drawn['shot_noise']:.3f}"
            tiles.append((out, {}, caption))
        defaults = env.unwrapped.call("default_params")
        for caption, looks in SHEET_LOOKS.items():
            env.unwrapped.call("set_params", {**defaults, **looks})
            tiles.append((env.reset(seed=11)[0], {}, caption))
    contact_sheet(tiles, columns=4).save(path)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--scenes", default=",".join(SCENES))
    parser.add_argument("--sheet", help="write the figure of docs/sensor.md here instead")
    args = parser.parse_args()
    if args.sheet:
        sheet(args.sheet)
        return
    models = {name: SensorModel(ranges) for name, ranges in CONFIGS.items()}
    print(f"{args.rounds} interleaved rounds x {args.frames} frames, 640x512, medians in ms\n")
    print("| scene | what | ms per frame | ratio to the env step |")
    print("|---|---|---|---|")
    for scene in args.scenes.split(","):
        rounds: dict[str, list[float]] = {"env step": [], **{name: [] for name in models}}
        with BlenderEnv(SCENES[scene], width=640, height=512) as env:
            space = env.action_space  # the middle of the ranges: a fixed, ordinary action
            action = ((space.low + space.high) / 2).astype(space.dtype)
            models["noise"].apply(env.reset(seed=0)[0], models["noise"].frame_rng(0))  # warm
            for r in range(args.rounds):
                frames, steps = [], []
                for _ in range(args.frames):
                    t0 = time.perf_counter()
                    obs, *_ = env.step(action)
                    steps.append(time.perf_counter() - t0)
                    frames.append(obs)
                rounds["env step"].append(float(np.median(steps)))
                for name, model in models.items():
                    costs = []
                    for k, frame in enumerate(frames):
                        rng = model.frame_rng(r, k)
                        t0 = time.perf_counter()
                        model.apply(frame, rng)
                        costs.append(time.perf_counter() - t0)
                    rounds[name].append(float(np.median(costs)))
        step = float(np.median(rounds["env step"]))
        for name, values in rounds.items():
            ms = float(np.median(values))
            print(f"| {scene} | {name} | {ms * 1000:.1f} | {ms / step:.2f} |")


if __name__ == "__main__":
    main()
