"""Read-back paths side by side in one bpy process: ratios to the render-only loop.

Rounds alternate between: render only (``write_still=False``, the physical limit),
TIFF read-back (btgym's default) and half-float EXR + Blender's view table; every
figure is a median of per-round medians, every ratio is frames/s over the render-only
loop's frames/s in the same run.

    python benchmarks/readback.py [--width 640 --height 512 --rounds 6 --frames 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bpy  # noqa: E402
import numpy as np  # noqa: E402

from blender_side.render import Renderer, stdout_silenced  # noqa: E402
from blender_side.testing import SceneEnv  # noqa: E402


def timed(step, frames: int) -> float:
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    env = SceneEnv("envs.cube:CubeScene", width=args.width, height=args.height)
    env.reset(seed=0)
    cube, rng = env.scene.cube, np.random.default_rng(0)
    tiff = Renderer(args.width, args.height, readback="tiff")
    exr = Renderer(args.width, args.height, readback="exr")

    def move() -> None:
        cube.rotation_euler = rng.uniform(-3.0, 3.0, 3).tolist()

    def render_only() -> None:
        move()
        with stdout_silenced(True):
            bpy.ops.render.render(write_still=False)

    loops = {
        "render only (write_still=False)": render_only,
        "TIFF read-back (default)": lambda: (move(), tiff.render()),
        "half EXR + view table": lambda: (move(), exr.render()),
    }
    for step in loops.values():  # warm-up: first renders, table
        timed(step, 5)
    results: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, step in loops.items():
            results[name].append(timed(step, args.frames))
    limit = statistics.median(results["render only (write_still=False)"])
    print(f"Cube-v0 {args.width}x{args.height}, {args.rounds} rounds x {args.frames} frames\n")
    print("| loop | ms/frame | frames/s | ratio to render-only |")
    print("|---|---|---|---|")
    for name, values in results.items():
        ms = statistics.median(values)
        print(f"| {name} | {ms:.2f} | {1000 / ms:.1f} | {limit / ms:.2f} |")
    env.close()


if __name__ == "__main__":
    main()
