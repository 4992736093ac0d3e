"""Cube-v0 env steps on two Blender stacks and two graphics backends, side by side.

One trainer drives one instance per configuration (bpy 5.0 in this interpreter, bpy
5.3 through another Python that has it, with OpenGL and with Vulkan); rounds are
interleaved so machine noise hits every configuration alike. Figures: median step time
over rounds (each round's median), and ratios to the first configuration.

    python benchmarks/stacks.py --other-python .venv-3.13/bin/python [--rounds 7 --steps 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from btgym import BlenderEnv, LaunchConfig  # noqa: E402


def round_ms(env: BlenderEnv, steps: int, rng: np.random.Generator) -> float:
    """Median wall time of ``steps`` env steps with random actions, in ms."""
    times = []
    for _ in range(steps):
        action = rng.uniform(0.0, 1.0, 3).astype(np.float32)
        start = time.perf_counter()
        env.step(action)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--other-python", required=True, help="a Python with bpy 5.3")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    configs = {
        "this bpy, auto": LaunchConfig(seed=0),
        "other bpy, auto (OpenGL here)": LaunchConfig(blender=args.other_python, seed=0),
        "other bpy, vulkan": LaunchConfig(blender=args.other_python, gpu_backend="vulkan", seed=0),
    }
    size = {"width": args.width, "height": args.height}
    envs = {
        name: BlenderEnv("envs.cube:CubeScene", launch=c, **size) for name, c in configs.items()
    }
    rng = np.random.default_rng(0)
    rounds: dict[str, list[float]] = {name: [] for name in envs}
    try:
        for env in envs.values():
            env.reset(seed=0)
            round_ms(env, 5, rng)  # warm-up: first frames, shaders
        for _ in range(args.rounds):
            for name, env in envs.items():
                rounds[name].append(round_ms(env, args.steps, rng))
        described = {name: env.remote["blender"] for name, env in envs.items()}
    finally:
        for env in envs.values():
            env.close()
    base = statistics.median(next(iter(rounds.values())))
    print(f"Cube-v0 {args.width}x{args.height}, {args.rounds} rounds x {args.steps} steps")
    print("| configuration | Blender | backend | step ms (median) | ratio |")
    print("|---|---|---|---|---|")
    for name, values in rounds.items():
        median = statistics.median(values)
        blender = described[name]
        print(
            f"| {name} | {blender['version']} | {blender['gpu_backend']} | {median:.1f} "
            f"| {median / base:.2f} |"
        )


if __name__ == "__main__":
    main()
