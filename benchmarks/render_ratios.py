"""Every throughput as a ratio to the scene's render-only loop: Cube-v0 and Parts-v0.

For each scene, one run of :func:`btgym.bench.measure` (what ``btgym bench`` prints):
the render-only loop (``write_still=False`` in a bpy process, the physical limit), the
same with ``--instances`` processes at once, the env (one instance) and the stream
(``--instances`` instances), rounds interleaved; the env is compared with one
render-only loop, the stream with as many at once as it has instances.

    python benchmarks/render_ratios.py [--rounds 3 --frames 60 --instances 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from btgym.bench import measure, reference  # noqa: E402

SCENES = {
    "Cube-v0": ("envs.cube:CubeScene", {"width": 640, "height": 512}),
    "Parts-v0": ("envs.parts:PartsScene", {"width": 640, "height": 512}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--scenes", default=",".join(SCENES))
    args = parser.parse_args()
    print(f"{args.rounds} interleaved rounds x {args.frames} frames per loop, 640x512\n")
    print("| scene | loop | processes | frames/s | ratio to render-only (same processes) |")
    print("|---|---|---|---|---|")
    for name in args.scenes.split(","):
        spec, kwargs = SCENES[name]
        results = measure(
            spec, kwargs, frames=args.frames, rounds=args.rounds, instances=args.instances
        )
        for loop in results:
            ratio = loop.median / reference(results, loop).median
            print(f"| {name} | {loop.name} | {loop.instances} | {loop.median:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
