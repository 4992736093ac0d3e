"""Parts-v0 steps with masks and depth in this process: step, id pass and annotate times.

Run from a checkout (``PYTHONPATH=$PWD python benchmarks/annotation_passes.py LABEL``);
run two checkouts alternately to compare them (issue 25: passes rendered from the frame's
own scene against the former second scene). Prints medians of ``--steps`` steps.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from blender_side.testing import SceneEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("label")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    args = parser.parse_args()
    env = SceneEnv(
        "envs.parts:PartsScene", width=args.width, height=args.height, masks=True, depth=True
    )
    env.reset(seed=0)
    annotator = env.scene.annotator
    steps, ids, annotate = [], [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        env.step(env.action_space.sample())
        steps.append((time.perf_counter() - start) * 1000)
        ids.append(annotator.timings["ids_ms"])
        annotate.append(annotator.timings["annotate_ms"])
    print(
        f"{args.label}: step {np.median(steps):.1f} ms, id pass {np.median(ids):.1f} ms, "
        f"annotate {np.median(annotate):.1f} ms (medians of {args.steps})"
    )
    env.close()


if __name__ == "__main__":
    main()
